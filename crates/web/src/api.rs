//! The `/api/v1` handlers: Mailpit's paths, parameters and answers.
//!
//! Every handler validates its input first (a bad ID, parameter or body is a 400
//! with a message that says what to send instead), then does its store work in
//! `spawn_blocking`, then shapes the answer with [`crate::json`].

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use mail_parser::{HeaderName, HeaderValue as MailHeaderValue, MessageParser};
use serde::Deserialize;
use sokkel_store::{
    Address, FlagChange, ListQuery, MessageId, RAW_CHUNK_BYTES, SearchQuery, Store, StoredMessage,
    mime,
};

use crate::error::text;
use crate::json::{
    AddressList, BodyParts, EnvelopeJson, InfoJson, MessageJson, MessagesJson, RuntimeStatsJson,
};
use crate::{ApiError, AppState, MAX_PAGE};

/// Runs blocking store work off the async workers.
pub(crate) async fn blocking<T, F>(state: &AppState, work: F) -> Result<T, ApiError>
where
    F: FnOnce(&Store) -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    let store = state.store().clone();
    tokio::task::spawn_blocking(move || work(&store))
        .await
        .map_err(|_| ApiError::ShuttingDown)?
}

/// A message named in a path: a store id, or `latest` for the newest message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MessageRef {
    Id(MessageId),
    Latest,
}

impl MessageRef {
    pub(crate) fn parse(input: &str) -> Result<MessageRef, ApiError> {
        if input == "latest" {
            return Ok(MessageRef::Latest);
        }
        match input.parse::<i64>() {
            Ok(id) if id > 0 && input.bytes().all(|b| b.is_ascii_digit()) => {
                Ok(MessageRef::Id(MessageId(id)))
            }
            _ => Err(ApiError::BadRequest(format!(
                "message ID must be a positive number or `latest`, not {input:?}"
            ))),
        }
    }

    /// The id this names, or 404 if there are no messages at all.
    pub(crate) fn resolve(self, store: &Store) -> Result<MessageId, ApiError> {
        match self {
            MessageRef::Id(id) => Ok(id),
            MessageRef::Latest => store
                .latest()?
                .ok_or_else(|| ApiError::NotFound("there are no messages".to_string())),
        }
    }
}

fn not_found_message(id: MessageId) -> ApiError {
    ApiError::NotFound(format!("message {id} not found"))
}

/// One message with everything, or 404.
fn load(store: &Store, reference: MessageRef) -> Result<StoredMessage, ApiError> {
    let id = reference.resolve(store)?;
    store.get(id)?.ok_or_else(|| not_found_message(id))
}

/// The query parameters of a list or search, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Paging {
    pub start: usize,
    pub limit: usize,
    pub before: Option<MessageId>,
}

impl Paging {
    /// `start` (default 0), `limit` (default 50, at most [`MAX_PAGE`]) and sokkel's
    /// `before` cursor: only messages with a smaller ID, so that paging through a
    /// big mailbox while mail arrives neither repeats nor skips messages.
    pub(crate) fn from_query(query: &BTreeMap<String, String>) -> Result<Paging, ApiError> {
        let number = |name: &str| -> Result<Option<u64>, ApiError> {
            match query.get(name).map(|value| value.trim()) {
                None | Some("") => Ok(None),
                Some(value) => value.parse::<u64>().map(Some).map_err(|_| {
                    ApiError::BadRequest(format!(
                        "`{name}` takes a whole number of 0 or more, not {value:?}"
                    ))
                }),
            }
        };
        let start = number("start")?.unwrap_or(0);
        let limit = number("limit")?.unwrap_or(50);
        let before = match query.get("before").map(|value| value.trim()) {
            None | Some("") => None,
            Some(value) => match MessageRef::parse(value) {
                Ok(MessageRef::Id(id)) => Some(id),
                _ => {
                    return Err(ApiError::BadRequest(format!(
                        "`before` takes a message ID (list the messages older than it), not {value:?}"
                    )));
                }
            },
        };
        Ok(Paging {
            start: usize::try_from(start).unwrap_or(usize::MAX),
            limit: usize::try_from(limit).unwrap_or(usize::MAX).min(MAX_PAGE),
            before,
        })
    }

    pub(crate) fn list_query(&self) -> ListQuery {
        ListQuery {
            limit: self.limit,
            offset: self.start,
            before: self.before,
        }
    }
}

/// Turns axum's query rejection into a 400 with our wording.
pub(crate) fn query_map(
    query: Result<Query<BTreeMap<String, String>>, QueryRejection>,
) -> Result<BTreeMap<String, String>, ApiError> {
    query
        .map(|Query(map)| map)
        .map_err(|_| ApiError::BadRequest("the query string is not valid URL encoding".into()))
}

/// `GET /api/v1/messages?start=&limit=&before=`: a page of summaries, newest first.
pub(crate) async fn list(
    State(state): State<AppState>,
    query: Result<Query<BTreeMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let paging = Paging::from_query(&query_map(query)?)?;
    let page = blocking(&state, move |store| {
        let counts = store.count()?;
        let messages = store.list(&paging.list_query())?;
        let tags = store.tag_names()?;
        json_bytes(
            &MessagesJson::new(
                counts,
                counts.total,
                Some(counts.unread),
                paging.start,
                &messages,
            )
            .with_tags(tags),
        )
    })
    .await?;
    json_response(&state, page)
}

/// `value` as JSON, serialized where the data is (on the blocking pool), so the
/// borrowed shapes of [`crate::json`] need no copies.
pub(crate) fn json_bytes<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, ApiError> {
    serde_json::to_vec(value).map_err(|error| ApiError::Internal(error.to_string()))
}

/// A JSON answer from bytes [`json_bytes`] made, counted against the
/// [`crate::WebConfig::max_buffered_bytes`] budget.
pub(crate) fn json_response(state: &AppState, bytes: Vec<u8>) -> Result<Response, ApiError> {
    let mut response = buffered(state, bytes.into())?.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

/// The budget's unit: answers smaller than this are not counted.
const BUFFERED_UNIT: usize = 64 << 10;

/// The body of an answer built in memory (JSON, a decoded part, a document),
/// sent in slices of [`RAW_CHUNK_BYTES`]. From [`BUFFERED_UNIT`] up it holds its
/// size of the [`crate::WebConfig::max_buffered_bytes`] budget until its last slice is
/// taken or the client goes away; when the budget is spent, the answer is a 503
/// and the client may retry. So clients that stop reading hold a bounded total.
pub(crate) fn buffered(state: &AppState, bytes: Bytes) -> Result<Body, ApiError> {
    if bytes.len() < BUFFERED_UNIT {
        return Ok(Body::from(bytes));
    }
    // An answer bigger than the whole budget (a huge --max-message-size) waits
    // for all of it rather than never fitting.
    let units = bytes
        .len()
        .div_ceil(BUFFERED_UNIT)
        .min((state.config().max_buffered_bytes / BUFFERED_UNIT).max(1));
    let units = u32::try_from(units).unwrap_or(u32::MAX);
    let share = Arc::clone(&state.inner.buffered)
        .try_acquire_many_owned(units)
        .map_err(|_| {
            ApiError::Unavailable(
                "too many large answers are waiting for their clients to read them; try again"
                    .into(),
            )
        })?;
    let slices =
        futures_util::stream::unfold((bytes, Some(share)), |(mut rest, share)| async move {
            if rest.is_empty() {
                // `share` is released here, with the stream's state.
                return None;
            }
            let slice = rest.split_to(rest.len().min(RAW_CHUNK_BYTES));
            Some((Ok::<_, std::convert::Infallible>(slice), (rest, share)))
        });
    Ok(Body::from_stream(slices))
}

/// The body of `PUT` and `DELETE /api/v1/messages`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct IdsBody {
    #[serde(rename = "IDs", default)]
    pub(crate) ids: Vec<String>,
    #[serde(rename = "Read", default)]
    read: Option<bool>,
    /// sokkel's own: star or unstar.
    #[serde(rename = "Flagged", default)]
    flagged: Option<bool>,
    #[serde(rename = "Search", default)]
    search: String,
}

/// Parses a JSON body whatever its Content-Type, as Mailpit does (curl's `-d`
/// sends a form type). An empty body is an empty request. Cross-site pages cannot
/// abuse this: PUT and DELETE need a CORS preflight that sokkel never grants.
pub(crate) fn parse_ids_body(body: &Bytes) -> Result<IdsBody, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(IdsBody::default());
    }
    serde_json::from_slice(body).map_err(|error| {
        ApiError::BadRequest(format!(
            "the body must be JSON like {{\"IDs\": [\"1\", \"2\"]}}: {error}"
        ))
    })
}

pub(crate) fn parse_ids(ids: &[String]) -> Result<Vec<MessageId>, ApiError> {
    ids.iter()
        .map(|id| match MessageRef::parse(id)? {
            MessageRef::Id(id) => Ok(id),
            MessageRef::Latest => Err(ApiError::BadRequest(
                "`latest` is not allowed in IDs; name messages by their ID".into(),
            )),
        })
        .collect()
}

pub(crate) fn ok() -> Response {
    text(StatusCode::OK, "ok".to_string())
}

/// `DELETE /api/v1/messages` with `{"IDs": [...]}`; no body or no IDs deletes
/// every message. Unknown IDs are ignored, as Mailpit does.
pub(crate) async fn delete(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request = parse_ids_body(&body)?;
    let ids = parse_ids(&request.ids)?;
    blocking(&state, move |store| {
        if ids.is_empty() {
            store.delete_all()?;
        } else {
            store.delete(&ids)?;
        }
        Ok(())
    })
    .await?;
    Ok(ok())
}

/// `PUT /api/v1/messages` with `{"IDs": [...], "Read": true|false, "Flagged":
/// true|false}`; with no IDs (and no `Search`) it changes every message. `Read`
/// and `Flagged` are each optional; a body with neither marks the messages
/// unread, since Mailpit's `Read` defaults to false. Dates in `Search` are in
/// the zone of the `tz` query parameter, as in a search.
pub(crate) async fn set_read(
    State(state): State<AppState>,
    params: Result<Query<BTreeMap<String, String>>, QueryRejection>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let tz = params
        .ok()
        .and_then(|Query(mut params)| params.remove("tz"));
    let request = parse_ids_body(&body)?;
    let ids = parse_ids(&request.ids)?;
    let change = match (request.read, request.flagged) {
        (None, None) => FlagChange {
            read: Some(false),
            flagged: None,
        },
        (read, flagged) => FlagChange { read, flagged },
    };
    let search = request.search.trim().to_string();
    if !ids.is_empty() && !search.is_empty() {
        return Err(ApiError::BadRequest(
            "give either IDs or Search, not both".into(),
        ));
    }
    let query = if search.is_empty() {
        None
    } else {
        Some(crate::search::parse_text(&search, tz.as_deref())?)
    };
    blocking(&state, move |store| {
        if ids.is_empty() {
            set_flags_matching(store, query.as_ref(), change)
        } else {
            store.set_flags(&ids, change)?;
            Ok(())
        }
    })
    .await?;
    Ok(ok())
}

/// Applies `change` to every message `query` matches (every message for
/// `None`), a page of ids at a time so memory stays flat however big the
/// mailbox is.
fn set_flags_matching(
    store: &Store,
    query: Option<&SearchQuery>,
    change: FlagChange,
) -> Result<(), ApiError> {
    let mut before = None;
    loop {
        let page = ListQuery {
            limit: MAX_PAGE,
            offset: 0,
            before,
        };
        let page = match query {
            None => store.list(&page)?,
            Some(query) => store.search(query, &page)?.messages,
        };
        let Some(last) = page.last() else {
            return Ok(());
        };
        before = Some(last.id);
        let ids: Vec<MessageId> = page
            .iter()
            .filter(|summary| {
                change.read.is_some_and(|read| read != summary.read)
                    || change.flagged.is_some_and(|star| star != summary.flagged)
            })
            .map(|summary| summary.id)
            .collect();
        if !ids.is_empty() {
            store.set_flags(&ids, change)?;
        }
    }
}

/// `GET /api/v1/message/{ID}`: the whole message, parsed; marks it read. Its
/// size is bounded by [`crate::json::MESSAGE_ADDRESSES`] and
/// [`crate::json::MESSAGE_BODY_BYTES`].
pub(crate) async fn message(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let reference = MessageRef::parse(&id)?;
    let _parsing = state.parse_permit().await?;
    let message = blocking(&state, move |store| {
        let mut message = load(store, reference)?;
        if !message.summary.read {
            store.set_read(&[message.summary.id], true)?;
            message.summary.read = true;
        }
        let relays = store.relay_attempts(message.summary.id)?;
        let body = body_parts(&message);
        let mut json = MessageJson::new(&message, &body);
        json.relays = crate::release::relays_json(relays);
        json_bytes(&json)
    })
    .await?;
    json_response(&state, message)
}

/// The first [`crate::json::MESSAGE_ADDRESSES`] of a header's addresses, and
/// how many it has. Empty entries (a group's end) are left out, as in the store's
/// summaries.
fn address_list(list: Option<&mail_parser::Address<'_>>) -> AddressList {
    let mut first = Vec::new();
    let mut count = 0;
    for addr in list.into_iter().flat_map(|list| list.iter()) {
        let name = addr.name().unwrap_or_default();
        let address = addr.address().unwrap_or_default();
        if name.is_empty() && address.is_empty() {
            continue;
        }
        count += 1;
        if first.len() < crate::json::MESSAGE_ADDRESSES {
            first.push(Address {
                name: name.to_string(),
                address: address.to_string(),
            });
        }
    }
    AddressList { first, count }
}

fn body_parts(message: &StoredMessage) -> BodyParts {
    let parsed = mime::parse(&message.raw);
    let mut to = AddressList::default();
    let mut cc = AddressList::default();
    let mut bcc = AddressList::default();
    let mut reply_to = AddressList::default();
    let mut return_path = None;
    // Only the top header block, and only the fields read here: a full parse
    // builds a tree as deep as the message nests, whose drop overflowed the stack
    // (issue #11).
    let header_parser = MessageParser::new()
        .header_address(HeaderName::To)
        .header_address(HeaderName::Cc)
        .header_address(HeaderName::Bcc)
        .header_address(HeaderName::ReplyTo)
        .header_id(HeaderName::ReturnPath);
    if let Some(mail) = header_parser.parse_headers(&message.raw) {
        to = address_list(mail.to());
        cc = address_list(mail.cc());
        bcc = address_list(mail.bcc());
        reply_to = address_list(mail.reply_to());
        return_path = match mail.return_path() {
            MailHeaderValue::Text(text) => Some(text.to_string()),
            MailHeaderValue::TextList(list) => list.first().map(|text| text.to_string()),
            _ => None,
        };
    }
    // The view keeps MESSAGE_BODY_BYTES of text; converting more HTML than a
    // few times that could not add to it.
    let text_from_html = match (&parsed.text, &parsed.html) {
        (None, Some(html)) => Some(mail_parser::decoders::html::html_to_text(
            crate::json::prefix(html, 4 * crate::json::MESSAGE_BODY_BYTES),
        )),
        _ => None,
    };
    BodyParts {
        // Without a Return-Path header the envelope sender is the return path.
        return_path: return_path
            .map(|path| path.trim_matches(['<', '>', ' ']).to_string())
            .unwrap_or_else(|| message.envelope.mail_from.clone()),
        parsed,
        to,
        cc,
        bcc,
        reply_to,
        text_from_html,
    }
}

/// Query parameters of `/raw`.
#[derive(Debug, Deserialize)]
pub(crate) struct RawParams {
    #[serde(default)]
    dl: Option<String>,
}

/// `GET /api/v1/message/{ID}/raw`: the exact bytes received; `?dl=1` as a
/// download named `ID.eml`.
///
/// Streamed from the store [`RAW_CHUNK_BYTES`] at a time, each chunk read only
/// when the connection has sent the one before: a client that stops reading
/// holds one chunk and the socket buffers, not the message. A message deleted
/// during the download ends it early (the connection closes short of the
/// announced `Content-Length`, so the client sees an incomplete transfer).
pub(crate) async fn raw(
    State(state): State<AppState>,
    Path(id): Path<String>,
    query: Result<Query<RawParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let download = query.ok().and_then(|Query(params)| params.dl).as_deref() == Some("1");
    let reference = MessageRef::parse(&id)?;
    let (id, len) = blocking(&state, move |store| {
        let id = reference.resolve(store)?;
        let len = store.raw_len(id)?.ok_or_else(|| not_found_message(id))?;
        Ok((id, len))
    })
    .await?;
    let mut response =
        Body::from_stream(raw_chunks(state.store().clone(), id, len)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if download {
        headers.insert(
            header::CONTENT_DISPOSITION,
            content_disposition("attachment", &format!("{id}.eml")),
        );
    }
    Ok(response)
}

/// Why a download ended early.
#[derive(Debug, thiserror::Error)]
enum Interrupted {
    #[error("message {0} was deleted during its download")]
    Deleted(MessageId),
    #[error("reading message {0} failed: {1}")]
    Store(MessageId, String),
}

/// The raw bytes of message `id` (`len` of them) as a stream of chunks, each read
/// on the blocking pool when the previous one has been taken.
fn raw_chunks(
    store: Store,
    id: MessageId,
    len: u64,
) -> impl futures_util::Stream<Item = Result<Bytes, Interrupted>> + Send + 'static {
    futures_util::stream::try_unfold(0_u64, move |offset| {
        let store = store.clone();
        async move {
            if offset >= len {
                return Ok(None);
            }
            let want = usize::try_from(len - offset)
                .unwrap_or(usize::MAX)
                .min(RAW_CHUNK_BYTES);
            let chunk = tokio::task::spawn_blocking(move || store.raw_chunk(id, offset, want))
                .await
                .map_err(|error| Interrupted::Store(id, error.to_string()))?;
            match chunk {
                Ok(Some(chunk)) if !chunk.is_empty() => {
                    let next = offset + chunk.len() as u64;
                    Ok(Some((Bytes::from(chunk), next)))
                }
                Ok(_) => {
                    tracing::debug!(%id, offset, "message deleted during its download");
                    Err(Interrupted::Deleted(id))
                }
                Err(error) => {
                    tracing::warn!(%id, %error, "reading a message for download failed");
                    Err(Interrupted::Store(id, error.to_string()))
                }
            }
        }
    })
}

/// `GET /api/v1/message/{ID}/headers`: every header field, as Mailpit's map of
/// canonical names to lists of values.
pub(crate) async fn headers(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let reference = MessageRef::parse(&id)?;
    let _parsing = state.parse_permit().await?;
    let headers = blocking(&state, move |store| {
        let id = reference.resolve(store)?;
        let raw = store.raw(id)?.ok_or_else(|| not_found_message(id))?;
        json_bytes(&crate::json::headers(&mime::parse(&raw)))
    })
    .await?;
    json_response(&state, headers)
}

/// `GET /api/v1/message/{ID}/envelope` (sokkel's own): what SMTP said.
pub(crate) async fn envelope(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let reference = MessageRef::parse(&id)?;
    let envelope = blocking(&state, move |store| {
        Ok(EnvelopeJson::from(&load(store, reference)?))
    })
    .await?;
    Ok(Json(envelope).into_response())
}

/// Media types a browser would run or render as a page of sokkel's origin; they
/// are sent as downloads, never inline.
const ACTIVE_TYPES: &[&str] = &[
    "text/html",
    "text/xml",
    "application/xhtml+xml",
    "image/svg+xml",
    "application/xml",
    "text/xsl",
    "application/javascript",
    "text/javascript",
];

/// `GET /api/v1/message/{ID}/part/{PartID}`: one attachment or inline part,
/// decoded, with its type. Types a browser would execute come as downloads.
pub(crate) async fn part(
    State(state): State<AppState>,
    Path((id, part_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let reference = MessageRef::parse(&id)?;
    if part_id.is_empty() || !part_id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::BadRequest(format!(
            "part ID must be a number from the message's Attachments or Inline, not {part_id:?}"
        )));
    }
    let parsing = state.parse_permit().await?;
    let (info, bytes) = blocking(&state, move |store| {
        let id = reference.resolve(store)?;
        let raw = store.raw(id)?.ok_or_else(|| not_found_message(id))?;
        mime::part(&raw, &part_id)
            .ok_or_else(|| ApiError::NotFound(format!("message {id} has no part {part_id}")))
    })
    .await?;
    drop(parsing);
    let active = ACTIVE_TYPES.contains(&info.content_type.as_str());
    let (content_type, disposition) = if active {
        ("application/octet-stream".to_string(), "attachment")
    } else if info.content_type.starts_with("text/") {
        (format!("{}; charset=utf-8", info.content_type), "inline")
    } else {
        (info.content_type.clone(), "inline")
    };
    let length = bytes.len();
    let mut response = buffered(&state, bytes.into())?.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    headers.insert(
        header::CONTENT_TYPE,
        Some(content_type)
            .filter(|value| value.len() <= MAX_HEADER_CONTENT_TYPE)
            .and_then(|value| HeaderValue::from_str(&value).ok())
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    headers.insert(
        header::CONTENT_DISPOSITION,
        content_disposition(disposition, &info.file_name),
    );
    // Opened on its own, a part still runs nothing and loads nothing.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; img-src data:; style-src 'unsafe-inline'; sandbox",
        ),
    );
    Ok(response)
}

/// A part's media type longer than this (RFC 6838 allows 127 characters for
/// each of type and subtype) is sent as `application/octet-stream`.
pub const MAX_HEADER_CONTENT_TYPE: usize = 255;

/// The most bytes of a file name a `Content-Disposition` header carries; a
/// longer name is cut on a character boundary, keeping an extension of up to 16
/// bytes. With the ASCII fallback and the percent-encoding (three bytes for
/// each byte of the name) the header stays under 1 KiB, which every client
/// accepts.
pub const MAX_HEADER_FILE_NAME: usize = 200;

/// The name `file_name` is sent as: itself, or cut to [`MAX_HEADER_FILE_NAME`].
fn header_file_name(file_name: &str) -> std::borrow::Cow<'_, str> {
    if file_name.len() <= MAX_HEADER_FILE_NAME {
        return file_name.into();
    }
    let extension = file_name
        .rfind('.')
        .map(|dot| &file_name[dot..])
        .filter(|extension| extension.len() > 1 && extension.len() <= 16)
        .unwrap_or_default();
    let stem = &file_name[..file_name.len() - extension.len()];
    let stem = crate::json::prefix(stem, MAX_HEADER_FILE_NAME - extension.len());
    format!("{stem}{extension}").into()
}

/// `inline; filename="a.pdf"; filename*=UTF-8''a.pdf` (RFC 6266): a plain
/// ASCII fallback name and the exact name percent-encoded, the name cut to
/// [`MAX_HEADER_FILE_NAME`] bytes.
pub(crate) fn content_disposition(kind: &str, file_name: &str) -> HeaderValue {
    let file_name = header_file_name(file_name);
    let fallback: String = file_name
        .chars()
        .map(|ch| {
            if ch.is_ascii_graphic() && ch != '"' && ch != '\\' && ch != '%' {
                ch
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::new();
    for byte in file_name.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    HeaderValue::from_str(&format!(
        "{kind}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"
    ))
    .unwrap_or(HeaderValue::from_static("attachment"))
}

/// `GET /api/v1/info`: version, database, counts, tags and runtime
/// statistics (Mailpit's AppInformation).
pub(crate) async fn info(State(state): State<AppState>) -> Result<Response, ApiError> {
    let uptime = state.inner.started.elapsed().as_secs();
    let version = state.config().version.clone();
    let websockets_dropped = state.websocket_drops();
    let smtp_rejected = state.config().smtp_counters.rejected();
    let info = blocking(&state, move |store| {
        let counts = store.count()?;
        let stats = store.runtime_stats();
        Ok(InfoJson {
            version,
            latest_version: String::new(),
            database: store.location(),
            database_size: store.size_on_disk(),
            messages: counts.total,
            unread: counts.unread,
            tags: store
                .tags()?
                .into_iter()
                .map(|tag| (tag.name, tag.counts.total))
                .collect(),
            runtime_stats: RuntimeStatsJson {
                uptime,
                memory: resident_memory(),
                smtp_accepted: stats.messages_accepted,
                smtp_accepted_size: stats.bytes_accepted,
                smtp_rejected,
                smtp_ignored: 0,
                messages_deleted: stats.messages_deleted,
                websockets_dropped,
            },
        })
    })
    .await?;
    Ok(Json(info).into_response())
}

/// This process's resident set size in bytes, from `/proc` on Linux; 0 elsewhere.
fn resident_memory() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|value| {
                    value
                        .trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<u64>()
                        .ok()
                })
        })
        .map_or(0, |kib| kib * 1024)
}

/// Any path the router does not know. Outside the web root it says where the
/// page is, for the user who opened the server's address without the root.
pub(crate) async fn not_found(State(state): State<AppState>, uri: Uri) -> Response {
    let root = &state.config().web_root;
    let mut message = format!("404 page not found: {}", uri.path());
    if !uri.path().starts_with(root.as_str()) {
        message.push_str(&format!("; the page is at {root}"));
    }
    text(StatusCode::NOT_FOUND, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn paging_defaults_caps_and_errors() {
        let page = Paging::from_query(&query(&[])).unwrap();
        assert_eq!((page.start, page.limit, page.before), (0, 50, None));
        let page = Paging::from_query(&query(&[("limit", "100000"), ("start", "7")])).unwrap();
        assert_eq!((page.start, page.limit), (7, MAX_PAGE));
        let page = Paging::from_query(&query(&[("before", "42")])).unwrap();
        assert_eq!(page.before, Some(MessageId(42)));
        let huge = Paging::from_query(&query(&[("start", "18446744073709551615")])).unwrap();
        assert_eq!(huge.start, usize::MAX);
        for bad in [
            ("start", "-1"),
            ("limit", "ten"),
            ("start", "99999999999999999999999"),
            ("before", "yesterday"),
            ("before", "0"),
        ] {
            assert!(
                matches!(
                    Paging::from_query(&query(&[bad])),
                    Err(ApiError::BadRequest(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn message_refs() {
        assert_eq!(MessageRef::parse("latest").unwrap(), MessageRef::Latest);
        assert_eq!(
            MessageRef::parse("12").unwrap(),
            MessageRef::Id(MessageId(12))
        );
        for bad in ["", "0", "-3", "+3", "abc", "1e3", "99999999999999999999"] {
            assert!(MessageRef::parse(bad).is_err(), "{bad:?}");
        }
    }

    // Issue #11: an RFC 2231 name in 50,000 pieces made a 578 KB header that
    // curl and Python refuse.
    #[test]
    fn content_disposition_is_capped_and_keeps_the_extension() {
        let long = format!("{}.pdf", "ø".repeat(300_000));
        let value = content_disposition("attachment", &long);
        let text = value.to_str().unwrap();
        assert!(text.len() < 1024, "{}", text.len());
        assert!(text.starts_with("attachment; filename=\""), "{text}");
        assert!(text.ends_with(".pdf"), "{text}");
        // The encoded name is whole characters: %C3%B8 pairs, never half of one.
        let encoded = text.split("UTF-8''").nth(1).unwrap();
        assert_eq!(encoded.trim_end_matches(".pdf").len() % 6, 0, "{encoded}");
        let no_extension = "x".repeat(10_000);
        let value = content_disposition("inline", &no_extension);
        assert_eq!(
            value.to_str().unwrap(),
            format!(
                "inline; filename=\"{0}\"; filename*=UTF-8''{0}",
                "x".repeat(MAX_HEADER_FILE_NAME)
            )
        );
        let short = content_disposition("inline", "a.b");
        assert_eq!(
            short.to_str().unwrap(),
            "inline; filename=\"a.b\"; filename*=UTF-8''a.b"
        );
    }

    #[test]
    fn content_disposition_escapes_names() {
        let value = content_disposition("attachment", "rapport \"Q3\" ø.pdf");
        assert_eq!(
            value.to_str().unwrap(),
            "attachment; filename=\"rapport__Q3___.pdf\"; filename*=UTF-8''rapport%20%22Q3%22%20%C3%B8.pdf"
        );
    }
}
