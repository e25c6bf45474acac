//! Durations and sizes as people type them on a command line.

use std::time::Duration;

/// Parses `300`, `300s`, `1.5s`, `250ms`, `5m`, `2h` (a bare number is seconds).
pub fn parse_duration(input: &str) -> Result<Duration, String> {
    let s = input.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{input:?} is not a duration; write e.g. 300s, 250ms or 5m"))?;
    let seconds = match unit.trim() {
        "" | "s" | "sec" | "secs" => value,
        "ms" => value / 1000.0,
        "m" | "min" | "mins" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {input:?}; use ms, s, m or h"
            ));
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("{input:?} is out of range"))
}

/// Like [`parse_duration`], but zero is refused: a zero timeout would end every
/// session before it starts.
pub fn parse_timeout(input: &str) -> Result<Duration, String> {
    match parse_duration(input)? {
        d if d.is_zero() => Err(format!("{input:?}: a timeout must be longer than zero")),
        d => Ok(d),
    }
}

/// Parses `4096`, `64KiB`, `64k`, `1MiB`, `1M` (units are powers of 1024).
pub fn parse_size(input: &str) -> Result<usize, String> {
    let s = input.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let value: usize = number
        .parse()
        .map_err(|_| format!("{input:?} is not a size; write e.g. 4096, 64KiB or 1MiB"))?;
    let scale: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {input:?}; use KiB, MiB or GiB"
            ));
        }
    };
    value
        .checked_mul(scale)
        .ok_or_else(|| format!("{input:?} is too large"))
}

/// A size of at least `min` bytes, for limits where a tiny value makes no sense.
pub fn parse_size_at_least(input: &str, min: usize) -> Result<usize, String> {
    match parse_size(input)? {
        n if n < min => Err(format!("{input:?} is too small; at least {min} bytes")),
        n => Ok(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("300"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5 years").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_timeout("0s").is_err());
        assert_eq!(parse_timeout("1ms"), Ok(Duration::from_millis(1)));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("1M"), Ok(1 << 20));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("1.5M").is_err());
        assert!(parse_size_at_least("0", 1).is_err());
        assert_eq!(parse_size_at_least("1KiB", 1024), Ok(1024));
    }
}
