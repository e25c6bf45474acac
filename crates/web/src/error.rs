//! What can go wrong, and the one place each error becomes an HTTP answer.
//!
//! Mailpit answers errors as `text/plain` with a 4xx status and a one-line
//! message; clients written for it only look at the status. sokkel does the same,
//! with messages that say what to change. Store errors a user can act on say so:
//! a full store is 507 Insufficient Storage ("delete messages to make room"), a
//! busy or closed one 503, a database that cannot be reached (PostgreSQL down
//! or restarting) 503 with `Retry-After`, a tag name the store refuses 400
//! with the reason.
//! Other failures of the store are logged and answered
//! with a plain 500, never with details a user cannot act on.

use std::io;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sokkel_store::StoreError;

/// What a 503 for a store that is busy or cannot be reached tells the client
/// to wait, in seconds (`Retry-After`).
pub(crate) const RETRY_AFTER_SECONDS: u32 = 2;

/// Store errors answered 503, logged once per interval: a database that is
/// down fails every request until it is back.
static UNAVAILABLE_LOG: sokkel_net::repeated::RepeatedLog =
    sokkel_net::repeated::RepeatedLog::new(sokkel_net::repeated::REPEAT_INTERVAL);

/// An error answering one request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// The request is malformed: a bad query parameter, body or ID (400).
    #[error("{0}")]
    BadRequest(String),
    /// The message or part does not exist (404).
    #[error("{0}")]
    NotFound(String),
    /// The request is refused as a matter of policy, e.g. a foreign `Host` (403).
    #[error("{0}")]
    Forbidden(String),
    /// The server is at a limit and the client may retry later (503).
    #[error("{0}")]
    Unavailable(String),
    /// The store failed (500; 503 with `Retry-After` if it was busy or its
    /// database cannot be reached).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A blocking task could not finish (the runtime is shutting down) (503).
    #[error("the server is shutting down")]
    ShuttingDown,
    /// A bug: an answer could not be built (500; logged).
    #[error("{0}")]
    Internal(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            ApiError::BadRequest(message) => (StatusCode::BAD_REQUEST, message),
            ApiError::NotFound(message) => (StatusCode::NOT_FOUND, message),
            ApiError::Forbidden(message) => (StatusCode::FORBIDDEN, message),
            ApiError::Unavailable(message) => (StatusCode::SERVICE_UNAVAILABLE, message),
            ApiError::ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, self.to_string()),
            ApiError::Store(StoreError::Tag(error)) => (StatusCode::BAD_REQUEST, error.to_string()),
            ApiError::Store(error @ StoreError::Full) => {
                (StatusCode::INSUFFICIENT_STORAGE, error.to_string())
            }
            ApiError::Store(error)
                if error.is_unavailable()
                    || matches!(error, StoreError::Busy | StoreError::Closed) =>
            {
                let message = error.to_string();
                let repeat = UNAVAILABLE_LOG.occurrence(&message);
                if repeat.should_log() {
                    tracing::warn!("web request answered 503: {message}{repeat}");
                }
                let mut response = text(StatusCode::SERVICE_UNAVAILABLE, message);
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
                return response;
            }
            ApiError::Internal(error) => {
                tracing::error!(%error, "web request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error; the server log has the details".to_string(),
                )
            }
            ApiError::Store(error) => {
                tracing::error!(%error, "web request failed in the store");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error; the server log has the details".to_string(),
                )
            }
        };
        text(status, message)
    }
}

/// A `text/plain` answer with a trailing newline, as curl users expect.
pub(crate) fn text(status: StatusCode, mut message: String) -> Response {
    if !message.ends_with('\n') {
        message.push('\n');
    }
    let mut response = (status, message).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// An error starting or running the web server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebError {
    /// A listener could not be handed to the async runtime.
    #[error("cannot use the HTTP listener: {0}")]
    Listener(#[source] io::Error),
}
