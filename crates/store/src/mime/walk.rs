//! The bounded walk over a message's MIME structure that every reader of
//! [`super`] starts with: delivery (the list summary and the search index), the
//! message view and part downloads.
//!
//! mail-parser's own `MessageParser::parse` turns every attached message that is
//! not base64 or quoted-printable encoded into a nested `Message`, so its result is
//! a tree as deep as the input; dropping that tree (and `into_owned`, which it
//! calls on the messages inside an encoded attached message) recurses once per
//! level. About 34,000 nested `message/rfc822` parts, 1.4 MB, overflowed a thread
//! stack and aborted the whole catcher (issue #11). A stack overflow is no panic:
//! `catch_unwind` cannot stop it.
//!
//! So the structure is walked here instead, with mail-parser's own stream
//! primitives (header block, boundary search, transfer decoding), following the
//! steps of mail-parser 0.11's `parse_` one for one: part ids (the depth-first
//! index, root `0`), the text and HTML body choice and the attachment list come
//! out exactly as mail-parser gives them for every message within the limits. What
//! differs:
//!
//! - **No tree.** The walk keeps an explicit stack of open containers, never
//!   recursion. An attached message (`message/rfc822`, `message/global`, or a part
//!   without a type inside `multipart/digest`) is walked to find where it ends, but
//!   its inner parts are dropped when it closes: the part keeps a one-level
//!   `PartType::Message` whose contents are the attached message's bytes, which is
//!   all the readers use. An encoded attached message is decoded, never parsed.
//! - **Depth.** A container (a multipart with a boundary, or an attached message)
//!   inside [`MAX_DEPTH`] open containers is not opened: it becomes one opaque part
//!   holding its header block and body exactly as sent ([`Opaque::TooDeep`]).
//! - **Part count.** After [`MAX_PARTS`] parts (counting those inside attached
//!   messages, which cost the same work), the rest of the message, from the next
//!   part's header block to the end, is one opaque part ([`Opaque::TooMany`]).
//! - **Linear work.** A multipart whose boundary never appears costs a scan to the
//!   end of the message; many of them would be quadratic. Those failed searches
//!   share a budget of [`SEEK_BUDGET_PER_BYTE`] times the message size; past it, a
//!   boundary not found within the rest of the budget counts as not found, and the
//!   part is text, as mail-parser treats any multipart whose boundary is missing.
//!   Content-Type and Content-Disposition fields are parsed from at most
//!   [`MAX_PARAMETER_FIELD`] bytes: mail-parser joins RFC 2231 continuations
//!   (`filename*0=..; filename*1=..`) in quadratic time.
//!
//! Every other step (header fields, boundary search, decoding) is a linear scan of
//! mail-parser's, so the whole walk is linear in the message size.

use std::borrow::Cow;
use std::sync::LazyLock;

use mail_parser::{
    ContentType, Encoding, Header, HeaderName, HeaderValue, Message, MessageParser, MessagePart,
    MessagePartId, PartType, decoders::charsets::map::charset_decoder, parsers::MessageStream,
};

/// How many containers (multiparts and attached messages) may enclose a part that
/// is itself opened as a container. Real mail nests a few levels (mixed, related,
/// alternative; a forward of a forward); 32 is far beyond what any client writes.
pub const MAX_DEPTH: usize = 32;

/// How many parts a message is taken apart into, counting the parts inside
/// attached messages. A mail client attaching a thousand files is already rare.
pub const MAX_PARTS: usize = 1_000;

/// How many bytes of a Content-Type or Content-Disposition field are parsed; a real
/// one, even with a long RFC 2231 encoded file name, is a few hundred.
pub const MAX_PARAMETER_FIELD: usize = 16 << 10;

/// Failed searches for a multipart's first boundary may scan this many times the
/// message size in all.
pub const SEEK_BUDGET_PER_BYTE: usize = 4;

/// Why a part was kept as opaque bytes instead of being taken apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opaque {
    /// A container beyond [`MAX_DEPTH`]: its header block and body as sent.
    TooDeep,
    /// Everything after the first [`MAX_PARTS`] parts.
    TooMany,
}

/// A message taken apart by [`walk`].
#[derive(Debug)]
pub struct Walked<'x> {
    /// The top-level parts, as mail-parser would give them.
    pub message: Message<'x>,
    /// The parts of [`Walked::message`] kept as opaque bytes, by part index.
    opaque: Vec<(MessagePartId, Opaque)>,
}

impl Walked<'_> {
    /// Why part `index` is opaque, if it is.
    pub fn opaque(&self, index: MessagePartId) -> Option<Opaque> {
        // Pushed in part order.
        let at = self
            .opaque
            .binary_search_by_key(&index, |&(opaque, _)| opaque)
            .ok()?;
        Some(self.opaque[at].1)
    }
}

/// The header parsers of `MessageParser::default()`, except that Content-Type and
/// Content-Disposition are kept raw and parsed by [`bound_parameter_fields`].
static HEADER_PARSER: LazyLock<MessageParser> = LazyLock::new(|| {
    MessageParser::new()
        .with_address_headers()
        .with_date_headers()
        .with_message_ids()
        .header_address(HeaderName::ListArchive)
        .header_address(HeaderName::ListHelp)
        .header_address(HeaderName::ListId)
        .header_address(HeaderName::ListOwner)
        .header_address(HeaderName::ListPost)
        .header_address(HeaderName::ListSubscribe)
        .header_address(HeaderName::ListUnsubscribe)
        .header_id(HeaderName::ReturnPath)
        .header_id(HeaderName::ContentId)
        .header_text(HeaderName::Subject)
        .header_text(HeaderName::Comments)
        .header_text(HeaderName::ContentDescription)
        .header_text(HeaderName::ContentLocation)
        .header_text(HeaderName::ContentTransferEncoding)
        .header_comma_separated(HeaderName::Keywords)
        .header_comma_separated(HeaderName::ContentLanguage)
        .header_received(HeaderName::Received)
        .header_raw(HeaderName::ContentType)
        .header_raw(HeaderName::ContentDisposition)
        .default_header_raw()
});

/// Only finds out whether bytes start with a header block.
static HEADER_SKIPPER: LazyLock<MessageParser> = LazyLock::new(|| {
    MessageParser::new()
        .ignore_header(HeaderName::Subject)
        .default_header_ignore()
});

/// How mail-parser classifies a part by its type and its parent's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum MimeType {
    MultipartMixed,
    MultipartAlternative,
    MultipartRelated,
    MultipartDigest,
    TextPlain,
    TextHtml,
    TextOther,
    Inline,
    #[default]
    Message,
    Other,
}

/// `(is_multipart, is_inline, is_text, mime_type)`, as mail-parser decides them.
fn classify(
    content_type: Option<&ContentType<'_>>,
    parent: MimeType,
) -> (bool, bool, bool, MimeType) {
    let Some(content_type) = content_type else {
        return if parent == MimeType::MultipartDigest {
            (false, false, false, MimeType::Message)
        } else {
            (false, true, true, MimeType::TextPlain)
        };
    };
    match content_type.ctype() {
        "multipart" => {
            let mime_type = match content_type.subtype() {
                Some("mixed") => MimeType::MultipartMixed,
                Some("alternative") => MimeType::MultipartAlternative,
                Some("related") => MimeType::MultipartRelated,
                Some("digest") => MimeType::MultipartDigest,
                _ => MimeType::Other,
            };
            (true, false, false, mime_type)
        }
        "text" => match content_type.subtype() {
            Some("plain") => (false, true, true, MimeType::TextPlain),
            Some("html") => (false, true, true, MimeType::TextHtml),
            _ => (false, false, true, MimeType::TextOther),
        },
        "image" | "audio" | "video" => (false, true, false, MimeType::Inline),
        "message" if matches!(content_type.subtype(), Some("rfc822" | "global")) => {
            (false, false, false, MimeType::Message)
        }
        _ => (false, false, false, MimeType::Other),
    }
}

/// One open container: the message itself, a multipart, or an attached message.
#[derive(Debug, Default)]
struct Frame {
    mime_type: MimeType,
    boundary: Option<Vec<u8>>,
    in_alternative: bool,
    parts: usize,
    html_parts: usize,
    text_parts: usize,
    need_html_body: bool,
    need_text_body: bool,
    part_id: MessagePartId,
    sub_part_ids: Vec<MessagePartId>,
    offset_header: usize,
    offset_body: usize,
    offset_end: usize,
}

impl Frame {
    fn attached_message(boundary: Option<Vec<u8>>, part_id: MessagePartId) -> Frame {
        Frame {
            mime_type: MimeType::Message,
            boundary,
            need_html_body: true,
            need_text_body: true,
            part_id,
            ..Frame::default()
        }
    }
}

/// An open container and, for an attached message, the message it is attached to
/// (the message being built continues inside the attached one).
type Open<'x> = (Frame, Option<Message<'x>>);

/// Take `raw` apart within the limits above. `None` when it has no header block
/// at all, as `MessageParser::parse` answers.
pub fn walk(raw: &[u8]) -> Option<Walked<'_>> {
    Walker {
        raw,
        stream: MessageStream::new(raw),
        message: Message::default(),
        state: Frame::attached_message(None, 0),
        stack: Vec::new(),
        part_headers: Vec::new(),
        opaque: Vec::new(),
        parts: 0,
        seek_budget: raw.len().saturating_mul(SEEK_BUDGET_PER_BYTE),
    }
    .run()
}

struct Walker<'x> {
    raw: &'x [u8],
    stream: MessageStream<'x>,
    /// The message whose parts are being listed: the top-level one, or inside an
    /// attached message the throwaway one that only finds where it ends.
    message: Message<'x>,
    state: Frame,
    stack: Vec<Open<'x>>,
    part_headers: Vec<Header<'x>>,
    opaque: Vec<(MessagePartId, Opaque)>,
    parts: usize,
    seek_budget: usize,
}

impl<'x> Walker<'x> {
    fn run(mut self) -> Option<Walked<'x>> {
        'outer: loop {
            self.state.offset_header = self.stream.offset();
            if self.parts == MAX_PARTS {
                self.keep_rest();
                break;
            }
            if !self
                .stream
                .parse_headers(&HEADER_PARSER, &mut self.part_headers)
            {
                break;
            }
            bound_parameter_fields(self.raw, &mut self.part_headers);
            self.state.offset_body = self.stream.offset();
            self.parts += 1;
            self.state.parts += 1;
            self.state
                .sub_part_ids
                .push(self.message.parts.len() as MessagePartId);

            let content_type = field(&self.part_headers, &HeaderName::ContentType)
                .and_then(|value| value.as_content_type());
            let (is_multipart, is_inline, mut is_text, mut mime_type) =
                classify(content_type, self.state.mime_type);
            let boundary = content_type
                .filter(|_| is_multipart)
                .and_then(|content_type| content_type.attribute("boundary"))
                .map(|boundary| boundary.as_bytes().to_vec());
            let has_name =
                content_type.is_some_and(|content_type| content_type.has_attribute("name"));
            let encoding = transfer_encoding(&self.part_headers);

            let container = boundary.is_some()
                || (mime_type == MimeType::Message && encoding == Encoding::None);
            if container && self.stack.len() >= MAX_DEPTH {
                self.keep_too_deep();
            } else {
                if let Some(boundary) = boundary {
                    if self.seek_first_delimiter(&boundary) {
                        self.open_multipart(mime_type, boundary);
                        continue;
                    }
                    mime_type = MimeType::TextOther;
                    is_text = true;
                }
                if mime_type == MimeType::Message && encoding == Encoding::None {
                    self.open_attached_message(encoding);
                    continue;
                }
                self.leaf(Leaf {
                    mime_type,
                    encoding,
                    is_inline,
                    is_text,
                    has_name,
                });
            }

            if self.state.boundary.is_none() {
                if self.stream.offset() >= self.raw.len() {
                    break;
                }
                continue;
            }
            // The part ended at a boundary: close what ends there.
            loop {
                if self.state.mime_type == MimeType::Message && !self.close_attached_message() {
                    break 'outer;
                }
                if !self.stream.is_multipart_end() {
                    // The next part's header block follows.
                    continue 'outer;
                }
                if !self.close_multipart() {
                    break 'outer;
                }
            }
        }
        self.finish()
    }

    /// Whether the parts being listed are the top-level message's.
    fn at_top_level(&self) -> bool {
        self.stack
            .iter()
            .all(|(_, attached_to)| attached_to.is_none())
    }

    fn push_part(&mut self, body: PartType<'x>, encoding: Encoding, is_encoding_problem: bool) {
        self.message.parts.push(MessagePart {
            headers: std::mem::take(&mut self.part_headers),
            is_encoding_problem,
            body,
            encoding,
            offset_header: self.state.offset_header as u32,
            offset_body: self.state.offset_body as u32,
            offset_end: self.state.offset_end as u32,
        });
    }

    fn next_index(&self) -> MessagePartId {
        self.message.parts.len() as MessagePartId
    }

    /// Beyond [`MAX_PARTS`]: everything from here to the end is one part.
    fn keep_rest(&mut self) {
        let rest = &self.raw[self.state.offset_header..];
        if self.at_top_level() && !rest.trim_ascii().is_empty() {
            let index = self.next_index();
            self.state.sub_part_ids.push(index);
            self.message.attachments.push(index);
            self.opaque.push((index, Opaque::TooMany));
            self.state.offset_body = self.state.offset_header;
            self.state.offset_end = self.raw.len();
            self.push_part(PartType::Binary(Cow::Borrowed(rest)), Encoding::None, false);
        }
        self.stream.seek_end();
    }

    /// A container beyond [`MAX_DEPTH`]: one part up to the enclosing boundary.
    fn keep_too_deep(&mut self) {
        let (offset_end, found) = self.stream.seek_part_end(self.state.boundary.as_deref());
        if !found {
            self.state.boundary = None;
        }
        self.state.offset_end = offset_end;
        let index = self.next_index();
        self.message.attachments.push(index);
        if self.at_top_level() {
            self.opaque.push((index, Opaque::TooDeep));
        }
        let entity = self
            .raw
            .get(self.state.offset_header..offset_end)
            .unwrap_or_default();
        self.push_part(
            PartType::Binary(Cow::Borrowed(entity)),
            Encoding::None,
            false,
        );
    }

    /// `MessageStream::seek_next_part` within what is left of the budget for
    /// failed searches.
    fn seek_first_delimiter(&mut self, boundary: &[u8]) -> bool {
        let start = self.stream.offset();
        let end = self.raw.len().min(start.saturating_add(self.seek_budget));
        let mut probe = MessageStream::new(&self.raw[..end]);
        probe.skip_bytes(start);
        if probe.seek_next_part(boundary) {
            self.stream.skip_bytes(probe.offset() - start);
            true
        } else {
            self.seek_budget -= end - start;
            false
        }
    }

    fn open_multipart(&mut self, mime_type: MimeType, boundary: Vec<u8>) {
        let part_id = self.next_index();
        let frame = Frame {
            in_alternative: self.state.in_alternative
                || mime_type == MimeType::MultipartAlternative,
            mime_type,
            boundary: Some(boundary),
            html_parts: self.message.html_body.len(),
            text_parts: self.message.text_body.len(),
            need_html_body: self.state.need_html_body,
            need_text_body: self.state.need_text_body,
            part_id,
            ..Frame::default()
        };
        self.state.offset_end = 0;
        self.push_part(PartType::default(), Encoding::None, false);
        let parent = std::mem::replace(&mut self.state, frame);
        self.stack.push((parent, None));
        self.stream.skip_crlf();
    }

    fn open_attached_message(&mut self, encoding: Encoding) {
        let part_id = self.next_index();
        let frame = Frame::attached_message(self.state.boundary.take(), part_id);
        self.message.attachments.push(part_id);
        self.state.offset_end = 0;
        self.push_part(PartType::default(), encoding, false);
        let parent = std::mem::replace(&mut self.state, frame);
        let attached_to = std::mem::take(&mut self.message);
        self.stack.push((parent, Some(attached_to)));
    }

    fn leaf(&mut self, leaf: Leaf) {
        let Leaf {
            mut mime_type,
            mut encoding,
            mut is_inline,
            mut is_text,
            has_name,
        } = leaf;
        let boundary = self.state.boundary.as_deref().unwrap_or_default();
        let (offset_end, mut bytes) = match encoding {
            Encoding::Base64 => self.stream.decode_base64_mime(boundary),
            Encoding::QuotedPrintable => self.stream.decode_quoted_printable_mime(boundary),
            Encoding::None => self.stream.mime_part(boundary),
        };
        let mut is_encoding_problem = offset_end == usize::MAX;
        if is_encoding_problem {
            // As mail-parser does: keep the bytes as they are, up to the boundary.
            encoding = Encoding::None;
            if mime_type != MimeType::TextPlain {
                mime_type = MimeType::TextOther;
            }
            is_inline = false;
            is_text = true;
            let (offset_end, found) = self.stream.seek_part_end(self.state.boundary.as_deref());
            self.state.offset_end = offset_end;
            bytes = Cow::Borrowed(
                self.raw
                    .get(self.state.offset_body..offset_end)
                    .unwrap_or_default(),
            );
            if !found {
                self.state.boundary = None;
            }
        } else {
            self.state.offset_end = offset_end;
        }

        let index = self.next_index();
        let body = if mime_type == MimeType::Message {
            // Encoded: decoded, and one part whether or not its bytes parse.
            self.message.attachments.push(index);
            let mut headers = Vec::new();
            let parses = MessageStream::new(&bytes).parse_headers(&HEADER_SKIPPER, &mut headers)
                || !headers.is_empty();
            if parses {
                let len = bytes.len() as u32;
                PartType::Message(attached(bytes, 0, len))
            } else {
                is_encoding_problem = true;
                PartType::Binary(bytes)
            }
        } else {
            let state = &mut self.state;
            let is_inline = is_inline
                && field(&self.part_headers, &HeaderName::ContentDisposition).is_none_or(
                    |disposition| {
                        !disposition
                            .as_content_type()
                            .is_some_and(|disposition| disposition.is_attachment())
                    },
                )
                && (state.parts == 1
                    || state.mime_type != MimeType::MultipartRelated
                        && (mime_type == MimeType::Inline || !has_name));
            // A message of one text/plain part is text even when badly encoded.
            let is_inline = is_inline
                || state.parts == 1
                    && state.mime_type == MimeType::Message
                    && mime_type == MimeType::TextPlain
                    && is_encoding_problem;
            let (add_to_html, add_to_text) = if state.mime_type == MimeType::MultipartAlternative {
                match mime_type {
                    MimeType::TextHtml => (true, false),
                    MimeType::TextPlain => (false, true),
                    _ => (false, false),
                }
            } else if is_inline {
                if state.in_alternative && (state.need_text_body || state.need_html_body) {
                    match mime_type {
                        MimeType::TextHtml => state.need_text_body = false,
                        MimeType::TextPlain => state.need_html_body = false,
                        _ => (),
                    }
                }
                (state.need_html_body, state.need_text_body)
            } else {
                (false, false)
            };
            if add_to_html {
                self.message.html_body.push(index);
            }
            if add_to_text {
                self.message.text_body.push(index);
            }
            if is_text {
                let charset = field(&self.part_headers, &HeaderName::ContentType)
                    .and_then(|value| value.as_content_type())
                    .and_then(|content_type| content_type.attribute("charset"))
                    .and_then(|charset| charset_decoder(charset.as_bytes()));
                let text: Cow<'x, str> = match (bytes, charset) {
                    (Cow::Owned(bytes), Some(decode)) => decode(&bytes).into(),
                    (Cow::Owned(bytes), None) => String::from_utf8(bytes)
                        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
                        .into(),
                    (Cow::Borrowed(bytes), Some(decode)) => decode(bytes).into(),
                    (Cow::Borrowed(bytes), None) => lossy_text(bytes),
                };
                let is_html = mime_type == MimeType::TextHtml;
                if !add_to_html && is_html || !add_to_text && !is_html {
                    self.message.attachments.push(index);
                }
                if is_html {
                    PartType::Html(text)
                } else {
                    PartType::Text(text)
                }
            } else {
                self.message.attachments.push(index);
                if is_inline {
                    PartType::InlineBinary(bytes)
                } else {
                    PartType::Binary(bytes)
                }
            }
        };
        self.push_part(body, encoding, is_encoding_problem);
    }

    /// The attached message being walked ended at its parent's boundary: back to
    /// the message it is attached to. False if the stack is broken.
    fn close_attached_message(&mut self) -> bool {
        let Some((mut parent, Some(mut attached_to))) = self.stack.pop() else {
            return false;
        };
        let offset_end = match &self.state.boundary {
            // Where the line with the boundary starts.
            Some(boundary) => {
                let pos = self.stream.offset().saturating_sub(boundary.len() + 2);
                match pos.checked_sub(2).and_then(|i| self.raw.get(i)) {
                    Some(b'\r') => pos - 2,
                    _ => pos.saturating_sub(1),
                }
            }
            None => self.stream.offset(),
        };
        if let Some(part) = attached_to.parts.get_mut(self.state.part_id as usize) {
            part.offset_end = offset_end as u32;
            part.body = match self.message.parts.first() {
                Some(root) => PartType::Message(attached(
                    Cow::Borrowed(self.raw),
                    root.offset_header,
                    root.offset_end,
                )),
                None => {
                    part.is_encoding_problem = true;
                    PartType::Text(String::from_utf8_lossy(
                        self.raw
                            .get(part.offset_body as usize..offset_end)
                            .unwrap_or_default(),
                    ))
                }
            };
        }
        self.message = attached_to;
        parent.boundary = self.state.boundary.take();
        self.state = parent;
        true
    }

    /// The multipart being walked reached its closing boundary. True if the walk
    /// goes on at the enclosing multipart's next boundary.
    fn close_multipart(&mut self) -> bool {
        let state = &mut self.state;
        let message = &mut self.message;
        if state.mime_type == MimeType::MultipartAlternative
            && state.need_html_body
            && state.need_text_body
        {
            // An alternative with only HTML, or only text, offers it as both.
            if state.text_parts == message.text_body.len()
                && state.html_parts != message.html_body.len()
            {
                let html = message.html_body[state.html_parts..].to_vec();
                message.text_body.extend(html);
            }
            if state.html_parts == message.html_body.len()
                && state.text_parts != message.text_body.len()
            {
                let text = message.text_body[state.text_parts..].to_vec();
                message.html_body.extend(text);
            }
        }
        let Some(part) = message.parts.get_mut(state.part_id as usize) else {
            return false;
        };
        if state.sub_part_ids.len() != 1 || state.sub_part_ids[0] != 0 {
            part.body = PartType::Multipart(std::mem::take(&mut state.sub_part_ids));
        }
        if let Some((parent, _)) = self.stack.pop() {
            self.state = parent;
            if let Some(boundary) = &self.state.boundary {
                if let Some(offset) = self.stream.seek_next_part_offset(boundary) {
                    part.offset_end = offset as u32;
                    return true;
                }
            }
        }
        part.offset_end = self.stream.offset() as u32;
        false
    }

    /// Close whatever is still open at the end of the bytes (or of the walk).
    fn finish(mut self) -> Option<Walked<'x>> {
        let end = self.stream.offset();
        while let Some((parent, attached_to)) = self.stack.pop() {
            let state = std::mem::replace(&mut self.state, parent);
            match attached_to {
                Some(mut attached_to) => {
                    if let Some(part) = attached_to.parts.get_mut(state.part_id as usize) {
                        part.offset_end = end as u32;
                        part.body = match self.message.parts.first() {
                            Some(root) => PartType::Message(attached(
                                Cow::Borrowed(self.raw),
                                root.offset_header,
                                root.offset_end,
                            )),
                            None => {
                                part.is_encoding_problem = true;
                                PartType::Text(unterminated_text(
                                    self.raw.get(part.offset_body as usize..end),
                                    state.boundary.as_deref(),
                                ))
                            }
                        };
                    }
                    self.message = attached_to;
                }
                None => {
                    if let Some(part) = self.message.parts.get_mut(state.part_id as usize) {
                        part.offset_end = end as u32;
                        if state.sub_part_ids.len() != 1 || state.sub_part_ids[0] != 0 {
                            part.body = PartType::Multipart(state.sub_part_ids);
                        }
                    }
                }
            }
        }

        let mut message = self.message;
        message.raw_message = Cow::Borrowed(self.raw);
        if let Some(root) = message.parts.first_mut() {
            root.offset_end = self.raw.len() as u32;
        } else if !self.part_headers.is_empty() {
            // A header block without a body.
            message.parts.push(MessagePart {
                headers: self.part_headers,
                encoding: Encoding::None,
                is_encoding_problem: true,
                body: PartType::Text("".into()),
                offset_header: 0,
                offset_body: self.raw.len() as u32,
                offset_end: self.raw.len() as u32,
            });
        } else {
            return None;
        }
        Some(Walked {
            message,
            opaque: self.opaque,
        })
    }
}

/// What [`Walker::leaf`] needs to know about a part that is not a container.
struct Leaf {
    mime_type: MimeType,
    encoding: Encoding,
    is_inline: bool,
    is_text: bool,
    has_name: bool,
}

/// The one-level message an attached message is kept as: its contents are
/// `raw[start..end]`, its parts are not kept.
fn attached(raw: Cow<'_, [u8]>, start: u32, end: u32) -> Message<'_> {
    Message {
        parts: vec![MessagePart {
            offset_header: start,
            offset_end: end,
            ..MessagePart::default()
        }],
        raw_message: raw,
        ..Message::default()
    }
}

/// The text of an attached message that has no header block and no end, without
/// the start of a closing boundary, as mail-parser keeps it.
fn unterminated_text<'x>(bytes: Option<&'x [u8]>, boundary: Option<&[u8]>) -> Cow<'x, str> {
    let cut = bytes
        .and_then(|bytes| std::str::from_utf8(bytes).ok())
        .and_then(|text| {
            let boundary = std::str::from_utf8(boundary?).ok()?;
            let (text, _) = text.rsplit_once(boundary)?;
            let text = text.strip_suffix("--")?;
            let text = text.strip_suffix('\n').unwrap_or(text);
            Some(text.strip_suffix('\r').unwrap_or(text))
        });
    match cut {
        Some(text) => Cow::Borrowed(text),
        None => lossy_text(bytes.unwrap_or_default()),
    }
}

/// `bytes` as text, invalid UTF-8 replaced by U+FFFD, as
/// [`String::from_utf8_lossy`] does, but through [`std::str::from_utf8`]
/// first: its check runs a word at a time over ASCII, where the lossy
/// decoder steps byte by byte (callgrind: 29,000 instructions for a 4 KiB
/// body, against about 2,200), and nearly every body is valid.
fn lossy_text(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

/// The value of the last field `name`, as mail-parser's `header_value` picks it.
fn field<'h, 'x>(headers: &'h [Header<'x>], name: &HeaderName<'_>) -> Option<&'h HeaderValue<'x>> {
    headers
        .iter()
        .rev()
        .find(|header| &header.name == name)
        .map(|header| &header.value)
}

fn transfer_encoding(headers: &[Header<'_>]) -> Encoding {
    match field(headers, &HeaderName::ContentTransferEncoding) {
        Some(HeaderValue::Text(encoding)) if encoding.eq_ignore_ascii_case("base64") => {
            Encoding::Base64
        }
        Some(HeaderValue::Text(encoding)) if encoding.eq_ignore_ascii_case("quoted-printable") => {
            Encoding::QuotedPrintable
        }
        _ => Encoding::None,
    }
}

/// Parse the Content-Type and Content-Disposition fields that [`HEADER_PARSER`]
/// kept raw, from at most [`MAX_PARAMETER_FIELD`] bytes each (the parameters
/// that start beyond it are left out).
fn bound_parameter_fields<'x>(raw: &'x [u8], headers: &mut [Header<'x>]) {
    for header in headers {
        if matches!(
            header.name,
            HeaderName::ContentType | HeaderName::ContentDisposition
        ) {
            let field = raw
                .get(header.offset_start as usize..header.offset_end as usize)
                .unwrap_or_default();
            header.value = if field.len() <= MAX_PARAMETER_FIELD {
                MessageStream::new(field).parse_content_type()
            } else {
                // Whole parameters only, and the line end the parser expects: a
                // value cut in half may not parse at all.
                let mut cut = &field[..MAX_PARAMETER_FIELD];
                if let Some(semicolon) = cut.iter().rposition(|&b| b == b';') {
                    cut = &cut[..semicolon];
                }
                let cut = [cut, b"\r\n"].concat();
                MessageStream::new(&cut).parse_content_type().into_owned()
            };
        }
    }
}
