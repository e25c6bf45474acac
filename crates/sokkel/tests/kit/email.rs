//! Reading a message the way a mail program would, with Python's email package
//! (`py/parse_message.py`, `policy=email.policy.default`), so a comparison does not
//! trust sokkel's own parser.

use serde_json::Value;

use super::process::{kit_file, program};

/// One leaf part of a parsed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub content_type: String,
    pub charset: Option<String>,
    pub disposition: Option<String>,
    pub filename: Option<String>,
    /// Decoded text, for text/* parts.
    pub text: Option<String>,
    /// The decoded payload (transfer encoding undone).
    pub bytes: Vec<u8>,
}

/// A message as `email.message_from_bytes(raw, policy=email.policy.default)` sees it.
#[derive(Debug)]
pub struct Parsed {
    pub json: Value,
}

/// Parses `raw` with `parse_message.py`.
pub fn parse_message(raw: &[u8]) -> Parsed {
    let out = program("python3", [kit_file("py/parse_message.py")])
        .stdin(raw)
        .run();
    out.expect_code(0);
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "parse_message.py printed no JSON ({e}): {}",
            out.stdout_text()
        )
    });
    Parsed { json }
}

pub fn opt_string(v: &Value) -> Option<String> {
    v.as_str().map(str::to_owned)
}

fn hex_decode(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex from parse_message.py"))
        .collect()
}

impl Parsed {
    /// Every value of header `name` (case-insensitive), decoded.
    pub fn headers(&self, name: &str) -> Vec<String> {
        self.json["headers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|h| h[0].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name)))
            .map(|h| h[1].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// The one value of header `name`; panics if it is missing or repeated.
    #[track_caller]
    pub fn header(&self, name: &str) -> String {
        let values = self.headers(name);
        assert_eq!(
            values.len(),
            1,
            "header {name}: {values:?} in {:#}",
            self.json
        );
        values[0].clone()
    }

    /// The (display name, address) pairs of an address header: "from", "to", "cc",
    /// "bcc". `None` when the header is absent.
    pub fn addresses(&self, field: &str) -> Option<Vec<(String, String)>> {
        self.json[field].as_array().map(|list| {
            list.iter()
                .map(|pair| {
                    (
                        pair[0].as_str().unwrap_or_default().to_owned(),
                        pair[1].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
    }

    pub fn subject(&self) -> Option<String> {
        opt_string(&self.json["subject"])
    }

    pub fn content_type(&self) -> String {
        opt_string(&self.json["content_type"]).unwrap_or_default()
    }

    pub fn date_parses(&self) -> bool {
        self.json["date_parses"].as_bool().unwrap_or(false)
    }

    pub fn message_id(&self) -> Option<String> {
        opt_string(&self.json["message_id"])
    }

    /// What the email package found wrong with the message; should be empty.
    pub fn defects(&self) -> Vec<String> {
        self.json["defects"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| d.as_str().map(str::to_owned))
            .collect()
    }

    pub fn parts(&self) -> Vec<Part> {
        self.json["parts"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| Part {
                content_type: opt_string(&p["content_type"]).unwrap_or_default(),
                charset: opt_string(&p["charset"]),
                disposition: opt_string(&p["disposition"]),
                filename: opt_string(&p["filename"]),
                text: opt_string(&p["text"]),
                bytes: hex_decode(p["hex"].as_str().unwrap_or_default()),
            })
            .collect()
    }

    /// The text of the first text/plain part that is not an attachment.
    #[track_caller]
    pub fn text_body(&self) -> String {
        self.parts()
            .into_iter()
            .find(|p| {
                p.content_type == "text/plain" && p.disposition.as_deref() != Some("attachment")
            })
            .and_then(|p| p.text)
            .unwrap_or_else(|| panic!("no text/plain part in {:#}", self.json))
    }
}

/// A (display name, address) pair as [`Parsed::addresses`] gives them.
pub fn pair(name: &str, address: &str) -> (String, String) {
    (name.to_owned(), address.to_owned())
}
