//! `/api/v1/search` and the `Search` field of `PUT /api/v1/messages`: the store's
//! full-text search behind Mailpit's parameters.
//!
//! The syntax (free text, quoted phrases and every Mailpit operator: `from:`,
//! `to:`, `cc:`, `bcc:`, `reply-to:`, `addressed:`, `subject:`, `message-id:`,
//! `tag:`, `is:`, `has:`, `larger:`, `smaller:`, `before:`, `after:`, `-` or `!`
//! to negate) is parsed by the store, with the dates in the time zone of the
//! `tz` parameter (UTC without one); a query or zone it refuses is a 400 carrying
//! the store's one-line reason.

use std::collections::BTreeMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::Response;
use sokkel_store::{ListQuery, SearchQuery};

use crate::api::{Paging, blocking, json_bytes, json_response, ok, query_map};
use crate::json::MessagesJson;
use crate::{ApiError, AppState};

/// The `query` parameter, parsed in the time zone of the `tz` parameter;
/// Mailpit's wording when it is missing.
pub(crate) fn parse_query(
    query: &BTreeMap<String, String>,
) -> Result<(String, SearchQuery), ApiError> {
    let text = query.get("query").map(|q| q.trim()).unwrap_or_default();
    if text.is_empty() {
        return Err(ApiError::BadRequest("Error: no search query".into()));
    }
    let parsed = parse_text(text, time_zone(query))?;
    Ok((text.to_string(), parsed))
}

/// Mailpit's `tz` parameter: the zone `before:` and `after:` dates are in.
fn time_zone(query: &BTreeMap<String, String>) -> Option<&str> {
    query.get("tz").map(String::as_str)
}

pub(crate) fn parse_text(text: &str, tz: Option<&str>) -> Result<SearchQuery, ApiError> {
    SearchQuery::parse_in(text, tz).map_err(|error| ApiError::BadRequest(error.to_string()))
}

/// `GET /api/v1/search?query=&tz=&start=&limit=&before=`: a page of matches, newest
/// first, with how many match in all (`messages_count`) and how many of those
/// are unread (`messages_unread`).
pub(crate) async fn search(
    State(state): State<AppState>,
    query: Result<Query<BTreeMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let query = query_map(query)?;
    let paging = Paging::from_query(&query)?;
    let (text, parsed) = parse_query(&query)?;
    // The unread count is the same search with one more condition; put first, so
    // that the last word of the text stays a prefix as the user typed it.
    let unread_query = SearchQuery::parse_in(&format!("is:unread {text}"), time_zone(&query)).ok();
    let page = blocking(&state, move |store| {
        let counts = store.count()?;
        let page = store.search(&parsed, &paging.list_query())?;
        let unread = match unread_query {
            Some(query) => Some(
                store
                    .search(
                        &query,
                        &ListQuery {
                            limit: 0,
                            ..ListQuery::default()
                        },
                    )?
                    .matches,
            ),
            None => None,
        };
        let tags = store.tag_names()?;
        json_bytes(
            &MessagesJson::new(counts, page.matches, unread, paging.start, &page.messages)
                .with_tags(tags),
        )
    })
    .await?;
    json_response(&state, page)
}

/// `DELETE /api/v1/search?query=&tz=`: deletes every match. A query that matches
/// everything is refused; `DELETE /api/v1/messages` says that plainly.
pub(crate) async fn delete(
    State(state): State<AppState>,
    query: Result<Query<BTreeMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let (_, parsed) = parse_query(&query_map(query)?)?;
    if parsed.is_empty() {
        return Err(ApiError::BadRequest(
            "this search matches every message; to delete them all, use DELETE /api/v1/messages"
                .into(),
        ));
    }
    blocking(&state, move |store| Ok(store.delete_matching(&parsed)?)).await?;
    Ok(ok())
}
