//! Writing responses: every byte the session sends goes through imap-codec's
//! encoders from here.

use imap_codec::encode::{Encoder, Fragment};
use imap_codec::{GreetingCodec, ResponseCodec};
use imap_types::auth::AuthMechanism;
use imap_types::core::{Tag, Text, Vec1};
use imap_types::response::{
    Capability, Code, CodeOther, CommandContinuationRequest, Data, Greeting, Response, Status,
    StatusKind,
};

/// Writes one response.
pub(super) fn response(out: &mut Vec<u8>, response: &Response<'_>) {
    // Fragment by fragment: a server's literals need no wait, and this spares
    // copying a FETCH's message once more into one buffer.
    for fragment in ResponseCodec::default().encode(response) {
        match fragment {
            Fragment::Line { data } | Fragment::Literal { data, .. } => {
                out.extend_from_slice(&data)
            }
        }
    }
}

/// Writes the greeting.
pub(super) fn greeting(out: &mut Vec<u8>, greeting: &Greeting<'_>) {
    out.extend_from_slice(&GreetingCodec::default().encode(greeting).dump());
}

/// Writes an untagged data response.
pub(super) fn data(out: &mut Vec<u8>, data: Data<'_>) {
    response(out, &Response::Data(data));
}

/// A status text; falls back to a plain one if `text` could not be sent.
pub(super) fn text(text: &str) -> Text<'static> {
    Text::try_from(text.to_owned()).unwrap_or_else(|_| Text::unvalidated("done"))
}

/// Writes a tagged (or, without a tag, untagged) status response.
pub(super) fn status(
    out: &mut Vec<u8>,
    tag: Option<&Tag<'_>>,
    kind: StatusKind,
    code: Option<Code<'static>>,
    message: &str,
) {
    let status = Status::new(tag.cloned(), kind, code, text(message))
        .expect("a Text is always a valid status text");
    response(out, &Response::Status(status));
}

/// Writes `* BYE`.
pub(super) fn bye(out: &mut Vec<u8>, message: &str) {
    let status = Status::bye(None, text(message)).expect("a Text is always a valid status text");
    response(out, &Response::Status(status));
}

/// Writes a continuation request (`+ text`).
pub(super) fn continuation(out: &mut Vec<u8>, message: &str) {
    let request = CommandContinuationRequest::basic(None, text(message))
        .expect("a Text is always a valid continuation text");
    response(out, &Response::CommandContinuationRequest(request));
}

/// Writes the empty challenge of AUTHENTICATE PLAIN (`+ `).
pub(super) fn empty_challenge(out: &mut Vec<u8>) {
    response(
        out,
        &Response::CommandContinuationRequest(CommandContinuationRequest::base64(&b""[..])),
    );
}

/// A response code imap-types has no variant for (RFC 5530's and others).
pub(super) fn code(atom: &'static str) -> Code<'static> {
    Code::Other(CodeOther::unvalidated(atom.as_bytes()))
}

/// What the server offers in a state.
#[derive(Debug, Clone, Copy)]
pub(super) struct Offer {
    pub(super) logged_in: bool,
    pub(super) starttls: bool,
    pub(super) auth_allowed: bool,
}

/// The CAPABILITY list for `offer`.
pub(super) fn capabilities(offer: Offer) -> Vec1<Capability<'static>> {
    let mut caps = vec![Capability::Imap4Rev1];
    if !offer.logged_in {
        if offer.starttls {
            caps.push(Capability::StartTls);
        }
        if offer.auth_allowed {
            caps.push(Capability::Auth(AuthMechanism::Plain));
        } else {
            caps.push(Capability::LoginDisabled);
        }
    }
    caps.extend([
        Capability::SaslIr,
        Capability::LiteralPlus,
        Capability::Id,
        Capability::Enable,
        Capability::Idle,
        Capability::Namespace,
        Capability::UidPlus,
        Capability::Move,
        Capability::Unselect,
        Capability::try_from("CHILDREN").expect("an atom"),
        Capability::try_from("UTF8=ACCEPT").expect("an atom"),
    ]);
    Vec1::try_from(caps).expect("never empty")
}
