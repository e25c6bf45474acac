//! Middleware every request passes: the `Host` check against DNS rebinding, the
//! `Origin` check against foreign pages changing things, and the security
//! headers every answer carries.
//!
//! DNS rebinding: a page on `evil.example` makes its name resolve to 127.0.0.1,
//! and the victim's browser then sends `Host: evil.example:8025` to sokkel, with
//! the page allowed to read the answers (same origin, as far as the browser
//! knows). Refusing foreign `Host` names while sokkel listens on loopback only
//! closes that hole; a listener on another address answers any host.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::{ApiError, AppState, HostPolicy};

/// Refuses requests for foreign host names with 403 under [`HostPolicy::Loopback`]:
/// only loopback names and [`crate::WebConfig::allowed_hosts`] pass.
pub(crate) async fn check_host(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let allowed = &state.config().allowed_hosts;
    if state.config().host_policy == HostPolicy::Loopback
        && let Some(host) = request.headers().get(header::HOST)
        && !host
            .to_str()
            .is_ok_and(|host| is_loopback_host(host) || is_allowed_host(host, allowed))
    {
        return ApiError::Forbidden(
            "sokkel answers only requests for localhost, 127.0.0.1, [::1] and the names given \
             with --http-allow-host while it listens on loopback; open it by one of those \
             names, or allow this one with --http-allow-host NAME"
                .to_string(),
        )
        .into_response();
    }
    next.run(request).await
}

/// Refuses a request that may change something (any method but GET, HEAD and
/// OPTIONS) with 403 when it carries an `Origin` other than the server's own,
/// whatever its content type.
///
/// A page elsewhere can make the browser send a "simple" cross-origin request
/// (a `text/plain` POST, say) without asking first; only the browser's
/// preflight stops a DELETE, and sokkel does not rely on the browser. Browsers
/// send `Origin` with every such request; `Origin: null` (sandboxed frames,
/// `file:` pages) counts as foreign. Requests without `Origin` (curl, scripts,
/// Mailpit clients) are not browsers' and pass.
pub(crate) async fn check_origin(request: Request, next: Next) -> Response {
    let safe = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if !safe && !same_origin(request.headers()) {
        return ApiError::Forbidden(format!(
            "{} from another origin refused: sokkel accepts changes only from its own page \
             or from clients that send no Origin",
            request.method()
        ))
        .into_response();
    }
    next.run(request).await
}

/// No `Origin` (not a browser), or one whose host and port are the `Host` the
/// request was sent to.
pub(crate) fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|origin| origin.split_once("://"))
        .map(|(_, rest)| rest.trim_end_matches('/'));
    matches!((origin_host, host), (Some(a), Some(b)) if a.eq_ignore_ascii_case(b))
}

/// Whether a request that makes sokkel act (without changing anything, so
/// [`check_origin`] lets it through as a GET) comes from sokkel's own page or
/// from a client that is not a browser: refused when the browser's
/// `Sec-Fetch-Site` says another site (or a sandboxed frame, which is
/// `cross-site`) sent it, or when it carries an `Origin` other than the
/// server's own (`Origin: null` included). Browsers too old for
/// `Sec-Fetch-Site` send `Origin` with cross-origin fetches, but not with an
/// `<img src>`; the first check covers those in every browser sokkel's page
/// runs in.
pub(crate) fn own_page_or_no_browser(headers: &HeaderMap) -> bool {
    let site_ok = headers
        .get("sec-fetch-site")
        .is_none_or(|site| matches!(site.as_bytes(), b"same-origin" | b"none"));
    site_ok && same_origin(headers)
}

/// `localhost`, `*.localhost`, or a loopback IP, each with or without a port.
pub(crate) fn is_loopback_host(host: &str) -> bool {
    match host_name(host) {
        Some(HostName::Ip(ip)) => ip.is_loopback(),
        Some(HostName::Name(name)) => name == "localhost" || name.ends_with(".localhost"),
        None => false,
    }
}

/// One of `allowed` (as `parse_allowed_host` reads them: lowercase names, IP
/// addresses without brackets), with or without a port. Addresses compare as
/// addresses, so `[FE80:0::1]` is `fe80::1`.
fn is_allowed_host(host: &str, allowed: &[String]) -> bool {
    match host_name(host) {
        Some(HostName::Ip(ip)) => allowed
            .iter()
            .any(|allowed| allowed.parse::<IpAddr>() == Ok(ip)),
        Some(HostName::Name(name)) => allowed.contains(&name),
        None => false,
    }
}

/// What a `Host` header names, without its port.
#[derive(Debug, PartialEq, Eq)]
enum HostName {
    /// An IPv4 address, or an IPv6 address that was in brackets.
    Ip(IpAddr),
    /// A name, lowercase, without the one trailing dot a fully qualified name
    /// may have.
    Name(String),
}

/// Reads a `Host` header: `name`, `name:port`, `[IPv6]` or `[IPv6]:port`.
/// `None` if the port is not one, brackets hold anything but an IPv6 address,
/// or the name has an empty label (`mail.test..`, `a..b`).
fn host_name(host: &str) -> Option<HostName> {
    if let Some(rest) = host.strip_prefix('[') {
        // [::1]:8025
        let (inside, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        return inside
            .parse::<Ipv6Addr>()
            .ok()
            .map(|ip| HostName::Ip(IpAddr::V6(ip)));
    }
    let name = match host.split_once(':') {
        Some((name, port)) if is_port(port) => name,
        Some(_) => return None,
        None => host,
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.split('.').any(str::is_empty) {
        return None;
    }
    Some(match name.parse::<Ipv4Addr>() {
        Ok(ip) => HostName::Ip(IpAddr::V4(ip)),
        Err(_) => HostName::Name(name.to_ascii_lowercase()),
    })
}

fn is_port(text: &str) -> bool {
    text.bytes().all(|b| b.is_ascii_digit()) && text.parse::<u16>().is_ok()
}

/// The page's own policy: its scripts and styles come from sokkel only, message
/// HTML appears only in frames sokkel serves, nobody may frame the page, and
/// no `<base>` may move its relative URLs (it needs none: the web root is
/// written into it).
pub(crate) const APP_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; frame-src 'self'; form-action 'none'; \
    base-uri 'none'; frame-ancestors 'none'";

/// The policy for answers that are not pages (JSON, text, downloads).
const DATA_CSP: &str = "default-src 'none'; frame-ancestors 'none'; sandbox";

/// Adds `X-Content-Type-Options`, `Referrer-Policy` and a default
/// Content-Security-Policy to every answer that does not set its own.
pub(crate) async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers: &mut HeaderMap = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers
        .entry(header::REFERRER_POLICY)
        .or_insert(HeaderValue::from_static("no-referrer"));
    headers
        .entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(DATA_CSP));
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        response
            .headers_mut()
            .remove(header::CONTENT_SECURITY_POLICY);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_must_match_host() {
        let headers = |origin: Option<&'static str>, host: &'static str| {
            let mut map = HeaderMap::new();
            map.insert(header::HOST, HeaderValue::from_static(host));
            if let Some(origin) = origin {
                map.insert(header::ORIGIN, HeaderValue::from_static(origin));
            }
            map
        };
        assert!(same_origin(&headers(None, "127.0.0.1:8025")));
        assert!(same_origin(&headers(
            Some("http://127.0.0.1:8025"),
            "127.0.0.1:8025"
        )));
        assert!(same_origin(&headers(
            Some("https://LOCALHOST:8025/"),
            "localhost:8025"
        )));
        for foreign in [
            "http://evil.example",
            "http://127.0.0.1:8026",
            "http://localhost:8025",
            "null",
            "",
        ] {
            assert!(
                !same_origin(&headers(Some(foreign), "127.0.0.1:8025")),
                "{foreign}"
            );
        }
    }

    #[test]
    fn acting_requests_come_from_the_page_or_no_browser() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = HeaderMap::new();
            map.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8025"));
            for (name, value) in pairs {
                map.insert(*name, HeaderValue::from_static(value));
            }
            map
        };
        assert!(own_page_or_no_browser(&headers(&[])));
        assert!(own_page_or_no_browser(&headers(&[(
            "sec-fetch-site",
            "same-origin"
        )])));
        assert!(own_page_or_no_browser(&headers(&[(
            "sec-fetch-site",
            "none"
        )])));
        assert!(own_page_or_no_browser(&headers(&[
            ("sec-fetch-site", "same-origin"),
            ("origin", "http://127.0.0.1:8025"),
        ])));
        for refused in [
            &[("sec-fetch-site", "cross-site")][..],
            &[("sec-fetch-site", "same-site")],
            &[("origin", "null")],
            &[("origin", "http://evil.example")],
            &[("sec-fetch-site", "same-origin"), ("origin", "null")],
        ] {
            assert!(!own_page_or_no_browser(&headers(refused)), "{refused:?}");
        }
    }

    #[test]
    fn allowed_hosts_pass_with_any_port() {
        let allowed = ["mail.test".to_string(), "fe80::1".to_string()];
        for host in [
            "mail.test",
            "mail.test:8080",
            "MAIL.TEST.:443",
            "[fe80::1]:80",
        ] {
            assert!(is_allowed_host(host, &allowed), "{host}");
        }
        for host in [
            "evil.test",
            "mail.test.evil.test",
            "mail.test:port",
            "sub.mail.test",
        ] {
            assert!(!is_allowed_host(host, &allowed), "{host}");
        }
    }

    /// Issue #18 review: brackets only around an IPv6 address, addresses
    /// compared as addresses, one trailing dot at most.
    #[test]
    fn host_headers_are_read_strictly() {
        let allowed = ["mail.test".to_string(), "fe80::1".to_string()];
        for host in [
            "[FE80:0::1]",
            "[fe80:0:0:0:0:0:0:1]:8025",
            "mail.test.",
            "mail.test.:80",
        ] {
            assert!(is_allowed_host(host, &allowed), "{host}");
        }
        for host in [
            "[mail.test]",
            "[mail.test]:80",
            "mail.test..",
            "mail.test..:80",
            ".mail.test",
            "mail..test",
            "[fe80::1]x",
            "fe80::1",
            "[fe80::2]",
            ":80",
            "",
        ] {
            assert!(!is_allowed_host(host, &allowed), "{host}");
        }
        for host in ["[localhost]", "[127.0.0.1]", "localhost..", "[::1]]"] {
            assert!(!is_loopback_host(host), "{host}");
        }
        assert_eq!(
            host_name("[0:0::1]:1"),
            Some(HostName::Ip(IpAddr::V6(Ipv6Addr::LOCALHOST)))
        );
        assert_eq!(
            host_name("Mail.Test.:8025"),
            Some(HostName::Name("mail.test".to_string()))
        );
    }

    #[test]
    fn loopback_hosts() {
        let allowed = [
            "localhost",
            "localhost:8025",
            "LOCALHOST.",
            "app.localhost:80",
            "127.0.0.1",
            "127.0.0.1:8025",
            "127.1.2.3:1",
            "[::1]",
            "[::1]:8025",
        ];
        for host in allowed {
            assert!(is_loopback_host(host), "{host}");
        }
        let refused = [
            "evil.example",
            "evil.example:8025",
            "localhost.evil.example",
            "10.0.0.1:8025",
            "[::2]:8025",
            "[::1]x",
            "127.0.0.1:port",
            "127.0.0.1:99999",
            "",
            "[::1",
        ];
        for host in refused {
            assert!(!is_loopback_host(host), "{host}");
        }
    }
}
