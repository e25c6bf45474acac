//! One message as a log record, and back.
//!
//! ```text
//! record  = len:u32  crc:u32  id:i64  payload[len]          (little-endian)
//! crc     = CRC-32 of (store id:u64, segment number:u64, id, payload)
//! payload = version:u8  flags:u8  received_ms:i64
//!           mail_from  helo  client_addr  [auth_user]  [tls_version  tls_cipher]
//!           rcpt_count:u32  rcpt_to...  raw                   (each text or bytes: len:u32 + bytes)
//! ```
//!
//! The checksum covers the store's id and the segment number, so the records a
//! recycled segment still holds from its earlier life (or from another
//! store's log) fail it and end the scan, like zeros or a torn write.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::{Envelope, NewMessage, TlsInfo};

/// Bytes before a record's payload.
pub(super) const HEADER: usize = 16;

/// Payload format version, for a reader after a later change.
const VERSION: u8 = 1;

const BARE_LF: u8 = 1;
const SMTPUTF8: u8 = 2;
const AUTH: u8 = 4;
const TLS: u8 = 8;

/// What a record's checksum is salted with: the store's log id and the
/// segment the record is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Key {
    pub(super) store_id: u64,
    pub(super) segment: u64,
}

/// The bytes [`encode`] writes for `message`, header included.
pub(super) fn encoded_len(message: &NewMessage) -> u64 {
    let envelope = &message.envelope;
    let text = |text: &str| 4 + text.len();
    let mut len = HEADER + 2 + 8;
    len += text(&envelope.mail_from) + text(&envelope.helo);
    len += text(&envelope.client_addr.to_string());
    len += envelope.auth_user.as_deref().map_or(0, text);
    len += envelope
        .tls
        .as_ref()
        .map_or(0, |tls| text(&tls.version) + text(&tls.cipher));
    len += 4 + envelope
        .rcpt_to
        .iter()
        .map(|rcpt| text(rcpt))
        .sum::<usize>();
    len += 4 + message.raw.len();
    len as u64
}

/// Append the record of message `id` to `out`.
pub(super) fn encode(key: Key, id: i64, message: &NewMessage, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER]);
    let envelope = &message.envelope;
    let mut flags = 0;
    for (set, flag) in [
        (envelope.bare_lf, BARE_LF),
        (envelope.smtputf8, SMTPUTF8),
        (envelope.auth_user.is_some(), AUTH),
        (envelope.tls.is_some(), TLS),
    ] {
        if set {
            flags |= flag;
        }
    }
    out.push(VERSION);
    out.push(flags);
    out.extend_from_slice(&millis(message.received_at).to_le_bytes());
    put(out, envelope.mail_from.as_bytes());
    put(out, envelope.helo.as_bytes());
    put(out, envelope.client_addr.to_string().as_bytes());
    if let Some(user) = &envelope.auth_user {
        put(out, user.as_bytes());
    }
    if let Some(tls) = &envelope.tls {
        put(out, tls.version.as_bytes());
        put(out, tls.cipher.as_bytes());
    }
    out.extend_from_slice(&(envelope.rcpt_to.len() as u32).to_le_bytes());
    for rcpt in &envelope.rcpt_to {
        put(out, rcpt.as_bytes());
    }
    put(out, &message.raw);
    let len = (out.len() - start - HEADER) as u32;
    let crc = checksum(key, id, &out[start + HEADER..]);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    out[start + 8..start + 16].copy_from_slice(&id.to_le_bytes());
}

/// A record's header, read before its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Header {
    pub(super) len: u32,
    pub(super) crc: u32,
    pub(super) id: i64,
}

impl Header {
    pub(super) fn parse(bytes: &[u8; HEADER]) -> Header {
        let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
        Header {
            len: word(0),
            crc: word(4),
            id: i64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes")),
        }
    }

    /// Whether `payload` is this header's, written under `key`.
    pub(super) fn matches(&self, key: Key, payload: &[u8]) -> bool {
        self.len != 0
            && self.id > 0
            && payload.len() == self.len as usize
            && checksum(key, self.id, payload) == self.crc
    }
}

fn checksum(key: Key, id: i64, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&key.store_id.to_le_bytes());
    hasher.update(&key.segment.to_le_bytes());
    hasher.update(&id.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

/// The message in a payload whose checksum matched; `None` if it does not
/// parse (a bug, or a record of a format this build does not know).
pub(super) fn decode(payload: &[u8]) -> Option<NewMessage> {
    let mut input = Reader(payload);
    if input.byte()? != VERSION {
        return None;
    }
    let flags = input.byte()?;
    let received_ms = i64::from_le_bytes(input.take(8)?.try_into().ok()?);
    let mail_from = input.text()?;
    let helo = input.text()?;
    let client_addr: SocketAddr = input.text()?.parse().ok()?;
    let auth_user = if flags & AUTH != 0 {
        Some(input.text()?)
    } else {
        None
    };
    let tls = if flags & TLS != 0 {
        Some(TlsInfo {
            version: input.text()?,
            cipher: input.text()?,
        })
    } else {
        None
    };
    let count = u32::from_le_bytes(input.take(4)?.try_into().ok()?) as usize;
    let mut rcpt_to = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        rcpt_to.push(input.text()?);
    }
    let raw = input.bytes()?.to_vec();
    if !input.0.is_empty() {
        return None;
    }
    Some(NewMessage {
        envelope: Envelope {
            mail_from,
            rcpt_to,
            helo,
            client_addr,
            bare_lf: flags & BARE_LF != 0,
            smtputf8: flags & SMTPUTF8 != 0,
            tls,
            auth_user,
        },
        received_at: from_millis(received_ms),
        raw,
    })
}

fn put(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn byte(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = u32::from_le_bytes(self.take(4)?.try_into().ok()?) as usize;
        self.take(len)
    }

    fn text(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?.to_vec()).ok()
    }
}

/// Milliseconds since the epoch, as the store keeps `received_at`; before the
/// epoch counts as the epoch.
fn millis(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |since| {
        i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
    })
}

fn from_millis(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn message(raw: &str) -> NewMessage {
        NewMessage {
            envelope: Envelope {
                mail_from: "from@example.test".into(),
                rcpt_to: vec!["a@example.test".into(), "b@example.test".into()],
                helo: "client.example.test".into(),
                client_addr: "[::1]:2525".parse().unwrap(),
                bare_lf: true,
                smtputf8: false,
                tls: Some(TlsInfo {
                    version: "TLSv1.3".into(),
                    cipher: "TLS_AES_128_GCM_SHA256".into(),
                }),
                auth_user: Some("ålice".into()),
            },
            received_at: UNIX_EPOCH + Duration::from_millis(1_764_000_000_123),
            raw: raw.as_bytes().to_vec(),
        }
    }

    const KEY: Key = Key {
        store_id: 7,
        segment: 3,
    };

    #[test]
    fn a_record_reads_back_as_written() {
        let mut plain = message("Subject: hi\r\n\r\nbody\r\n");
        plain.envelope.tls = None;
        plain.envelope.auth_user = None;
        plain.envelope.mail_from = String::new();
        for original in [message("Subject: hi\r\n\r\nbody\r\n"), plain] {
            let mut out = vec![7, 7];
            encode(KEY, 42, &original, &mut out);
            assert_eq!(out.len() as u64 - 2, encoded_len(&original));
            let header = Header::parse(out[2..2 + HEADER].try_into().unwrap());
            assert_eq!(header.id, 42);
            let payload = &out[2 + HEADER..];
            assert!(header.matches(KEY, payload));
            assert_eq!(decode(payload).unwrap(), original);
        }
    }

    #[test]
    fn the_checksum_covers_segment_id_and_every_byte() {
        let mut out = Vec::new();
        encode(KEY, 42, &message("x"), &mut out);
        let header = Header::parse(out[..HEADER].try_into().unwrap());
        let payload = out[HEADER..].to_vec();
        let recycled = Key { segment: 4, ..KEY };
        assert!(
            !header.matches(recycled, &payload),
            "a recycled segment's old record"
        );
        let other = Key { store_id: 8, ..KEY };
        assert!(!header.matches(other, &payload), "another store's record");
        assert!(!Header { id: 43, ..header }.matches(KEY, &payload));
        for at in 0..payload.len() {
            let mut flipped = payload.clone();
            flipped[at] ^= 0x10;
            assert!(!header.matches(KEY, &flipped), "byte {at} flipped");
        }
        assert!(!Header::parse(&[0; HEADER]).matches(KEY, &[]), "zeros");
    }
}
