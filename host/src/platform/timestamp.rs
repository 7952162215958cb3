//! RFC 3339 timestamps and Unix milliseconds, both ways: catch-up asks
//! GitHub for runs created since a time (`created=>=2024-05-01T12:00:00Z`)
//! and reads when GitHub runs and GitLab jobs finished (`updated_at`,
//! `finished_at`). Only the forms these APIs use are read: a date, `T` (or
//! a space), a time with optional fractional seconds, then `Z` or an
//! offset `±HH:MM`. Written by hand rather than by a date crate: this is
//! all guard needs of dates, and the civil-calendar arithmetic is Howard
//! Hinnant's well-known `days_from_civil` / `civil_from_days`.

const MS_PER_DAY: i64 = 86_400_000;

/// `ms` (since the Unix epoch) as `YYYY-MM-DDTHH:MM:SSZ`, to the second.
pub fn rfc3339(ms: u64) -> String {
    let ms = i64::try_from(ms).unwrap_or(i64::MAX);
    let days = ms.div_euclid(MS_PER_DAY);
    let secs = ms.rem_euclid(MS_PER_DAY) / 1000;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Milliseconds since the Unix epoch of an RFC 3339 timestamp
/// (`2015-12-24T17:54:31.198Z`, `2024-05-01T14:00:00+02:00`); `None` when
/// it is not one, or is before 1970.
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let b = s.trim().as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let digits = b.get(from..from + len)?;
        if !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        digits
            .iter()
            .try_fold(0i64, |n, d| Some(n * 10 + i64::from(d - b'0')))
    };
    let sep = |at: usize, allowed: &str| b.get(at).is_some_and(|c| allowed.as_bytes().contains(c));
    if !(sep(4, "-") && sep(7, "-") && sep(10, "Tt ") && sep(13, ":") && sep(16, ":")) {
        return None;
    }
    let (y, mo, d) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (h, mi, sec) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    // 60 is a leap second; it reads as the next second's start.
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 60
    {
        return None;
    }
    let mut i = 19;
    let mut millis = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            // Digits past the third are below a millisecond: skipped.
            if i - start < 3 {
                millis = millis * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        if i == start {
            return None;
        }
        for _ in (i - start)..3 {
            millis *= 10;
        }
    }
    let offset_min = match *b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if i + 6 == b.len() && sep(i + 3, ":") => {
            let (oh, om) = (num(i + 1, 2)?, num(i + 4, 2)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let m = oh * 60 + om;
            if sign == b'-' { -m } else { m }
        }
        _ => return None,
    };
    let local = days_from_civil(y, mo, d) * MS_PER_DAY + ((h * 60 + mi) * 60 + sec) * 1000 + millis;
    u64::try_from(local - offset_min * 60_000).ok()
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date `days` after 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants_format_and_parse() {
        for (ms, text) in [
            (0, "1970-01-01T00:00:00Z"),
            (1_700_000_000_000, "2023-11-14T22:13:20Z"),
            (1_709_164_800_000, "2024-02-29T00:00:00Z"),
            (951_782_400_000, "2000-02-29T00:00:00Z"),
            (4_107_542_399_000, "2100-02-28T23:59:59Z"),
        ] {
            assert_eq!(rfc3339(ms), text);
            assert_eq!(parse_rfc3339(text), Some(ms), "{text}");
        }
        // Milliseconds are dropped when written.
        assert_eq!(rfc3339(1_700_000_000_999), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn fractions_and_offsets_as_gitlab_and_github_send_them() {
        let at = 1_700_000_000_000;
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20.198Z"), Some(at + 198));
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20.1Z"), Some(at + 100));
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20.123456Z"), Some(at + 123));
        assert_eq!(parse_rfc3339("2023-11-14T23:13:20+01:00"), Some(at));
        assert_eq!(parse_rfc3339("2023-11-14T17:13:20.000-05:00"), Some(at));
        assert_eq!(parse_rfc3339("2023-11-14 22:13:20Z"), Some(at));
        // Every day of a few years round-trips.
        for day in 0..(366 * 4) {
            let ms = 1_600_000_000_000 + day * MS_PER_DAY as u64;
            assert_eq!(parse_rfc3339(&rfc3339(ms)), Some(ms - ms % 1000));
        }
    }

    #[test]
    fn what_is_not_a_timestamp_is_none() {
        for bad in [
            "",
            "2023-11-14",
            "2023-11-14T22:13:20",
            "2023-13-14T22:13:20Z",
            "2023-02-29T00:00:00Z",
            "2023-11-14T24:00:00Z",
            "2023-11-14T22:13:20.Z",
            "2023-11-14T22:13:20+0100",
            "2023-11-14T22:13:20Zjunk",
            "1969-12-31T23:59:59Z",
            "２０２３-11-14T22:13:20Z",
            "+2023-11-14T22:13:20Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad:?}");
        }
    }
}
