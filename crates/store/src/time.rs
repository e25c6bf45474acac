//! Calendar arithmetic and UTC timestamps, without a date-time crate: the CLI prints
//! received times, the web API writes RFC 3339, and search parses `before:` dates,
//! all with these few functions.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (negative before it), saturating.
pub fn unix_millis(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// `2026-11-24 15:04:01` (UTC), or RFC 3339 `2026-11-24T15:04:01Z` when `rfc3339`.
pub fn utc(time: SystemTime, rfc3339: bool) -> String {
    let secs = unix_millis(time).div_euclid(1000);
    let (date, (hh, mm, ss)) = split_seconds(secs);
    let sep = if rfc3339 { 'T' } else { ' ' };
    let zone = if rfc3339 { "Z" } else { "" };
    format!("{date}{sep}{hh:02}:{mm:02}:{ss:02}{zone}")
}

/// `2026-11-24T15:04:01.123Z`: RFC 3339 with milliseconds, as Mailpit's API writes.
pub fn rfc3339_millis(time: SystemTime) -> String {
    let millis = unix_millis(time);
    let (date, (hh, mm, ss)) = split_seconds(millis.div_euclid(1000));
    format!(
        "{date}T{hh:02}:{mm:02}:{ss:02}.{:03}Z",
        millis.rem_euclid(1000)
    )
}

fn split_seconds(secs: i64) -> (String, (i64, i64, i64)) {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    (
        format!("{y:04}-{m:02}-{d:02}"),
        (rem / 3600, rem % 3600 / 60, rem % 60),
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// A proleptic Gregorian date to days since 1970-01-01 (the inverse of
/// [`civil_from_days`]).
pub fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// What [`unix_millis`] gave back as a time.
pub(crate) fn from_millis(millis: i64) -> SystemTime {
    let magnitude = Duration::from_millis(millis.unsigned_abs());
    if millis >= 0 {
        UNIX_EPOCH + magnitude
    } else {
        UNIX_EPOCH - magnitude
    }
}

/// [`unix_millis`], as the backends call it when they write a time.
pub(crate) use unix_millis as to_millis;

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_known_instants() {
        let at = |ms: u64| UNIX_EPOCH + Duration::from_millis(ms);
        assert_eq!(utc(at(0), true), "1970-01-01T00:00:00Z");
        assert_eq!(utc(at(951_782_400_000), false), "2000-02-29 00:00:00");
        assert_eq!(utc(at(1_795_532_641_999), true), "2026-11-24T15:04:01Z");
        assert_eq!(rfc3339_millis(at(0)), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339_millis(at(951_782_400_007)),
            "2000-02-29T00:00:00.007Z"
        );
        assert_eq!(
            rfc3339_millis(at(1_795_532_641_250)),
            "2026-11-24T15:04:01.250Z"
        );
        assert_eq!(
            rfc3339_millis(UNIX_EPOCH - Duration::from_millis(1)),
            "1969-12-31T23:59:59.999Z"
        );
    }

    #[test]
    fn days_round_trip() {
        for days in [-719_468, -1, 0, 1, 10_957, 11_016, 20_781, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(
                days_from_civil(y, i64::from(m), i64::from(d)),
                days,
                "{y}-{m}-{d}"
            );
        }
        assert_eq!(days_from_civil(2026, 11, 24), 20_781);
    }
}
