//! BODY and BODYSTRUCTURE (RFC 3501 section 7.4.2) from the MIME tree, with
//! Dovecot's choices where the RFC leaves room: type names and encodings in
//! the case the message uses, `charset us-ascii` added to text parts that name
//! none, `7bit` when no encoding is given, header values kept encoded.

use imap_types::body::{
    BasicFields, Body, BodyStructure, Disposition, Language, Location, MultiPartExtensionData,
    SinglePartExtensionData, SpecificFields,
};
use imap_types::core::{IString, NString, Vec1};

use super::envelope::{envelope, istring, nstring};
use super::header::{self, Field, Params};
use super::mime::{Kind, Part, lines};

/// The BODYSTRUCTURE (`extended`) or BODY of `part`.
pub(crate) fn body_structure(raw: &[u8], part: &Part, extended: bool) -> BodyStructure<'static> {
    let fields = part.fields(raw);
    match &part.kind {
        Kind::Multipart(parts) => {
            let bodies: Vec<_> = parts
                .iter()
                .map(|p| body_structure(raw, p, extended))
                .collect();
            BodyStructure::Multi {
                bodies: Vec1::try_from(bodies).expect("a multipart has at least one part"),
                subtype: istring(part.content_type.subtype.clone()),
                extension_data: extended.then(|| MultiPartExtensionData {
                    parameter_list: params(part.content_type.params.clone()),
                    tail: Some(disposition(&fields)),
                }),
            }
        }
        _ => single(raw, part, &fields, extended),
    }
}

fn single(raw: &[u8], part: &Part, fields: &[Field<'_>], extended: bool) -> BodyStructure<'static> {
    let content_type = &part.content_type;
    let body = &raw[part.body.clone()];
    let is_text = content_type.is("text", None);
    let mut parameters = content_type.params.clone();
    if is_text && content_type.param(b"charset").is_none() {
        parameters.push((b"charset".to_vec(), b"us-ascii".to_vec()));
    }
    let text_of =
        |name: &[u8]| header::first(fields, name).map_or(NString::NIL, |f| nstring(f.unfolded()));
    let encoding = header::first(fields, b"content-transfer-encoding")
        .and_then(header::transfer_encoding)
        .unwrap_or_else(|| b"7bit".to_vec());
    let basic = BasicFields {
        parameter_list: params(parameters),
        id: text_of(b"content-id"),
        description: text_of(b"content-description"),
        content_transfer_encoding: istring(encoding),
        size: u32::try_from(body.len()).unwrap_or(u32::MAX),
    };
    let specific = match &part.kind {
        Kind::Message(message) => SpecificFields::Message {
            envelope: Box::new(envelope(&message.fields(raw))),
            body_structure: Box::new(body_structure(raw, message, extended)),
            number_of_lines: lines(body),
        },
        _ if is_text => SpecificFields::Text {
            subtype: istring(content_type.subtype.clone()),
            number_of_lines: lines(body),
        },
        _ => SpecificFields::Basic {
            r#type: istring(content_type.r#type.clone()),
            subtype: istring(content_type.subtype.clone()),
        },
    };
    BodyStructure::Single {
        body: Body { basic, specific },
        extension_data: extended.then(|| SinglePartExtensionData {
            md5: text_of(b"content-md5"),
            tail: Some(disposition(fields)),
        }),
    }
}

fn params(params: Params) -> Vec<(IString<'static>, IString<'static>)> {
    params
        .into_iter()
        .map(|(name, value)| (istring(name), istring(value)))
        .collect()
}

/// Disposition, language and location: the extension data every part has.
fn disposition(fields: &[Field<'_>]) -> Disposition<'static> {
    let disposition = header::first(fields, b"content-disposition")
        .and_then(header::disposition)
        .map(|(disposition, parameters)| (istring(disposition), params(parameters)));
    let language = header::first(fields, b"content-language")
        .map(header::languages)
        .unwrap_or_default()
        .into_iter()
        .map(istring)
        .collect();
    let location =
        header::first(fields, b"content-location").map_or(NString::NIL, |f| nstring(f.unfolded()));
    Disposition {
        disposition,
        tail: Some(Language {
            language,
            tail: Some(Location {
                location,
                extensions: Vec::new(),
            }),
        }),
    }
}
