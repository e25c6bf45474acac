//! The web page: static files embedded in the binary, and the documents that show
//! a message's HTML inside a sandboxed frame.
//!
//! The page (index.html) is served with the web root written into it: its
//! root-absolute URLs (`/static/app.js`) and `<html data-root>`, from which
//! its script builds every other URL; so it works under `/mail/` as under `/`,
//! without a `<base>` element (the page's policy has `base-uri 'none'`).
//!
//! The files are served with `Cache-Control: no-cache` and an `ETag` computed from
//! their bytes, so a browser revalidates with one cheap 304 and never runs an old
//! script after an upgrade.
//!
//! A message's HTML is hostile input. `/view/{ID}.html` serves it as its own
//! document with a Content-Security-Policy that allows no script, no plugin, no
//! form and no remote load (images only from `data:` and the message's own parts),
//! plus the CSP `sandbox` directive; the page also frames it with a `sandbox`
//! attribute without `allow-scripts`. Remote images load only with `?remote=1`,
//! which the page adds when the user asks for that message.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sokkel_store::mime;

use crate::api::{MessageRef, blocking, query_map};
use crate::guard::APP_CSP;
use crate::{ApiError, AppState, WebRoot};

/// One embedded file.
struct Asset {
    bytes: &'static [u8],
    content_type: &'static str,
    etag: LazyLock<HeaderValue>,
}

macro_rules! asset {
    ($path:literal, $content_type:literal) => {
        Asset {
            bytes: include_bytes!($path),
            content_type: $content_type,
            etag: LazyLock::new(|| etag_of(include_bytes!($path))),
        }
    };
}

static INDEX: Asset = asset!("../static/index.html", "text/html; charset=utf-8");
static APP_JS: Asset = asset!("../static/app.js", "text/javascript; charset=utf-8");
static CHECKS_JS: Asset = asset!("../static/checks.js", "text/javascript; charset=utf-8");
static THEME_JS: Asset = asset!("../static/theme.js", "text/javascript; charset=utf-8");
static APP_CSS: Asset = asset!("../static/app.css", "text/css; charset=utf-8");
static CHECKS_CSS: Asset = asset!("../static/checks.css", "text/css; charset=utf-8");
static FAVICON: Asset = asset!("../static/favicon.svg", "image/svg+xml");

/// A strong ETag from the bytes (64-bit FNV-1a: not for security, only to tell
/// versions apart).
pub(crate) fn etag_of(bytes: &[u8]) -> HeaderValue {
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    HeaderValue::from_str(&format!("\"{hash:016x}\"")).expect("hex is a valid header value")
}

/// Whether the request's `If-None-Match` names `etag` (or `*`): the client's
/// copy is current, and a 304 answers it.
pub(crate) fn still_fresh(request_headers: &HeaderMap, etag: &HeaderValue) -> bool {
    request_headers
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            value
                .split(',')
                .any(|tag| tag.trim() == "*" || tag.trim().as_bytes() == etag.as_bytes())
        })
}

/// The page as served under one web root: index.html with the root written
/// into its URLs and `<html data-root>`.
#[derive(Debug)]
pub(crate) struct Page {
    bytes: Bytes,
    etag: HeaderValue,
}

/// Where index.html names the root: the attribute the script reads, and the
/// start of every root-absolute URL in an attribute. [`Page::new`] puts the
/// web root in place of each `/`.
const ROOT_MARKS: [&str; 3] = ["data-root=\"/", "href=\"/", "src=\"/"];

impl Page {
    pub(crate) fn new(root: &WebRoot) -> Page {
        let mut html = std::str::from_utf8(INDEX.bytes)
            .expect("index.html is UTF-8")
            .to_string();
        for mark in ROOT_MARKS {
            assert!(html.contains(mark), "index.html has {mark}");
            // The root holds only URL-safe characters (WebRoot::parse), none
            // that HTML would read.
            let rooted = format!("{}{root}", mark.trim_end_matches('/'));
            html = html.replace(mark, &rooted);
        }
        Page {
            etag: etag_of(html.as_bytes()),
            bytes: Bytes::from(html),
        }
    }

    fn serve(&self, request_headers: &HeaderMap) -> Response {
        serve_bytes(
            self.bytes.clone(),
            INDEX.content_type,
            &self.etag,
            request_headers,
        )
    }
}

fn serve_asset(asset: &Asset, request_headers: &HeaderMap) -> Response {
    serve_bytes(
        Bytes::from_static(asset.bytes),
        asset.content_type,
        &asset.etag,
        request_headers,
    )
}

fn serve_bytes(
    bytes: Bytes,
    content_type: &'static str,
    etag: &HeaderValue,
    request_headers: &HeaderMap,
) -> Response {
    let mut response = if still_fresh(request_headers, etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut response = bytes.into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        response
    };
    let headers = response.headers_mut();
    headers.insert(header::ETAG, etag.clone());
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(APP_CSP),
    );
    response
}

/// `GET /`: the page.
pub(crate) async fn index(State(state): State<AppState>, headers: HeaderMap) -> Response {
    state.inner.page.serve(&headers)
}

/// `GET /static/{file}`: the page's script, style and icon.
pub(crate) async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Response {
    let asset = match file.as_str() {
        "app.js" => &APP_JS,
        "checks.js" => &CHECKS_JS,
        "theme.js" => &THEME_JS,
        "app.css" => &APP_CSS,
        "checks.css" => &CHECKS_CSS,
        "favicon.svg" => &FAVICON,
        _ => {
            return ApiError::NotFound(format!("no static file {file:?}")).into_response();
        }
    };
    serve_asset(asset, &headers)
}

/// `GET /view/{ID}.html` (the HTML body, sandboxed; `?remote=1` allows remote
/// images) and `GET /view/{ID}.txt` (the text body), as Mailpit names them;
/// `GET /view/{ID}` and `/view/latest`, the page opened on that message.
pub(crate) async fn view(
    State(state): State<AppState>,
    Path(file): Path<String>,
    headers: HeaderMap,
    query: Result<Query<BTreeMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let query = query_map(query)?;
    let remote = query.get("remote").is_some_and(|value| value == "1");
    let (id, html) = match (file.strip_suffix(".html"), file.strip_suffix(".txt")) {
        (Some(id), _) => (id, true),
        (None, Some(id)) => (id, false),
        // `/view/{ID}` and `/view/latest` are the page itself, opened on
        // that message (a link to paste to a colleague).
        _ if file == "latest" || file.bytes().all(|b| b.is_ascii_digit()) && !file.is_empty() => {
            return Ok(state.inner.page.serve(&headers));
        }
        _ => {
            return Err(ApiError::NotFound(format!(
                "no view {file:?}; ask for ID, latest, ID.html or ID.txt"
            )));
        }
    };
    let reference = MessageRef::parse(id)?;
    let parsing = state.parse_permit().await?;
    let (id, parsed) = blocking(&state, move |store| {
        let id = reference.resolve(store)?;
        let raw = store
            .raw(id)?
            .ok_or_else(|| ApiError::NotFound(format!("message {id} not found")))?;
        Ok((id, mime::parse(&raw)))
    })
    .await?;
    drop(parsing);
    if !html {
        let mut text = parsed.text.unwrap_or_default();
        if !text.ends_with('\n') {
            text.push('\n');
        }
        let mut response = crate::api::buffered(&state, text.into())?.into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        return Ok(response);
    }
    let Some(body) = parsed.html else {
        return Err(ApiError::NotFound(format!("message {id} has no HTML part")));
    };
    // The Host was checked by the guard (or any host is allowed); it names this
    // server as the browser sees it.
    let host = headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .filter(|host| host.bytes().all(|b| b.is_ascii_graphic()) && !host.contains([';', ',']));
    let parts_url = state
        .config()
        .web_root
        .join(&format!("/api/v1/message/{id}/part/"));
    let document = format!(
        "<base target=\"_blank\">{}",
        link_inline_parts(&body, &parts_url, &parsed.attachments)
    );
    let policy = view_policy(host, &parts_url, remote);
    let mut response = crate::api::buffered(&state, document.into())?.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_str(&policy).map_err(|_| ApiError::BadRequest("bad Host".into()))?,
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// The policy of a message's HTML document: no script in any form, styles only
/// inline, images from `data:` and this message's parts (and the web only when
/// the user allowed remote images), nothing else at all; only the page on
/// `host` (the request's `Host`) may frame it.
///
/// The browser may have reached `host` over HTTP or HTTPS: sokkel's own TLS
/// (`--ui-tls-*`) or a proxy's in front of plain HTTP, which sokkel cannot tell
/// apart from a browser's plain request. Both schemes name the same host and
/// port, so the policy lists both rather than trusting `X-Forwarded-Proto`.
fn view_policy(host: Option<&str>, parts_url: &str, remote: bool) -> String {
    let mut images = vec!["data:".to_string()];
    let mut ancestors = Vec::new();
    for scheme in ["http", "https"] {
        if let Some(host) = host {
            images.push(format!("{scheme}://{host}{parts_url}"));
            ancestors.push(format!("{scheme}://{host}"));
        }
    }
    if remote {
        images.push("http:".into());
        images.push("https:".into());
    }
    let ancestors = if ancestors.is_empty() {
        "'self'".to_string()
    } else {
        ancestors.join(" ")
    };
    format!(
        "default-src 'none'; style-src 'unsafe-inline'; img-src {}; font-src data:; \
         form-action 'none'; base-uri 'none'; frame-ancestors {ancestors}; \
         sandbox allow-popups allow-popups-to-escape-sandbox",
        images.join(" ")
    )
}

/// Points `cid:` references of inline parts at this server's part URLs, so
/// embedded images show without loosening the policy.
fn link_inline_parts(html: &str, parts_url: &str, parts: &[mime::AttachmentInfo]) -> String {
    let mut html = html.to_string();
    for part in parts {
        if let Some(content_id) = part.content_id.as_deref().filter(|id| !id.is_empty()) {
            let url = format!("{parts_url}{}", part.part_id);
            for quote in ['"', '\''] {
                html = html.replace(
                    &format!("{quote}cid:{content_id}{quote}"),
                    &format!("{quote}{url}{quote}"),
                );
            }
        }
    }
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_policy_blocks_remote_until_allowed() {
        let policy = view_policy(Some("127.0.0.1:8025"), "/api/v1/message/3/part/", false);
        assert!(policy.contains(
            "img-src data: http://127.0.0.1:8025/api/v1/message/3/part/ \
             https://127.0.0.1:8025/api/v1/message/3/part/;"
        ));
        assert!(policy.contains("default-src 'none'"));
        assert!(!policy.contains(" https:;"));
        assert!(!policy.contains("script"));
        let policy = view_policy(Some("127.0.0.1:8025"), "/api/v1/message/3/part/", true);
        assert!(policy.contains(" http: https:;"));
    }

    /// Issue #18: behind HTTPS (sokkel's own or a proxy's) on any port, the
    /// page may still frame the message.
    #[test]
    fn view_policy_lets_the_page_frame_it_over_either_scheme() {
        let policy = view_policy(
            Some("mail.test:18933"),
            "/mail/api/v1/message/3/part/",
            false,
        );
        assert!(
            policy.contains("frame-ancestors http://mail.test:18933 https://mail.test:18933;"),
            "{policy}"
        );
        let policy = view_policy(None, "/api/v1/message/3/part/", false);
        assert!(policy.contains("img-src data:;"), "{policy}");
        assert!(policy.contains("frame-ancestors 'self';"), "{policy}");
    }

    #[test]
    fn cid_links_point_at_parts() {
        let parts = [mime::AttachmentInfo {
            part_id: "2".into(),
            file_name: "logo.png".into(),
            content_type: "image/png".into(),
            content_id: Some("logo@x".into()),
            size: 3,
            inline: true,
        }];
        let html = link_inline_parts(
            "<img src=\"cid:logo@x\"><img src='cid:logo@x'>",
            "/p/",
            &parts,
        );
        assert_eq!(html, "<img src=\"/p/2\"><img src='/p/2'>");
    }

    #[test]
    fn the_page_names_its_root() {
        let page = Page::new(&WebRoot::parse("/mail/").unwrap());
        let html = std::str::from_utf8(&page.bytes).unwrap();
        assert!(html.contains("<html lang=\"en\" data-root=\"/mail/\">"));
        assert!(html.contains("<script src=\"/mail/static/app.js\" defer>"));
        assert!(html.contains("<a href=\"/mail/\" id=\"home\">"));
        for outside in ["=\"/static", "=\"/\"", "<base"] {
            assert!(!html.contains(outside), "{outside}");
        }
        let top = Page::new(&WebRoot::default());
        assert_eq!(top.bytes, INDEX.bytes);
        assert_ne!(page.etag, top.etag);
    }

    #[test]
    fn etags_differ_by_content() {
        assert_ne!(etag_of(b"a"), etag_of(b"b"));
        assert_eq!(etag_of(b"a"), etag_of(b"a"));
    }
}
