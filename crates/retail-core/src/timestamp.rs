//! Deserialization of event timestamps: a direct parser for the shapes producers write
//! (`2025-01-01T10:00:00Z`, `…:00.123Z`, `…+01:00`), falling back to chrono for anything else.
//!
//! chrono's general parser was a tenth of the cost of a typed parse. The fast path only ever
//! *accepts* input that chrono accepts with the same instant; everything it does not recognise
//! (other separators, leap seconds, more than 9 fraction digits, bad input, …) goes to chrono, so
//! accept/reject and the error text stay chrono's.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime, TimeDelta, Utc};
use serde::de;
use std::fmt;

/// `#[serde(deserialize_with)]` for `DateTime<Utc>` fields: same behaviour as chrono's own
/// `Deserialize`, faster on the common shapes.
pub(crate) fn deserialize<'de, D: de::Deserializer<'de>>(deserializer: D) -> Result<DateTime<Utc>, D::Error> {
    deserializer.deserialize_str(Visitor)
}

struct Visitor;

impl de::Visitor<'_> for Visitor {
    type Value = DateTime<Utc>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        // chrono's wording, so type errors read as before.
        formatter.write_str("an RFC 3339 formatted date and time string")
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
        match parse_common(value.as_bytes()) {
            Some(t) => Ok(t),
            None => value.parse::<DateTime<FixedOffset>>().map(|t| t.with_timezone(&Utc)).map_err(E::custom),
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.f{1,9}](Z|±HH:MM)`, exactly; `None` for anything else, including
/// invalid dates and times (chrono then reports why).
pub(crate) fn parse_common(s: &[u8]) -> Option<DateTime<Utc>> {
    if s.len() < 20 || s[4] != b'-' || s[7] != b'-' || s[10] != b'T' || s[13] != b':' || s[16] != b':' {
        return None;
    }
    let year = digits(&s[0..4])?;
    let month = digits(&s[5..7])?;
    let day = digits(&s[8..10])?;
    let hour = digits(&s[11..13])?;
    let minute = digits(&s[14..16])?;
    let second = digits(&s[17..19])?;
    let mut rest = &s[19..];
    let mut nano = 0;
    if let [b'.', tail @ ..] = rest {
        let n = tail.iter().take_while(|b| b.is_ascii_digit()).count();
        if n == 0 || n > 9 {
            return None;
        }
        nano = digits(&tail[..n])? * 10u32.pow(9 - n as u32);
        rest = &tail[n..];
    }
    let offset_secs = match rest {
        [b'Z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let (h, m) = (digits(&[*h1, *h2])?, digits(&[*m1, *m2])?);
            if h > 23 || m > 59 {
                return None;
            }
            let secs = (h * 3600 + m * 60) as i64;
            if *sign == b'-' {
                -secs
            } else {
                secs
            }
        }
        _ => return None,
    };
    // chrono validates the calendar (month lengths, leap years) and the clock (no leap second here).
    let local = NaiveDate::from_ymd_opt(year as i32, month, day)?.and_time(NaiveTime::from_hms_nano_opt(hour, minute, second, nano)?);
    let utc = if offset_secs == 0 { local } else { local.checked_sub_signed(TimeDelta::seconds(offset_secs))? };
    Some(utc.and_utc())
}

/// The decimal value of a run of ASCII digits (at most 9, so it fits).
#[inline]
fn digits(b: &[u8]) -> Option<u32> {
    b.iter().try_fold(0u32, |acc, &c| c.is_ascii_digit().then(|| acc * 10 + (c - b'0') as u32))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Datelike;

    /// Through chrono's own `Deserialize` for `DateTime<Utc>`: the behaviour to keep.
    fn chrono_deserialize(json: &str) -> Result<DateTime<Utc>, String> {
        serde_json::from_str::<DateTime<Utc>>(json).map_err(|e| e.to_string())
    }

    fn ours(json: &str) -> Result<DateTime<Utc>, String> {
        let mut de = serde_json::Deserializer::from_str(json);
        deserialize(&mut de).map_err(|e| e.to_string())
    }

    const SAMPLES: &[&str] = &[
        // common shapes
        "2025-01-01T10:00:00Z",
        "2025-01-01T10:30:00.123Z",
        "2025-01-01T10:30:00+01:00",
        "2025-01-01T10:30:00-05:30",
        "2025-01-01T00:00:00+00:00",
        "2025-01-01T00:00:00-00:00",
        "2025-01-01T00:00:00.050+00:00",
        "2025-12-31T23:59:59.999999999Z",
        "2025-12-31T23:30:00-01:00",
        "2025-01-01T00:30:00+01:00",
        "0000-01-01T00:00:00Z",
        "0000-01-01T00:00:00+23:59",
        "9999-12-31T23:59:59-23:59",
        "1970-01-01T00:00:00Z",
        "1969-12-31T23:59:59.5Z",
        // fractions of every length, and too long
        "2025-01-01T10:00:00.1Z",
        "2025-01-01T10:00:00.12Z",
        "2025-01-01T10:00:00.1234Z",
        "2025-01-01T10:00:00.12345Z",
        "2025-01-01T10:00:00.123456Z",
        "2025-01-01T10:00:00.1234567Z",
        "2025-01-01T10:00:00.12345678Z",
        "2025-01-01T10:00:00.123456789Z",
        "2025-01-01T10:00:00.1234567891Z",
        "2025-01-01T10:00:00.000000000000000001Z",
        "2025-01-01T10:00:00.Z",
        "2025-01-01T10:00:00.+01:00",
        // leap-ish dates
        "2024-02-29T12:00:00Z",
        "2025-02-29T12:00:00Z",
        "2000-02-29T12:00:00Z",
        "1900-02-29T12:00:00Z",
        "2100-02-29T12:00:00Z",
        "2024-02-30T12:00:00Z",
        "2025-04-31T12:00:00Z",
        "2025-06-30T12:00:00Z",
        "2025-12-31T12:00:00Z",
        // bad fields
        "2025-00-10T12:00:00Z",
        "2025-13-10T12:00:00Z",
        "2025-01-00T12:00:00Z",
        "2025-01-32T12:00:00Z",
        "2025-01-01T24:00:00Z",
        "2025-01-01T23:60:00Z",
        "2025-01-01T23:59:60Z",
        "2016-12-31T23:59:60Z",
        "2025-01-01T23:59:60Z",
        "2025-01-01T23:59:61Z",
        // offsets
        "2025-01-01T10:00:00+24:00",
        "2025-01-01T10:00:00+23:60",
        "2025-01-01T10:00:00+99:00",
        "2025-01-01T10:00:00+0100",
        "2025-01-01T10:00:00+01",
        "2025-01-01T10:00:00+1:00",
        "2025-01-01T10:00:00 +01:00",
        "2025-01-01T10:00:00z",
        "2025-01-01T10:00:00UTC",
        "2025-01-01T10:00:00utc",
        "2025-01-01T10:00:00",
        "2025-01-01T10:00:00Zjunk",
        "2025-01-01T10:00:00Z ",
        "2025-01-01T10:00:00+01:00:00",
        // other relaxed forms chrono takes
        "2025-01-01t10:00:00Z",
        "2025-01-01 10:00:00Z",
        "2025-1-1T1:2:3Z",
        "+2025-01-01T10:00:00Z",
        "-0001-01-01T10:00:00Z",
        "12025-01-01T10:00:00Z",
        // garbage
        "",
        "Z",
        "2025",
        "2025-01-01",
        "2025-01-01T",
        "2025/01/01T10:00:00Z",
        "2025-01-01T10-00-00Z",
        "2O25-01-01T10:00:00Z",
        "2025-01-01T10:00:0aZ",
        "２０２５-01-01T10:00:00Z",
        "2025-01-01T10:00:00.１Z",
        "not a time at all",
    ];

    /// Valid but rare shapes the fast path deliberately declines.
    const LEFT_TO_CHRONO: &[&str] = &[
        "2025-01-01T10:00:00.1234567891Z",
        "2025-01-01T10:00:00.000000000000000001Z",
        "2016-12-31T23:59:60Z",
        "2025-01-01T23:59:60Z",
        "2025-01-01T10:00:00z",
        "2025-01-01t10:00:00Z",
        "2025-01-01 10:00:00Z",
    ];

    #[test]
    fn fast_path_agrees_with_chrono() {
        for s in SAMPLES {
            let fast = parse_common(s.as_bytes());
            if let Some(t) = fast {
                // Whatever the fast path takes, both of chrono's parsers take, with the same instant.
                let relaxed = s.parse::<DateTime<FixedOffset>>().unwrap_or_else(|e| panic!("{s}: chrono says {e}"));
                assert_eq!(relaxed.with_timezone(&Utc), t, "{s}");
                let strict = DateTime::parse_from_rfc3339(s).unwrap_or_else(|e| panic!("{s}: chrono says {e}"));
                assert_eq!(strict.with_timezone(&Utc), t, "{s}");
            } else {
                // Declined shapes are either invalid or ones the fast path leaves to chrono.
                let valid = DateTime::parse_from_rfc3339(s).is_ok();
                assert!(!valid || LEFT_TO_CHRONO.contains(s), "{s}: valid RFC 3339 declined by the fast path");
            }
            let json = serde_json::to_string(s).unwrap();
            assert_eq!(ours(&json), chrono_deserialize(&json), "{s}");
        }
    }

    #[test]
    fn common_shapes_take_the_fast_path() {
        for s in ["2025-01-01T10:00:00Z", "2025-01-01T10:00:00.123Z", "2025-01-01T10:00:00+01:00", "2025-01-01T00:00:00.050+00:00"] {
            assert!(parse_common(s.as_bytes()).is_some(), "{s}");
        }
    }

    #[test]
    fn non_strings_fail_as_with_chrono() {
        for json in ["12", "null", "true", "{}", "[]", "\"2025-01-01T10:00:00\\u005a\"", "\"bad\\n\""] {
            assert_eq!(ours(json), chrono_deserialize(json), "{json}");
        }
    }

    #[test]
    fn every_minute_offset_and_many_days_agree() {
        // A sweep: every day of 2023–2025 at a few clock times and offsets.
        let mut day = NaiveDate::from_ymd_opt(2023, 1, 1).unwrap();
        while day.year() < 2026 {
            for (i, off) in ["Z", "+00:00", "+05:45", "-09:30", "+14:00", "-12:00"].iter().enumerate() {
                let s = format!("{}T{:02}:{:02}:{:02}.{:0w$}{off}", day.format("%Y-%m-%d"), (i * 7) % 24, (i * 13) % 60, (i * 29) % 60, i * 7, w = i + 1);
                let t = parse_common(s.as_bytes()).unwrap_or_else(|| panic!("{s}"));
                assert_eq!(DateTime::parse_from_rfc3339(&s).unwrap().with_timezone(&Utc), t, "{s}");
            }
            day = day.succ_opt().unwrap();
        }
    }
}
