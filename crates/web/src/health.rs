//! Health checks for a load balancer or an orchestrator: `GET /livez` says
//! the process answers HTTP; `GET /readyz` says whether this node can reach
//! its store now (for PostgreSQL, one round trip), so that a balancer sends
//! SMTP to nodes that can keep what they accept.
//!
//! ```text
//! GET /readyz ─▶ spawn_blocking(Store::ping) within READY_TIMEOUT
//!                 ├─ ok      ─▶ 200 {"store":"ok"}
//!                 └─ failed  ─▶ 503 {"store":"unavailable","error":"..."} + Retry-After
//! ```

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::error::RETRY_AFTER_SECONDS;

/// How long `/readyz` waits for the store's answer before it says "not
/// ready": less than a balancer's usual check timeout (HAProxy's `timeout
/// check` defaults to its connect timeout, often 5 s).
pub(crate) const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /livez`: 200 whenever the server answers at all.
pub(crate) async fn livez() -> Response {
    Json(serde_json::json!({ "status": "ok" })).into_response()
}

/// `GET /readyz`: 200 when the store answers within [`READY_TIMEOUT`], 503
/// otherwise.
pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    let store = state.store().clone();
    let ping = tokio::task::spawn_blocking(move || store.ping());
    let failure = match tokio::time::timeout(READY_TIMEOUT, ping).await {
        Ok(Ok(Ok(()))) => return Json(serde_json::json!({ "store": "ok" })).into_response(),
        Ok(Ok(Err(error))) => {
            // The reason (host, role) is for the operator's log, not for
            // whoever can reach the health check.
            tracing::debug!(%error, "readyz: the store is unavailable");
            "the store's database is unavailable".to_string()
        }
        Ok(Err(_)) => "the server is shutting down".to_string(),
        Err(_) => format!(
            "the store did not answer within {} s",
            READY_TIMEOUT.as_secs()
        ),
    };
    let body = serde_json::json!({ "store": "unavailable", "error": failure });
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
    response
}
