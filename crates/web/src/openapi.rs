//! The OpenAPI description of exactly what sokkel serves, written by hand and
//! embedded; served at `/api/v1/openapi.json` and, where Mailpit users look for
//! it, `/api/v1/swagger.json`. A test checks that it lists every route.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

/// The document, as served.
pub(crate) const OPENAPI_JSON: &str = include_str!("openapi.json");

/// `GET /api/v1/openapi.json` and `GET /api/v1/swagger.json`.
pub(crate) async fn document() -> Response {
    let mut response = OPENAPI_JSON.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
