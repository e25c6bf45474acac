//! Mailpit's tag endpoints: list every tag, set the tags of messages, rename a
//! tag, delete a tag.
//!
//! ```text
//! GET    /api/v1/tags         → ["a", "b"]
//! GET    /api/v1/tag-counts   → [{"Name": "a", "Total": 3, "Unread": 1}, …]  (sokkel's own)
//! PUT    /api/v1/tags         {"IDs": ["1", "2"], "Tags": ["a"]}   → ok
//! PUT    /api/v1/tags/{Tag}   {"Name": "new"}                      → ok
//! DELETE /api/v1/tags/{Tag}                                        → ok
//! ```
//!
//! A name the store refuses (see `sokkel_store::tags`) is a 400 with the reason;
//! Mailpit cleans such names silently instead. Renaming or deleting a tag no
//! message has is a 404. Each change reaches `/api/events` as one `update`
//! frame per message with its tags now (Mailpit sends `prune` after a rename
//! or delete; its page reloads on either).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::api::{blocking, ok, parse_ids};
use crate::{ApiError, AppState};

/// `GET /api/v1/tags`: every tag in use, sorted by name.
pub(crate) async fn list(State(state): State<AppState>) -> Result<Response, ApiError> {
    let names = blocking(&state, |store| Ok(store.tag_names()?)).await?;
    Ok(Json(names).into_response())
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct TagCountJson {
    name: String,
    total: u64,
    unread: u64,
}

/// `GET /api/v1/tag-counts`: every tag in use, sorted by name, with how many
/// messages have it and how many of those are unread (the page's sidebar).
pub(crate) async fn counts(State(state): State<AppState>) -> Result<Response, ApiError> {
    let tags = blocking(&state, |store| Ok(store.tags()?)).await?;
    let tags: Vec<_> = tags
        .into_iter()
        .map(|tag| TagCountJson {
            name: tag.name,
            total: tag.counts.total,
            unread: tag.counts.unread,
        })
        .collect();
    Ok(Json(tags).into_response())
}

#[derive(Debug, Deserialize)]
struct SetTagsBody {
    #[serde(rename = "IDs", default)]
    ids: Vec<String>,
    #[serde(rename = "Tags", default)]
    tags: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct RenameBody {
    #[serde(rename = "Name")]
    name: String,
}

/// A JSON body whatever its Content-Type, as Mailpit reads it.
fn parse_body<T: serde::de::DeserializeOwned>(body: &Bytes, example: &str) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|error| {
        ApiError::BadRequest(format!("the body must be JSON like {example}: {error}"))
    })
}

/// `PUT /api/v1/tags` with `{"IDs": [...], "Tags": [...]}`: replaces those
/// messages' tags (an empty `Tags` clears them). Unknown IDs are ignored, as
/// Mailpit does; no IDs changes nothing.
pub(crate) async fn set(State(state): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let body: SetTagsBody = parse_body(&body, r#"{"IDs": ["1"], "Tags": ["a", "b"]}"#)?;
    let ids = parse_ids(&body.ids)?;
    if ids.is_empty() {
        return Ok(ok());
    }
    blocking(&state, move |store| Ok(store.set_tags(&ids, &body.tags)?)).await?;
    Ok(ok())
}

/// `PUT /api/v1/tags/{Tag}` with `{"Name": "new"}`: renames the tag on every
/// message, merging it into a tag already called so.
pub(crate) async fn rename(
    State(state): State<AppState>,
    Path(tag): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body: RenameBody = parse_body(&body, r#"{"Name": "new name"}"#)?;
    let found = blocking(&state, {
        let tag = tag.clone();
        move |store| Ok(store.rename_tag(&tag, &body.name)?)
    })
    .await?;
    answer(found, &tag)
}

/// `DELETE /api/v1/tags/{Tag}`: takes the tag off every message (the messages
/// stay).
pub(crate) async fn delete(
    State(state): State<AppState>,
    Path(tag): Path<String>,
) -> Result<Response, ApiError> {
    let found = blocking(&state, {
        let tag = tag.clone();
        move |store| Ok(store.delete_tag(&tag)?)
    })
    .await?;
    answer(found, &tag)
}

fn answer(found: Option<u64>, tag: &str) -> Result<Response, ApiError> {
    match found {
        Some(_) => Ok(ok()),
        None => Err(ApiError::NotFound(format!(
            "there is no tag {tag:?}; GET /api/v1/tags lists them"
        ))),
    }
}
