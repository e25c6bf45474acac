//! The OpenAPI description of exactly what sokkel serves, written by hand and
//! embedded; served at `/api/v1/openapi.json` and, where Mailpit users look for
//! it, `/api/v1/swagger.json`. A test checks that it lists every route.
//!
//! Under a web root the document names it as its server
//! (`"servers": [{"url": "/mail"}]`), so a client generated from it, or an
//! API explorer, prefixes every path with the root.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::{AppState, WebRoot};

/// The document, as served under `/`.
pub(crate) const OPENAPI_JSON: &str = include_str!("openapi.json");

/// `GET /api/v1/openapi.json` and `GET /api/v1/swagger.json`.
pub(crate) async fn document(State(state): State<AppState>) -> Response {
    let mut response = under_root(&state.config().web_root).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The document for `root`: as embedded under `/`, with a `servers` entry
/// naming the root otherwise.
fn under_root(root: &WebRoot) -> String {
    if root.is_top() {
        return OPENAPI_JSON.to_string();
    }
    let body = OPENAPI_JSON
        .trim_start()
        .strip_prefix('{')
        .expect("openapi.json is an object");
    // The root holds only URL-safe characters (WebRoot::parse), none that a
    // JSON string would escape.
    let server = root.as_str().trim_end_matches('/');
    format!("{{\n \"servers\": [{{\"url\": \"{server}\"}}],{body}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_names_the_root_as_its_server() {
        let top: serde_json::Value =
            serde_json::from_str(&under_root(&WebRoot::default())).unwrap();
        assert!(top.get("servers").is_none());
        let root = WebRoot::parse("/tools/mail/").unwrap();
        let under: serde_json::Value = serde_json::from_str(&under_root(&root)).unwrap();
        assert_eq!(
            under["servers"],
            serde_json::json!([{"url": "/tools/mail"}])
        );
        assert_eq!(under["paths"], top["paths"]);
    }
}
