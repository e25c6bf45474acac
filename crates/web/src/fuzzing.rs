//! The web API's parsing of what a user types, in one call for the `web_query`
//! fuzz target (fuzz/fuzz_targets/web_query.rs); not an API.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::Query;
use axum::http::Uri;
use sokkel_store::SearchQuery;

use crate::api::{MessageRef, Paging, parse_ids, parse_ids_body};
use crate::{ApiError, MAX_PAGE};

/// Runs `input` through every parser of user input the API has: as a message ID
/// (path segment), as a query string (`start`, `limit`, `before`, `query`), and as
/// the JSON body of `PUT`/`DELETE /api/v1/messages`. Panics if a parser breaks a
/// promise: a page over [`MAX_PAGE`], an error that is not one line. Returns the
/// search query the `query` parameter parsed to, for the caller to run.
pub fn parse_user_input(input: &[u8]) -> Option<SearchQuery> {
    let text = String::from_utf8_lossy(input);
    check(MessageRef::parse(&text).map(|_| ()));
    let body = parse_ids_body(&Bytes::copy_from_slice(input));
    check(body.and_then(|body| parse_ids(&body.ids)).map(|_| ()));
    let uri: Uri = format!("/api/v1/search?{text}").parse().ok()?;
    let Ok(Query(query)) = Query::<BTreeMap<String, String>>::try_from_uri(&uri) else {
        return None;
    };
    match Paging::from_query(&query) {
        Ok(paging) => assert!(paging.limit <= MAX_PAGE),
        Err(error) => check::<()>(Err(error)),
    }
    match crate::search::parse_query(&query) {
        Ok((_, parsed)) => Some(parsed),
        Err(error) => {
            check::<()>(Err(error));
            None
        }
    }
}

/// A user's mistake must be a one-line 400.
fn check<T>(result: Result<T, ApiError>) {
    match result {
        Ok(_) => {}
        Err(ApiError::BadRequest(message)) => {
            assert!(!message.contains(['\n', '\r']), "{message:?}");
        }
        Err(other) => panic!("user input gave {other:?}, not a 400"),
    }
}
