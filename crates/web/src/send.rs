//! `POST /api/v1/send`: Mailpit's send API. A JSON description of a message
//! becomes a MIME message that is stored exactly as if it had arrived over SMTP.
//!
//! ```text
//! POST /api/v1/send {"From": {"Email": ..}, "To": [..], "Subject": .., "Attachments": [..]}
//!   ─▶ parse + check every field (400 naming the field)  ─▶ build MIME (mail-builder)
//!   ─▶ Deliver::deliver (the store's SMTP path: StoreEvent::New for the page,
//!      POP3/IMAP, the webhook and auto-relay)  ─▶ Tags  ─▶ {"ID": "42"}
//! ```
//!
//! The envelope is what an SMTP client would have said: MAIL FROM is
//! `From.Email`, the recipients are To, Cc and Bcc (Bcc never appears in the
//! headers), the client address is the HTTP peer and the HELO name is the
//! path of this API. Field names are matched without regard to case, as Go's
//! JSON decoder in Mailpit does; an unknown field is refused, so a typo such as
//! `Attachements` is not silently dropped.
//!
//! Bounds: the body may be as large as a message of `--max-message-size`
//! written in base64 (4/3 of it) plus 1 MiB; the message built must fit
//! `--max-message-size` (413 otherwise); at most
//! [`SendLimits::max_recipients`] recipients; at most [`crate::MAX_PARSES`]
//! requests are decoded and built at once. Errors a caller can fix are 400
//! with `{"Error": "..."}` as Mailpit answers; a full store is 507, a busy one 503.

use std::borrow::Cow;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::SystemTime;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use base64::Engine;
use mail_builder::MessageBuilder;
use mail_builder::headers::address::Address as MailAddress;
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::message_id::MessageId as MailMessageId;
use mail_builder::headers::text::Text;
use mail_builder::mime::MimePart;
use serde_json::{Map, Value};
use sokkel_store::tags::TagName;
use sokkel_store::{Deliver, DeliverError, Envelope, NewMessage};

use crate::api::blocking;
use crate::{ApiError, AppState};

/// The HELO name of messages that came through this API, shown in their envelope.
pub const SEND_HELO: &str = "/api/v1/send";

/// What `/api/v1/send` accepts: the limits SMTP applies, so a message cannot
/// get in through the API that SMTP would refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendLimits {
    /// The largest message built, in bytes (`--max-message-size`, default 32 MiB).
    pub max_message_size: usize,
    /// The most recipients (To, Cc and Bcc together; `--max-recipients`,
    /// default 1000).
    pub max_recipients: usize,
}

impl Default for SendLimits {
    fn default() -> Self {
        SendLimits {
            max_message_size: 32 << 20,
            max_recipients: 1000,
        }
    }
}

impl SendLimits {
    /// The largest request body: the whole message as base64 (4/3 of it) plus
    /// 1 MiB for the JSON around it.
    pub fn max_body_bytes(&self) -> usize {
        (self.max_message_size / 3 + 1)
            .saturating_mul(4)
            .saturating_add(1 << 20)
    }
}

/// Why a send request was not stored.
#[derive(Debug)]
pub(crate) enum SendError {
    /// A field is missing, of the wrong type or has a bad value (400).
    Field { field: String, reason: String },
    /// The body or the message built is over the limit (413).
    TooLarge(String),
    /// The store refused or failed.
    Api(ApiError),
}

impl IntoResponse for SendError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            SendError::Field { field, reason } => {
                (StatusCode::BAD_REQUEST, format!("{field}: {reason}"))
            }
            SendError::TooLarge(message) => (StatusCode::PAYLOAD_TOO_LARGE, message),
            SendError::Api(error) => return error.into_response(),
        };
        let mut response = (status, Json(serde_json::json!({ "Error": message }))).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }
}

fn bad(field: impl Into<String>, reason: impl Into<String>) -> SendError {
    SendError::Field {
        field: field.into(),
        reason: reason.into(),
    }
}

/// `POST /api/v1/send`.
pub(crate) async fn send(
    State(state): State<AppState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    body: Body,
) -> Result<Response, SendError> {
    let limits = state.config().send;
    // Reading, decoding and building a large message takes several times its
    // size in memory: at most MAX_SENDS at once, and the build (CPU and the
    // most memory) also takes one of the MAX_PARSES turns.
    let _send = state.send_permit().await.map_err(SendError::Api)?;
    let body = read_body(body, &limits).await?;
    let parse = state.parse_permit().await.map_err(SendError::Api)?;
    let outgoing = tokio::task::spawn_blocking(move || Outgoing::build(&body, &limits))
        .await
        .map_err(|_| SendError::Api(ApiError::ShuttingDown))??;
    drop(parse);
    let client_addr = peer.map_or(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)), |p| p.0.0);
    let tags = outgoing.tags.clone();
    let id = state
        .store()
        .deliver(outgoing.into_message(client_addr))
        .await
        .map_err(|error| match error {
            DeliverError::Full => SendError::Api(ApiError::Store(sokkel_store::StoreError::Full)),
            other => SendError::Api(ApiError::Unavailable(other.to_string())),
        })?;
    // The X-Tags header tagged the message already unless `--tags-disable
    // x-tags`; adding them again changes nothing then.
    if !tags.is_empty() {
        blocking(&state, move |store| Ok(store.add_tags(&[id], &tags)?))
            .await
            .map_err(SendError::Api)?;
    }
    let mut response = Json(serde_json::json!({ "ID": id.to_string() })).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

/// The whole request body, or 413 past [`SendLimits::max_body_bytes`].
async fn read_body(body: Body, limits: &SendLimits) -> Result<axum::body::Bytes, SendError> {
    axum::body::to_bytes(body, limits.max_body_bytes())
        .await
        .map_err(|_| {
            SendError::TooLarge(format!(
                "the request body is over {} bytes, the most a message of --max-message-size \
                 ({} bytes) needs in base64",
                limits.max_body_bytes(),
                limits.max_message_size
            ))
        })
}

/// A message built from a request, with what its envelope needs.
#[derive(Debug)]
struct Outgoing {
    mail_from: String,
    rcpt_to: Vec<String>,
    tags: Vec<String>,
    raw: Vec<u8>,
}

impl Outgoing {
    /// Parses and checks `body`, builds the message, and holds it to
    /// `--max-message-size`. Blocks (base64 and MIME of up to that size).
    fn build(body: &[u8], limits: &SendLimits) -> Result<Outgoing, SendError> {
        let request = SendRequest::parse(body, limits)?;
        let raw = request.build()?;
        if raw.len() > limits.max_message_size {
            return Err(SendError::TooLarge(format!(
                "the message built is {} bytes, over --max-message-size ({} bytes)",
                raw.len(),
                limits.max_message_size
            )));
        }
        Ok(Outgoing {
            mail_from: request.from.email,
            rcpt_to: request.recipients,
            tags: request.tags,
            raw,
        })
    }

    /// The message as SMTP would have handed it to the store. An address
    /// beyond ASCII is what SMTPUTF8 says of an SMTP session, so a relay
    /// later asks for it too.
    fn into_message(self, client_addr: SocketAddr) -> NewMessage {
        let smtputf8 = !self.mail_from.is_ascii() || self.rcpt_to.iter().any(|r| !r.is_ascii());
        NewMessage {
            envelope: Envelope {
                mail_from: self.mail_from,
                rcpt_to: self.rcpt_to,
                helo: SEND_HELO.to_string(),
                client_addr,
                bare_lf: false,
                smtputf8,
                tls: None,
                auth_user: None,
            },
            received_at: SystemTime::now(),
            raw: self.raw,
        }
    }
}

/// A name and an address.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mailbox {
    name: String,
    email: String,
}

impl Mailbox {
    fn header(&self) -> MailAddress<'_> {
        let name = (!self.name.is_empty()).then_some(self.name.as_str());
        MailAddress::new_address(name, self.email.as_str())
    }
}

/// One attachment, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Attachment {
    content: Vec<u8>,
    filename: String,
    content_type: (String, Vec<(String, String)>),
    /// Set: an inline part (`cid:` in the HTML), without brackets.
    content_id: Option<String>,
}

/// A send request, every field checked.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SendRequest {
    from: Mailbox,
    to: Vec<Mailbox>,
    cc: Vec<Mailbox>,
    reply_to: Vec<Mailbox>,
    /// To, Cc and Bcc: the envelope's recipients.
    recipients: Vec<String>,
    subject: String,
    text: String,
    html: String,
    attachments: Vec<Attachment>,
    headers: Vec<(String, String)>,
    tags: Vec<String>,
}

/// The fields of a request, as Mailpit spells them.
const FIELDS: [&str; 11] = [
    "From",
    "To",
    "Cc",
    "Bcc",
    "ReplyTo",
    "Subject",
    "Text",
    "HTML",
    "Attachments",
    "Headers",
    "Tags",
];

/// Header names the request may not set: the API sets them from its own
/// fields, or they would break the MIME structure it builds.
const RESERVED_HEADERS: [&str; 11] = [
    "To",
    "From",
    "Cc",
    "Bcc",
    "Reply-To",
    "Date",
    "Subject",
    "Content-Type",
    "MIME-Version",
    "Content-Transfer-Encoding",
    "Content-Disposition",
];

/// The longest header line RFC 5322 allows, CRLF excluded.
const MAX_HEADER_LINE: usize = 998;

impl SendRequest {
    fn parse(body: &[u8], limits: &SendLimits) -> Result<SendRequest, SendError> {
        let value: Value = serde_json::from_slice(body)
            .map_err(|error| bad("body", format!("not valid JSON: {error}")))?;
        let Value::Object(object) = value else {
            return Err(bad(
                "body",
                r#"must be a JSON object like {"From": {"Email": "a@example.com"}, "To": [{"Email": "b@example.com"}]}"#,
            ));
        };
        let mut fields: Map<String, Value> = Map::new();
        for (key, value) in object {
            let Some(name) = FIELDS.iter().find(|name| name.eq_ignore_ascii_case(&key)) else {
                return Err(bad(
                    key,
                    format!("unknown field; the fields are {}", FIELDS.join(", ")),
                ));
            };
            fields.insert((*name).to_string(), value);
        }
        let mut take = |name: &str| fields.remove(name).unwrap_or(Value::Null);

        let from = match take("From") {
            Value::Null => {
                return Err(bad(
                    "From",
                    "is required, like {\"Email\": \"a@example.com\"}",
                ));
            }
            value => mailbox(value, "From")?,
        };
        let to = mailboxes(take("To"), "To")?;
        let cc = mailboxes(take("Cc"), "Cc")?;
        let bcc = strings(take("Bcc"), "Bcc")?;
        for (i, address) in bcc.iter().enumerate() {
            check_address(address).map_err(|reason| bad(format!("Bcc[{i}]"), reason))?;
        }
        let reply_to = mailboxes(take("ReplyTo"), "ReplyTo")?;
        let subject = string(take("Subject"), "Subject")?;
        check_one_line(&subject).map_err(|reason| bad("Subject", reason))?;
        let text = string(take("Text"), "Text")?;
        let html = string(take("HTML"), "HTML")?;
        let tags = strings(take("Tags"), "Tags")?;
        for (i, tag) in tags.iter().enumerate() {
            TagName::parse(tag).map_err(|error| bad(format!("Tags[{i}]"), error.to_string()))?;
        }
        TagName::parse_all(&tags).map_err(|error| bad("Tags", error.to_string()))?;
        let headers = headers(take("Headers"), !tags.is_empty())?;
        let attachments = attachments(take("Attachments"))?;

        let recipients: Vec<String> = to
            .iter()
            .chain(&cc)
            .map(|mailbox| mailbox.email.clone())
            .chain(bcc)
            .collect();
        if recipients.len() > limits.max_recipients {
            return Err(bad(
                "To, Cc and Bcc",
                format!(
                    "{} recipients; at most {} (--max-recipients)",
                    recipients.len(),
                    limits.max_recipients
                ),
            ));
        }
        Ok(SendRequest {
            from,
            to,
            cc,
            reply_to,
            recipients,
            subject,
            text,
            html,
            attachments,
            headers,
            tags,
        })
    }

    /// The MIME message: text and HTML as alternatives, inline parts beside
    /// them in multipart/related, attachments after them in multipart/mixed.
    fn build(&self) -> Result<Vec<u8>, SendError> {
        let mut builder = MessageBuilder::new()
            .from(self.from.header())
            .subject(self.subject.as_str());
        for (header, list) in [
            ("To", &self.to),
            ("Cc", &self.cc),
            ("Reply-To", &self.reply_to),
        ] {
            if list.is_empty() {
                continue;
            }
            let addresses = MailAddress::new_list(list.iter().map(Mailbox::header).collect());
            builder = match header {
                "To" => builder.to(addresses),
                "Cc" => builder.cc(addresses),
                _ => builder.reply_to(addresses),
            };
        }
        for (name, value) in &self.headers {
            builder = if name == "Message-ID" {
                builder.message_id(MailMessageId::new(value.as_str()))
            } else {
                builder.header(name.as_str(), Text::new(value.as_str()))
            };
        }
        if !self.tags.is_empty() {
            builder = builder.header("X-Tags", Text::new(self.tags.join(", ")));
        }
        builder
            .body(self.body())
            .write_to_vec()
            .map_err(|error| SendError::Api(ApiError::Internal(error.to_string())))
    }

    fn body(&self) -> MimePart<'_> {
        let text = MimePart::new("text/plain", self.text.as_str());
        let mut content = if self.html.is_empty() {
            text
        } else {
            let html = MimePart::new("text/html", self.html.as_str());
            if self.text.is_empty() {
                html
            } else {
                MimePart::new("multipart/alternative", vec![text, html])
            }
        };
        let (inline, attached): (Vec<&Attachment>, Vec<&Attachment>) = self
            .attachments
            .iter()
            .partition(|attachment| attachment.content_id.is_some());
        if !inline.is_empty() {
            let mut parts = vec![content];
            parts.extend(inline.into_iter().map(Attachment::part));
            content = MimePart::new("multipart/related", parts);
        }
        if !attached.is_empty() {
            let mut parts = vec![content];
            parts.extend(attached.into_iter().map(Attachment::part));
            content = MimePart::new("multipart/mixed", parts);
        }
        content
    }
}

impl Attachment {
    fn part(&self) -> MimePart<'_> {
        let (media_type, parameters) = &self.content_type;
        let mut content_type = ContentType::new(media_type.as_str());
        for (name, value) in parameters {
            content_type = content_type.attribute(name.as_str(), value.as_str());
        }
        let part = MimePart::new(content_type, self.content.as_slice());
        let mut disposition = ContentType::new(if self.content_id.is_some() {
            "inline"
        } else {
            "attachment"
        });
        if !self.filename.is_empty() {
            disposition = disposition.attribute("filename", self.filename.as_str());
        }
        let part = part.header("Content-Disposition", disposition);
        match &self.content_id {
            Some(cid) => part.cid(cid.as_str()),
            None => part,
        }
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A string field; absent or null is empty.
fn string(value: Value, field: &str) -> Result<String, SendError> {
    match value {
        Value::Null => Ok(String::new()),
        Value::String(text) => Ok(text),
        other => Err(bad(
            field,
            format!("must be a string, not {}", type_name(&other)),
        )),
    }
}

/// An array field; absent or null is empty.
fn array(value: Value, field: &str) -> Result<Vec<Value>, SendError> {
    match value {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => Ok(items),
        other => Err(bad(
            field,
            format!("must be an array, not {}", type_name(&other)),
        )),
    }
}

fn strings(value: Value, field: &str) -> Result<Vec<String>, SendError> {
    array(value, field)?
        .into_iter()
        .enumerate()
        .map(|(i, item)| string(item, &format!("{field}[{i}]")))
        .collect()
}

/// `{"Email": "...", "Name": "..."}`; Email is required.
fn mailbox(value: Value, field: &str) -> Result<Mailbox, SendError> {
    let Value::Object(object) = value else {
        return Err(bad(
            field,
            format!(
                "must be an object like {{\"Email\": \"a@example.com\", \"Name\": \"A\"}}, not {}",
                type_name(&value)
            ),
        ));
    };
    let mut email = None;
    let mut name = String::new();
    for (key, value) in object {
        if key.eq_ignore_ascii_case("Email") {
            email = Some(string(value, &format!("{field}.Email"))?);
        } else if key.eq_ignore_ascii_case("Name") {
            name = string(value, &format!("{field}.Name"))?;
        } else {
            return Err(bad(
                format!("{field}.{key}"),
                "unknown field; an address has Email and Name",
            ));
        }
    }
    let email = email
        .filter(|email| !email.is_empty())
        .ok_or_else(|| bad(format!("{field}.Email"), "is required"))?;
    check_address(&email).map_err(|reason| bad(format!("{field}.Email"), reason))?;
    check_one_line(&name).map_err(|reason| bad(format!("{field}.Name"), reason))?;
    Ok(Mailbox { name, email })
}

fn mailboxes(value: Value, field: &str) -> Result<Vec<Mailbox>, SendError> {
    array(value, field)?
        .into_iter()
        .enumerate()
        .map(|(i, item)| mailbox(item, &format!("{field}[{i}]")))
        .collect()
}

/// A bare address `local@domain`, as an SMTP envelope carries it.
fn check_address(address: &str) -> Result<(), String> {
    let refuse = || {
        format!("{address:?} is not an email address like jane@example.com (give the name in Name)")
    };
    if address.len() > 254 {
        return Err(format!(
            "{} bytes; an address has at most 254",
            address.len()
        ));
    }
    let Some((local, domain)) = address.rsplit_once('@') else {
        return Err(refuse());
    };
    let special = |c: char| c.is_whitespace() || c.is_control() || "<>()[]\\,;:\"@".contains(c);
    if local.is_empty()
        || domain.is_empty()
        || local.chars().any(special)
        || domain.chars().any(special)
        || domain.starts_with('.')
        || domain.ends_with('.')
        || domain.contains("..")
    {
        return Err(refuse());
    }
    Ok(())
}

/// Text that goes into a header: no line breaks or other control characters.
fn check_one_line(text: &str) -> Result<(), String> {
    if text.chars().any(|c| c.is_control() && c != '\t') {
        return Err("must not contain line breaks or other control characters".into());
    }
    if text.len() > MAX_HEADER_LINE {
        return Err(format!(
            "{} bytes; a header line has at most {MAX_HEADER_LINE}",
            text.len()
        ));
    }
    Ok(())
}

/// RFC 5322 field names, kept to the token characters HTTP also allows.
fn check_header_name(name: &str) -> Result<(), String> {
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || name.len() > 76 || !name.chars().all(token) {
        return Err(
            "is not a header name: 1 to 76 letters, digits and - _ . ! # $ % & ' * + ^ ` | ~"
                .into(),
        );
    }
    Ok(())
}

/// `Headers`: an object of names to string values.
fn headers(value: Value, tags_given: bool) -> Result<Vec<(String, String)>, SendError> {
    let object = match value {
        Value::Null => return Ok(Vec::new()),
        Value::Object(object) => object,
        other => {
            return Err(bad(
                "Headers",
                format!(
                    "must be an object like {{\"X-Name\": \"value\"}}, not {}",
                    type_name(&other)
                ),
            ));
        }
    };
    let mut headers = Vec::with_capacity(object.len());
    for (name, value) in object {
        let field = format!("Headers.{name}");
        check_header_name(&name).map_err(|reason| bad(&field, reason))?;
        if let Some(reserved) = RESERVED_HEADERS
            .iter()
            .find(|reserved| reserved.eq_ignore_ascii_case(&name))
        {
            return Err(bad(
                &field,
                format!("{reserved} cannot be set through Headers; the API writes it"),
            ));
        }
        if tags_given && name.eq_ignore_ascii_case("X-Tags") {
            return Err(bad(&field, "X-Tags cannot be set as well as Tags"));
        }
        let value = string(value, &field)?;
        check_one_line(&value).map_err(|reason| bad(&field, reason))?;
        if name.eq_ignore_ascii_case("Message-ID") {
            let id = value.trim().trim_start_matches('<').trim_end_matches('>');
            if id.is_empty() || id.chars().any(|c| c.is_whitespace() || "<>".contains(c)) {
                return Err(bad(&field, "must be one message ID like <id@example.com>"));
            }
            headers.push(("Message-ID".to_string(), id.to_string()));
        } else {
            headers.push((name, value));
        }
    }
    Ok(headers)
}

fn attachments(value: Value) -> Result<Vec<Attachment>, SendError> {
    array(value, "Attachments")?
        .into_iter()
        .enumerate()
        .map(|(i, item)| attachment(item, &format!("Attachments[{i}]")))
        .collect()
}

fn attachment(value: Value, field: &str) -> Result<Attachment, SendError> {
    let Value::Object(object) = value else {
        return Err(bad(
            field,
            format!(
                "must be an object like {{\"Content\": \"aGVsbG8=\", \"Filename\": \"a.txt\"}}, not {}",
                type_name(&value)
            ),
        ));
    };
    let mut content = None;
    let mut filename = String::new();
    let mut content_type = String::new();
    let mut content_id = String::new();
    for (key, value) in object {
        let sub = |name: &str| format!("{field}.{name}");
        if key.eq_ignore_ascii_case("Content") {
            content = Some(string(value, &sub("Content"))?);
        } else if key.eq_ignore_ascii_case("Filename") {
            filename = string(value, &sub("Filename"))?;
        } else if key.eq_ignore_ascii_case("ContentType") {
            content_type = string(value, &sub("ContentType"))?;
        } else if key.eq_ignore_ascii_case("ContentID") {
            content_id = string(value, &sub("ContentID"))?;
        } else {
            return Err(bad(
                sub(&key),
                "unknown field; an attachment has Content, Filename, ContentType and ContentID",
            ));
        }
    }
    let content = content.ok_or_else(|| bad(format!("{field}.Content"), "is required (base64)"))?;
    let content =
        decode_base64(&content).map_err(|reason| bad(format!("{field}.Content"), reason))?;
    check_one_line(&filename).map_err(|reason| bad(format!("{field}.Filename"), reason))?;
    let content_type = if content_type.trim().is_empty() {
        (guess_type(&filename, &content).to_string(), Vec::new())
    } else {
        parse_content_type(&content_type)
            .ok_or_else(|| {
                bad(
                    format!("{field}.ContentType"),
                    format!("{content_type:?} is not a media type like image/png or text/plain; charset=utf-8"),
                )
            })?
    };
    let content_id = content_id
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>');
    if content_id
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || "<>\"".contains(c))
    {
        return Err(bad(
            format!("{field}.ContentID"),
            "must be one Content-ID like logo@example.com, without spaces",
        ));
    }
    Ok(Attachment {
        content,
        filename,
        content_type,
        content_id: (!content_id.is_empty()).then(|| content_id.to_string()),
    })
}

/// Standard base64, padded or not, with line breaks allowed; a `data:` URL's
/// prefix (what a browser's `readAsDataURL` gives) is skipped, as Mailpit does.
fn decode_base64(content: &str) -> Result<Vec<u8>, String> {
    let content = content.rsplit(',').next().unwrap_or_default();
    let compact: Cow<'_, str> = if content.contains(['\r', '\n', ' ', '\t']) {
        Cow::Owned(
            content
                .chars()
                .filter(|c| !c.is_ascii_whitespace())
                .collect(),
        )
    } else {
        Cow::Borrowed(content)
    };
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    engine
        .decode(compact.as_bytes())
        .map_err(|error| format!("is not base64: {error}"))
}

/// `type/subtype` with optional `; name=value` parameters (values may be quoted).
fn parse_content_type(text: &str) -> Option<(String, Vec<(String, String)>)> {
    let token = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "!#$&^_.+-".contains(c))
    };
    let mut pieces = text.split(';');
    let media = pieces.next()?.trim();
    let (kind, subtype) = media.split_once('/')?;
    if !token(kind) || !token(subtype) {
        return None;
    }
    let mut parameters = Vec::new();
    for piece in pieces {
        let piece = piece.trim();
        if piece.is_empty() {
            continue;
        }
        let (name, value) = piece.split_once('=')?;
        let (name, value) = (name.trim(), value.trim());
        let value = match value.strip_prefix('"') {
            Some(quoted) => quoted.strip_suffix('"')?,
            None => value,
        };
        if !token(name)
            || value
                .chars()
                .any(|c| c.is_control() || c == '"' || c == '\\')
        {
            return None;
        }
        parameters.push((name.to_ascii_lowercase(), value.to_string()));
    }
    Some((media.to_ascii_lowercase(), parameters))
}

/// A media type for an attachment sent without one: by the file name's
/// extension, else by the first bytes, else `application/octet-stream`.
fn guess_type(filename: &str, content: &[u8]) -> &'static str {
    let extension = filename
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase())
        .unwrap_or_default();
    let by_name = match extension.as_str() {
        "txt" | "log" | "md" => Some("text/plain"),
        "html" | "htm" => Some("text/html"),
        "css" => Some("text/css"),
        "csv" => Some("text/csv"),
        "ics" => Some("text/calendar"),
        "json" => Some("application/json"),
        "xml" => Some("application/xml"),
        "pdf" => Some("application/pdf"),
        "zip" => Some("application/zip"),
        "png" => Some("image/png"),
        "jpg" | "jpeg" => Some("image/jpeg"),
        "gif" => Some("image/gif"),
        "svg" => Some("image/svg+xml"),
        "webp" => Some("image/webp"),
        _ => None,
    };
    if let Some(kind) = by_name {
        return kind;
    }
    const MAGIC: [(&[u8], &str); 5] = [
        (b"\x89PNG\r\n\x1a\n", "image/png"),
        (b"\xff\xd8\xff", "image/jpeg"),
        (b"GIF8", "image/gif"),
        (b"%PDF-", "application/pdf"),
        (b"PK\x03\x04", "application/zip"),
    ];
    MAGIC
        .iter()
        .find(|(magic, _)| content.starts_with(magic))
        .map_or("application/octet-stream", |(_, kind)| kind)
}

#[cfg(test)]
mod tests {
    use mail_parser::MimeHeaders;

    use super::*;

    fn parse(json: &str) -> Result<SendRequest, String> {
        SendRequest::parse(json.as_bytes(), &SendLimits::default()).map_err(|error| match error {
            SendError::Field { field, reason } => format!("{field}: {reason}"),
            other => format!("{other:?}"),
        })
    }

    #[test]
    fn malformed_requests_name_the_field() {
        let cases = [
            ("not json", "body:"),
            ("[1]", "body:"),
            ("{}", "From:"),
            (r#"{"From": "a@b.c"}"#, "From:"),
            (r#"{"From": {}}"#, "From.Email:"),
            (r#"{"From": {"Email": 5}}"#, "From.Email:"),
            (r#"{"From": {"Email": "nobody"}}"#, "From.Email:"),
            (
                r#"{"From": {"Email": "a@b.c", "Name": "x\r\nBcc: e@vil"}}"#,
                "From.Name:",
            ),
            (
                r#"{"From": {"Email": "a@b.c"}, "To": {"Email": "x@y.z"}}"#,
                "To:",
            ),
            (
                r#"{"From": {"Email": "a@b.c"}, "To": [{"Email": "x y@z"}]}"#,
                "To[0].Email:",
            ),
            (
                r#"{"From": {"Email": "a@b.c"}, "Cc": [{"Email": "x@y.z"}, {}]}"#,
                "Cc[1].Email:",
            ),
            (
                r#"{"From": {"Email": "a@b.c"}, "Bcc": [{"Email": "x@y.z"}]}"#,
                "Bcc[0]:",
            ),
            (
                r#"{"From": {"Email": "a@b.c"}, "Bcc": ["<x@y.z>"]}"#,
                "Bcc[0]:",
            ),
            (
                r#"{"From": {"Email": "a@b.c"}, "ReplyTo": [{"Email": "@y.z"}]}"#,
                "ReplyTo[0].Email:",
            ),
            (
                r#"{"From": {"Email": "a@b.c"}, "Subject": ["x"]}"#,
                "Subject:",
            ),
            (
                r#"{"From": {"Email": "a@b.c"}, "Subject": "a\nb"}"#,
                "Subject:",
            ),
            (r#"{"From": {"Email": "a@b.c"}, "Text": 1}"#, "Text:"),
            (r#"{"From": {"Email": "a@b.c"}, "HTML": true}"#, "HTML:"),
            (r#"{"From": {"Email": "a@b.c"}, "Tags": "a"}"#, "Tags:"),
            (
                r#"{"From": {"Email": "a@b.c"}, "Tags": ["ok", "b,c"]}"#,
                "Tags[1]:",
            ),
            (r#"{"From": {"Email": "a@b.c"}, "Headers": []}"#, "Headers:"),
            (
                r#"{"From": {"Email": "a@b.c"}, "Headers": {"X-A": 1}}"#,
                "Headers.X-A:",
            ),
            (
                r#"{"From": {"Email": "a@b.c"}, "Headers": {"X A": "v"}}"#,
                "Headers.X A:",
            ),
            (
                r#"{"From": {"Email": "a@b.c"}, "Headers": {"X-A:": "v"}}"#,
                "Headers.X-A::",
            ),
            (
                r#"{"From": {"Email": "a@b.c"}, "Headers": {"X-A": "v\r\nBcc: x@y.z"}}"#,
                "Headers.X-A:",
            ),
            (
                r#"{"From": {"Email": "a@b.c"}, "Headers": {"subject": "v"}}"#,
                "Headers.subject:",
            ),
            (
                r#"{"From": {"Email": "a@b.c"}, "Headers": {"Content-Type": "text/html"}}"#,
                "Headers.Content-Type:",
            ),
            (
                r#"{"From": {"Email": "a@b.c"}, "Tags": ["a"], "Headers": {"X-Tags": "b"}}"#,
                "Headers.X-Tags:",
            ),
            (
                r#"{"From": {"Email": "a@b.c"}, "Attachments": {}}"#,
                "Attachments:",
            ),
            (
                r#"{"From": {"Email": "a@b.c"}, "Attachments": ["x"]}"#,
                "Attachments[0]:",
            ),
            (
                r#"{"From": {"Email": "a@b.c"}, "Attachments": [{"Filename": "a"}]}"#,
                "Attachments[0].Content:",
            ),
            (
                r#"{"From": {"Email": "a@b.c"}, "Attachments": [{"Content": "aGk=", "Filename": "a"}, {"Content": "!!!", "Filename": "b"}]}"#,
                "Attachments[1].Content:",
            ),
            (
                r#"{"From": {"Email": "a@b.c"}, "Attachments": [{"Content": "aGk=", "ContentType": "nonsense"}]}"#,
                "Attachments[0].ContentType:",
            ),
            (
                r#"{"From": {"Email": "a@b.c"}, "Attachments": [{"Content": "aGk=", "ContentID": "a b"}]}"#,
                "Attachments[0].ContentID:",
            ),
            (
                r#"{"From": {"Email": "a@b.c"}, "Attachments": [{"Content": "aGk=", "Size": 2}]}"#,
                "Attachments[0].Size:",
            ),
            (
                r#"{"From": {"Email": "a@b.c"}, "Attachements": []}"#,
                "Attachements:",
            ),
        ];
        for (json, field) in cases {
            let error = parse(json).expect_err(json);
            assert!(
                error.starts_with(field),
                "{json}\n  gave {error:?}, expected {field}"
            );
        }
    }

    #[test]
    fn too_many_recipients_is_refused() {
        let limits = SendLimits {
            max_recipients: 2,
            ..SendLimits::default()
        };
        let json = r#"{"From": {"Email": "a@b.c"}, "To": [{"Email": "x@y.z"}], "Cc": [{"Email": "x@y.z"}], "Bcc": ["q@y.z"]}"#;
        assert!(matches!(
            SendRequest::parse(json.as_bytes(), &limits),
            Err(SendError::Field { field, .. }) if field == "To, Cc and Bcc"
        ));
    }

    #[test]
    fn builds_every_part_and_keeps_bcc_out_of_the_headers() {
        let json = r#"{
            "from": {"Email": "app@example.com", "Name": "The App"},
            "To": [{"Email": "jane@example.com", "Name": "Jane"}],
            "Cc": [{"Email": "boss@example.com"}],
            "Bcc": ["hidden@example.com"],
            "ReplyTo": [{"Email": "help@example.com"}],
            "Subject": "Grüße",
            "Text": "plain", "HTML": "<img src=\"cid:logo\">",
            "Attachments": [
                {"Content": "data:image/png;base64,iVBORw0KGgo=", "Filename": "logo.png", "ContentID": "<logo>"},
                {"Content": "aGVsbG8=", "Filename": "a.txt", "ContentType": "text/plain; charset=\"utf-8\""}
            ],
            "Headers": {"X-Campaign": "spring", "Message-Id": "<fixed@example.com>"},
            "Tags": ["one", "two"]
        }"#;
        let request = parse(json).unwrap();
        assert_eq!(
            request.recipients,
            ["jane@example.com", "boss@example.com", "hidden@example.com"]
        );
        let raw = String::from_utf8(request.build().unwrap()).unwrap();
        let head = raw.split("\r\n\r\n").next().unwrap();
        assert!(!raw.contains("hidden@example.com"), "{raw}");
        assert!(head.contains("Message-ID: <fixed@example.com>"), "{head}");
        assert!(head.contains("X-Campaign: spring"), "{head}");
        assert!(head.contains("X-Tags: one, two"), "{head}");
        assert!(head.contains("Reply-To: <help@example.com>"), "{head}");
        let parsed = mail_parser::MessageParser::default()
            .parse(raw.as_bytes())
            .unwrap();
        assert_eq!(parsed.subject(), Some("Grüße"));
        assert_eq!(parsed.body_text(0).as_deref(), Some("plain"));
        assert!(raw.contains("multipart/mixed"));
        assert!(raw.contains("multipart/related"));
        assert!(raw.contains("multipart/alternative"));
        assert!(raw.contains("Content-ID: <logo>"));
        let attachments: Vec<_> = parsed.attachments().collect();
        assert_eq!(attachments.len(), 2);
        assert_eq!(attachments[0].contents(), b"\x89PNG\r\n\x1a\n");
        assert_eq!(attachments[1].contents(), b"hello");
        assert_eq!(attachments[1].attachment_name(), Some("a.txt"));
    }

    #[test]
    fn body_limit_fits_a_whole_message_in_base64() {
        let limits = SendLimits::default();
        assert!(limits.max_body_bytes() >= limits.max_message_size / 3 * 4);
    }

    #[test]
    fn guesses_types() {
        assert_eq!(guess_type("x.PNG", b""), "image/png");
        assert_eq!(guess_type("x", b"%PDF-1.7"), "application/pdf");
        assert_eq!(guess_type("x.bin", b"\0"), "application/octet-stream");
    }
}
