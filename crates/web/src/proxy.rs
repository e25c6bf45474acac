//! Serving behind a reverse proxy: the web root everything lives under
//! (`--webroot /mail/`, as Mailpit's) and the host names the proxy passes on
//! (`--http-allow-host`).
//!
//! The root is part of every URL sokkel itself serves, so a proxy forwards
//! `/mail/...` unchanged and rewrites nothing:
//!
//! ```text
//! browser ── GET /mail/api/v1/messages ──▶ nginx ── GET /mail/api/v1/messages ──▶ sokkel
//! ```
//!
//! [`crate::app`] mounts every route under the root, answers the root without
//! its slash with a redirect to it, and everything else with 404. The root is
//! written into the page when it is served (`ui::Page`).

use std::net::Ipv6Addr;

use axum::http::Uri;
use axum::response::{IntoResponse, Redirect, Response};

/// The path the page, the API and the WebSocket are served under: `/`, or
/// `/NAME/.../` with names of letters, digits, `-`, `.`, `_` and `~`. It
/// starts and ends with `/`, so it can be put before a route's path without
/// its leading slash, and into HTML without escaping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebRoot(String);

impl WebRoot {
    /// Reads a root as a user types it: `mail`, `/mail` and `/mail/` all mean
    /// `/mail/`; empty or `/` is the top.
    pub fn parse(text: &str) -> Result<WebRoot, String> {
        let mut root = String::from("/");
        for segment in text.trim().split('/').filter(|s| !s.is_empty()) {
            let allowed = |b: u8| b.is_ascii_alphanumeric() || b"-._~".contains(&b);
            if segment == "." || segment == ".." || !segment.bytes().all(allowed) {
                return Err(format!(
                    "{text:?} is not a web root: use path names of letters, digits, '-', '.', \
                     '_' and '~' separated by '/', such as /mail/"
                ));
            }
            root.push_str(segment);
            root.push('/');
        }
        Ok(WebRoot(root))
    }

    /// The root, starting and ending with `/`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is `/`, where every path is as without a root.
    pub fn is_top(&self) -> bool {
        self.0 == "/"
    }

    /// `path` (starting with `/`) under the root: `/api/v1/info` under
    /// `/mail/` is `/mail/api/v1/info`.
    pub(crate) fn join(&self, path: &str) -> String {
        format!("{}{}", self.0, path.trim_start_matches('/'))
    }
}

impl Default for WebRoot {
    fn default() -> Self {
        WebRoot("/".to_string())
    }
}

impl std::fmt::Display for WebRoot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// `GET /mail` (the root without its slash): where the page is, keeping the
/// query, so relative URLs in the page resolve under the root.
pub(crate) async fn redirect_into(root: WebRoot, uri: Uri) -> Response {
    let target = match uri.query() {
        Some(query) => format!("{root}?{query}"),
        None => root.to_string(),
    };
    Redirect::permanent(&target).into_response()
}

/// Reads a host name for `--http-allow-host` as the guard compares it:
/// lowercase, without its one trailing dot; an IPv6 address with or without
/// its brackets. A port is refused, since every port is allowed.
pub fn parse_allowed_host(text: &str) -> Result<String, String> {
    let text = text.trim();
    let bare = text
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .unwrap_or(text);
    if let Ok(ip) = bare.parse::<Ipv6Addr>() {
        return Ok(ip.to_string());
    }
    let name = text.strip_suffix('.').unwrap_or(text).to_ascii_lowercase();
    if name.contains(':') {
        return Err(format!(
            "{text:?}: give the host name without a port (every port is allowed)"
        ));
    }
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_';
    if name.is_empty() || !name.bytes().all(allowed) || name.split('.').any(str::is_empty) {
        return Err(format!(
            "{text:?} is not a host name: give a name such as mail.example.com"
        ));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_are_normalised() {
        for (typed, root) in [
            ("", "/"),
            ("/", "/"),
            ("mail", "/mail/"),
            ("/mail", "/mail/"),
            ("/mail/", "/mail/"),
            ("mail/", "/mail/"),
            ("//tools//mail-catcher/", "/tools/mail-catcher/"),
            (" /a.b_c~1/ ", "/a.b_c~1/"),
        ] {
            assert_eq!(WebRoot::parse(typed).unwrap().as_str(), root, "{typed:?}");
        }
        for bad in [
            "/../etc",
            "/./",
            "/mail?x",
            "/mail#x",
            "/ma il/",
            "/\"><script>/",
            "/mäil",
        ] {
            assert!(WebRoot::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn paths_join_under_the_root() {
        let root = WebRoot::parse("/mail/").unwrap();
        assert_eq!(root.join("/"), "/mail/");
        assert_eq!(root.join("/api/v1/info"), "/mail/api/v1/info");
        assert_eq!(WebRoot::default().join("/livez"), "/livez");
    }

    #[test]
    fn allowed_hosts_are_names_without_ports() {
        for (typed, name) in [
            ("Mail.Example.COM", "mail.example.com"),
            ("mail.test.", "mail.test"),
            ("192.168.1.5", "192.168.1.5"),
            ("[fe80::1]", "fe80::1"),
            ("FE80::1", "fe80::1"),
        ] {
            assert_eq!(parse_allowed_host(typed).unwrap(), name, "{typed:?}");
        }
        for bad in [
            "mail.test:8080",
            "",
            ".",
            "a..b",
            "mail.test..",
            "[mail.test]",
            "[127.0.0.1]",
            "evil.test/x",
            "a b",
        ] {
            assert!(parse_allowed_host(bad).is_err(), "{bad:?}");
        }
    }
}
