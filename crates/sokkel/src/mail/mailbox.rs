//! What `mail import` reads from a message besides its bytes: the envelope
//! sender and time of an mbox From_ line, the envelope and date its headers
//! imply, and the From_ line `mail export` writes. The formats themselves are
//! in [`sokkel_message::mailbox`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mail_parser::MessageParser;
use sokkel_store::time::{civil_from_days, days_from_civil};

/// The envelope sender and the time a From_ line (after `From `) names. A
/// sender without `@` is none (the caller takes the headers' envelope): what
/// writers put when they do not know, such as `MAILER-DAEMON` or Thunderbird's
/// `-`. `<>` is the null sender.
pub fn parse_from_line(text: &[u8]) -> (Option<String>, Option<SystemTime>) {
    let text = String::from_utf8_lossy(text);
    let mut words = text.split_whitespace();
    let sender = words.next().and_then(|s| match s {
        "<>" => Some(String::new()),
        s if s.contains('@') => Some(s.trim_start_matches('<').trim_end_matches('>').to_owned()),
        _ => None,
    });
    let rest: Vec<&str> = words.collect();
    (sender, parse_asctime(&rest))
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

/// `[Tue] Dec 1 07:29:09 [zone] 2026` (C's asctime, as From_ lines have it),
/// read as UTC.
fn parse_asctime(words: &[&str]) -> Option<SystemTime> {
    let month_at = words.iter().position(|w| {
        MONTHS
            .iter()
            .any(|m| w.len() >= 3 && w[..3].eq_ignore_ascii_case(m))
    })?;
    let month = MONTHS
        .iter()
        .position(|m| words[month_at][..3].eq_ignore_ascii_case(m))? as i64
        + 1;
    let day: i64 = words.get(month_at + 1)?.parse().ok()?;
    let mut clock = words.get(month_at + 2)?.split(':');
    let hour: i64 = clock.next()?.parse().ok()?;
    let minute: i64 = clock.next()?.parse().ok()?;
    let second: i64 = clock.next().map_or(Some(0), |s| s.parse().ok())?;
    let year: i64 = words[month_at + 3..]
        .iter()
        .find(|w| w.len() == 4 && w.bytes().all(|b| b.is_ascii_digit()))?
        .parse()
        .ok()?;
    if !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 || year < 1970 {
        return None;
    }
    let secs = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

/// `Tue Dec  1 07:29:09 2026`: `time` in UTC as a From_ line gives it.
pub fn asctime(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    // 1970-01-01 was a Thursday.
    let weekday = WEEKDAYS[(days + 4).rem_euclid(7) as usize];
    format!(
        "{weekday} {} {day:>2} {:02}:{:02}:{:02} {year}",
        MONTHS[month as usize - 1],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// What a message's headers say its envelope was, for a message that comes
/// without one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderEnvelope {
    /// Return-Path, else Sender, else From; empty if none (or `<>`).
    pub mail_from: String,
    /// Delivered-To and X-Original-To, else To, Cc and Bcc.
    pub rcpt_to: Vec<String>,
    /// The Date header.
    pub date: Option<SystemTime>,
}

/// The envelope `raw`'s headers imply.
pub fn header_envelope(raw: &[u8]) -> HeaderEnvelope {
    let return_path = header_values(raw, "Return-Path")
        .into_iter()
        .next()
        .map(|value| angle_address(&value));
    let mut rcpt_to: Vec<String> = Vec::new();
    for name in ["Delivered-To", "X-Original-To"] {
        for value in header_values(raw, name) {
            let address = angle_address(&value);
            if !address.is_empty() && !rcpt_to.iter().any(|a| a.eq_ignore_ascii_case(&address)) {
                rcpt_to.push(address);
            }
        }
    }
    let Some(parsed) = MessageParser::default().parse_headers(raw) else {
        return HeaderEnvelope {
            mail_from: return_path.unwrap_or_default(),
            rcpt_to,
            date: None,
        };
    };
    let first = |address: Option<&mail_parser::Address>| {
        address
            .and_then(|a| a.iter().find_map(|addr| addr.address()))
            .map(str::to_owned)
    };
    let mail_from = return_path
        .or_else(|| first(parsed.sender()))
        .or_else(|| first(parsed.from()))
        .unwrap_or_default();
    if rcpt_to.is_empty() {
        for list in [parsed.to(), parsed.cc(), parsed.bcc()]
            .into_iter()
            .flatten()
        {
            for address in list.iter().filter_map(|a| a.address()) {
                if !address.is_empty() && !rcpt_to.iter().any(|a| a.eq_ignore_ascii_case(address)) {
                    rcpt_to.push(address.to_owned());
                }
            }
        }
    }
    let date = parsed
        .date()
        .map(|date| date.to_timestamp())
        .and_then(|secs| u64::try_from(secs).ok())
        .map(|secs| UNIX_EPOCH + Duration::from_secs(secs));
    HeaderEnvelope {
        mail_from,
        rcpt_to,
        date,
    }
}

/// The address in `<a@b>` (or the bare value), without spaces.
fn angle_address(value: &str) -> String {
    let value = value.trim();
    let inner = match (value.find('<'), value.rfind('>')) {
        (Some(open), Some(close)) if open < close => &value[open + 1..close],
        _ => value,
    };
    inner.split_whitespace().collect()
}

/// The values of every header field called `name` (any case) in the header
/// block of `raw`, unfolded.
fn header_values(raw: &[u8], name: &str) -> Vec<String> {
    let mut values: Vec<String> = Vec::new();
    let mut in_field = false;
    for line in raw.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            if in_field && let Some(value) = values.last_mut() {
                value.push_str(&String::from_utf8_lossy(line));
            }
            continue;
        }
        in_field = line.len() > name.len()
            && line[name.len()] == b':'
            && line[..name.len()].eq_ignore_ascii_case(name.as_bytes());
        if in_field {
            values.push(String::from_utf8_lossy(&line[name.len() + 1..]).into_owned());
        }
    }
    values
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sender and time of a From_ line (after `From `): `MAILER-DAEMON`,
    /// Thunderbird's `-` or any word without `@` means unknown, `<>` the null
    /// sender.
    #[test]
    fn from_lines() {
        let line = |text: &str| parse_from_line(text.as_bytes());
        let december = UNIX_EPOCH + Duration::from_secs(1_796_110_149);
        assert_eq!(
            line("a@x Tue Dec  1 07:29:09 2026"),
            (Some("a@x".into()), Some(december))
        );
        assert_eq!(
            line("<a@x> Tue Dec 1 07:29:09 +0000 2026").1,
            Some(december)
        );
        assert_eq!(line("<> Mon Nov 30 23:00:00 2026").0, Some(String::new()));
        assert_eq!(
            line("MAILER-DAEMON Thu Jan  1 00:00:00 1970"),
            (None, Some(UNIX_EPOCH))
        );
        assert_eq!(line("- Tue Dec  1 07:29:09 2026"), (None, Some(december)));
        assert_eq!(line("someone"), (None, None));
        assert_eq!(line("<a@x>").0, Some("a@x".into()));
    }

    #[test]
    fn asctime_both_ways() {
        for secs in [0, 1_796_110_149, 951_782_400, 4_102_444_799] {
            let time = UNIX_EPOCH + Duration::from_secs(secs);
            let text = asctime(time);
            let words: Vec<&str> = text.split_whitespace().collect();
            assert_eq!(parse_asctime(&words), Some(time), "{text}");
        }
        assert_eq!(
            asctime(UNIX_EPOCH + Duration::from_secs(1_796_110_149)),
            "Tue Dec  1 07:29:09 2026"
        );
        for bad in [
            "",
            "Tue Foo 1 07:29:09 2026",
            "Dec 1 25:00:00 2026",
            "Dec 1 07:29",
        ] {
            let words: Vec<&str> = bad.split_whitespace().collect();
            assert_eq!(parse_asctime(&words), None, "{bad}");
        }
    }

    #[test]
    fn envelopes_from_headers() {
        let raw = b"Return-Path: <bounce@x.test>\nDelivered-To: me@y.test\nFrom: A <a@x.test>\nTo: b@y.test, C <c@y.test>\n\nbody\nDelivered-To: not@header\n";
        let envelope = header_envelope(raw);
        assert_eq!(envelope.mail_from, "bounce@x.test");
        assert_eq!(envelope.rcpt_to, ["me@y.test"]);
        let raw = b"From: A <a@x.test>\r\nSender: s@x.test\r\nTo: b@y.test,\r\n C <c@y.test>\r\nCc: d@y.test\r\nBcc: B@y.test\r\nDate: Tue, 1 Dec 2026 07:29:09 +0000\r\n\r\n";
        let envelope = header_envelope(raw);
        assert_eq!(envelope.mail_from, "s@x.test");
        assert_eq!(envelope.rcpt_to, ["b@y.test", "c@y.test", "d@y.test"]);
        assert_eq!(
            envelope.date,
            Some(UNIX_EPOCH + Duration::from_secs(1_796_110_149))
        );
        assert_eq!(header_envelope(b"Return-Path: <>\n\n").mail_from, "");
        assert_eq!(header_envelope(b"not a message").mail_from, "");
    }
}
