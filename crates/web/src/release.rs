//! Releasing a caught message to a real server: Mailpit's
//! `POST /api/v1/message/{ID}/release`, and the `Relays` a message view shows.
//!
//! ```text
//! POST /api/v1/message/{ID}/release   {"To": ["a@example.com"]}   → 200 ok
//!   no relay configured, bad body, bad or refused recipient, relay failed → 400 text
//!   no such message                                                 → 404 text
//! ```
//!
//! The web side knows no SMTP: the binary hands it a [`Release`] in
//! [`crate::WebConfig::release`] that checks recipients against the relay
//! policy and relays the stored bytes, recording each attempt in the store.
//! Recipients the policy refuses are a 400 before anything is sent.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use sokkel_store::time::rfc3339_millis;
use sokkel_store::{MessageId, RelayAttempt, StoreError};

use crate::api::{MessageRef, blocking, ok};
use crate::{ApiError, AppState};

/// The most recipients one release names; more is a 400.
pub const MAX_RELEASE_RECIPIENTS: usize = 100;

/// Why [`Release::recipients`] refuses a release's `To`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecipientError {
    /// An entry is not an email address.
    #[error("{0:?} is not an email address")]
    Invalid(String),
    /// These addresses are not allowed by the relay policy (not matched by
    /// its allowed pattern, or matched by its blocked one).
    #[error("the relay configuration does not allow {}", .0.join(", "))]
    NotAllowed(Vec<String>),
}

/// Why [`Release::release`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    /// The message does not exist (any more).
    #[error("message {0} not found")]
    NotFound(MessageId),
    /// The relay server could not be reached, or refused the message; the
    /// text says which and its reply. The attempt is recorded as failed.
    #[error("SMTP error: {0}")]
    Relay(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// As many releases as the relay allows at once are under way; nothing
    /// was sent or recorded, and trying again later may work.
    #[error("{0} releases are under way; try again when one has finished")]
    Busy(usize),
}

/// A release in progress.
pub type ReleaseFuture = Pin<Box<dyn Future<Output = Result<(), ReleaseError>> + Send>>;

/// How the relay is set up, as `GET /api/v1/webui` shows it (no secrets).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelaySettings {
    /// The relay server and how it is reached, e.g. `smtp.example.com:587 (STARTTLS)`.
    pub server: String,
    /// The pattern a recipient must match, if any.
    pub allowed: Option<String>,
    /// The pattern no recipient may match, if any.
    pub blocked: Option<String>,
    /// The envelope sender every relayed message gets, if set.
    pub override_from: Option<String>,
}

/// What the binary implements to release messages through its relay.
pub trait Release: Send + Sync + fmt::Debug {
    /// The relay's settings, for the page's release dialog.
    fn settings(&self) -> RelaySettings;

    /// The addresses of `to` (`a@b` or `Name <a@b>`) as they would be sent
    /// in RCPT TO, or why the release may not go to them.
    fn recipients(&self, to: &[String]) -> Result<Vec<String>, RecipientError>;

    /// Send the stored bytes of message `id`, unchanged, to `to` (addresses
    /// [`Release::recipients`] returned) and record the attempt.
    fn release(&self, id: MessageId, to: Vec<String>) -> ReleaseFuture;
}

#[derive(Debug, Deserialize)]
struct ReleaseBody {
    // Mailpit (Go's JSON decoding) matches field names without regard to
    // case; these are the spellings clients use.
    #[serde(rename = "To", alias = "to", alias = "TO", default)]
    to: Vec<String>,
}

/// `POST /api/v1/message/{ID}/release` with `{"To": [...]}`.
pub(crate) async fn release(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let reference = MessageRef::parse(&id)?;
    let Some(relay) = state.config().release.clone() else {
        return Err(ApiError::BadRequest(
            "message relay is not configured; start sokkel mail serve with --relay-config FILE"
                .into(),
        ));
    };
    let body: ReleaseBody = serde_json::from_slice(&body).map_err(|error| {
        ApiError::BadRequest(format!(
            r#"the body must be JSON like {{"To": ["you@example.com"]}}: {error}"#
        ))
    })?;
    if body.to.is_empty() {
        return Err(ApiError::BadRequest(
            "To: name at least one recipient".into(),
        ));
    }
    if body.to.len() > MAX_RELEASE_RECIPIENTS {
        return Err(ApiError::BadRequest(format!(
            "To: at most {MAX_RELEASE_RECIPIENTS} recipients per release, not {}",
            body.to.len()
        )));
    }
    let to = relay
        .recipients(&body.to)
        .map_err(|error| ApiError::BadRequest(format!("To: {error}")))?;
    let id = blocking(&state, move |store| {
        let id = reference.resolve(store)?;
        match store.raw_len(id)? {
            Some(_) => Ok(id),
            None => Err(ApiError::NotFound(format!("message {id} not found"))),
        }
    })
    .await?;
    match relay.release(id, to).await {
        Ok(()) => Ok(ok()),
        Err(ReleaseError::NotFound(id)) => {
            Err(ApiError::NotFound(format!("message {id} not found")))
        }
        Err(error @ ReleaseError::Relay(_)) => Err(ApiError::BadRequest(error.to_string())),
        Err(error @ ReleaseError::Busy(_)) => Err(ApiError::Unavailable(error.to_string())),
        Err(ReleaseError::Store(error)) => Err(error.into()),
    }
}

/// One relay attempt in a message view (`Relays`, sokkel's own field):
/// `{"Time": RFC 3339, "To": [...], "Skipped": [...], "OK": bool, "Reply": "..."}`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct RelayJson {
    pub time: String,
    pub to: Vec<String>,
    pub skipped: Vec<String>,
    #[serde(rename = "OK")]
    pub ok: bool,
    pub reply: String,
}

impl From<RelayAttempt> for RelayJson {
    fn from(attempt: RelayAttempt) -> Self {
        RelayJson {
            time: rfc3339_millis(attempt.at),
            to: attempt.recipients,
            skipped: attempt.skipped,
            ok: attempt.ok,
            reply: attempt.reply,
        }
    }
}

/// The attempts of a message as its view shows them.
pub(crate) fn relays_json(attempts: Vec<RelayAttempt>) -> Vec<RelayJson> {
    attempts.into_iter().map(RelayJson::from).collect()
}
