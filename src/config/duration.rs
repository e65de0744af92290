//! Go `time.ParseDuration` and `Duration.String()`, so `dns=1h30m` and the "started" lines read as in NodePass.

use std::time::Duration;

const NS_MAX: u64 = 1 << 63;

/// Parse a Go duration (`300ms`, `1h30m`, `1.5s`, `-2m`, `0`) into signed nanoseconds, as
/// Go's `time.ParseDuration` does; `None` for bad syntax, an unknown unit or overflow.
pub fn parse_go_duration(text: &str) -> Option<i64> {
    let (negative, mut s) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if s == "0" {
        return Some(0);
    }
    if s.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    while !s.is_empty() {
        let (value, rest) = parse_component(s)?;
        s = rest;
        total = total.checked_add(value).filter(|t| *t <= NS_MAX)?;
    }
    if negative {
        // total <= 2^63, so the negation fits in i64.
        Some((-(i128::from(total))) as i64)
    } else {
        i64::try_from(total).ok()
    }
}

/// A positive Go duration, or `None` when `text` is invalid, zero or negative.
pub fn positive_go_duration(text: &str) -> Option<Duration> {
    parse_go_duration(text)
        .filter(|n| *n > 0)
        .map(|n| Duration::from_nanos(n.unsigned_abs()))
}

/// One `<number>[.<fraction>]<unit>` component: its nanoseconds and the text after it.
fn parse_component(s: &str) -> Option<(u64, &str)> {
    let first = *s.as_bytes().first()?;
    if first != b'.' && !first.is_ascii_digit() {
        return None;
    }
    let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
    let mut whole: u64 = 0;
    for b in s[..int_len].bytes() {
        whole = whole
            .checked_mul(10)?
            .checked_add(u64::from(b - b'0'))
            .filter(|v| *v <= NS_MAX)?;
    }
    let mut rest = &s[int_len..];
    let (mut fraction, mut scale, mut frac_len) = (0u64, 1f64, 0usize);
    if let Some(after_dot) = rest.strip_prefix('.') {
        frac_len = after_dot.bytes().take_while(u8::is_ascii_digit).count();
        let mut overflowed = false;
        for b in after_dot[..frac_len].bytes() {
            // Like Go: digits past the precision limit are consumed but ignored.
            match fraction.checked_mul(10).map(|v| v + u64::from(b - b'0')) {
                Some(v) if !overflowed && v <= NS_MAX => {
                    fraction = v;
                    scale *= 10.0;
                }
                _ => overflowed = true,
            }
        }
        rest = &after_dot[frac_len..];
    }
    if int_len == 0 && frac_len == 0 {
        return None;
    }
    let unit_len = rest
        .find(|c: char| c == '.' || c.is_ascii_digit())
        .unwrap_or(rest.len());
    let unit = unit_nanos(&rest[..unit_len])?;
    let mut nanos = whole.checked_mul(unit).filter(|v| *v <= NS_MAX)?;
    if fraction > 0 {
        // Go computes the fractional part in float64 the same way.
        let extra = (fraction as f64 * (unit as f64 / scale)) as u64;
        nanos = nanos.checked_add(extra).filter(|v| *v <= NS_MAX)?;
    }
    Some((nanos, &rest[unit_len..]))
}

fn unit_nanos(unit: &str) -> Option<u64> {
    Some(match unit {
        "ns" => 1,
        "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return None,
    })
}

/// Render like Go's `Duration.String()`: `0s`, `300ms`, `1.5s`, `5m0s`, `1h0m0s`, `2µs`.
pub fn format_go_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_string();
    }
    if nanos < 1_000_000_000 {
        let (unit, precision) = match nanos {
            n if n < 1_000 => ("ns", 0),
            n if n < 1_000_000 => ("\u{b5}s", 3),
            _ => ("ms", 6),
        };
        let (whole, fraction) = split_fraction(nanos, precision);
        return format!("{whole}{fraction}{unit}");
    }
    let (secs, fraction) = split_fraction(nanos, 9);
    let (mins, hours) = (secs / 60, secs / 3600);
    match (hours, mins) {
        (0, 0) => format!("{secs}{fraction}s"),
        (0, _) => format!("{mins}m{}{fraction}s", secs % 60),
        _ => format!("{hours}h{}m{}{fraction}s", mins % 60, secs % 60),
    }
}

/// `value / 10^precision` and its fraction as `.ddd` without trailing zeros ("" when zero).
fn split_fraction(value: u128, precision: usize) -> (u128, String) {
    let scale = 10u128.pow(precision as u32);
    let (whole, rem) = (value / scale, value % scale);
    if rem == 0 {
        return (whole, String::new());
    }
    let digits = format!("{rem:0precision$}");
    (whole, format!(".{}", digits.trim_end_matches('0')))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 1_000_000;
    const SEC: i64 = 1_000 * MS;

    #[test]
    fn go_duration_syntax_parses_like_go() {
        let table: &[(&str, Option<i64>)] = &[
            ("0", Some(0)),
            ("-0", Some(0)),
            ("5m", Some(300 * SEC)),
            ("300ms", Some(300 * MS)),
            ("1h30m", Some(5400 * SEC)),
            ("1.5s", Some(1500 * MS)),
            (".5s", Some(500 * MS)),
            ("1.s", Some(SEC)),
            ("+2s", Some(2 * SEC)),
            ("-2s", Some(-2 * SEC)),
            ("10us", Some(10_000)),
            ("10\u{b5}s", Some(10_000)),
            ("10\u{3bc}s", Some(10_000)),
            ("7ns", Some(7)),
            ("1h1m1s1ms1us1ns", Some(3661 * SEC + MS + 1_000 + 1)),
            ("2562047h47m16.854775807s", Some(i64::MAX)),
            ("-2562047h47m16.854775808s", Some(i64::MIN)),
            ("2562047h47m16.854775808s", None),
            ("9999999999h", None),
            ("", None),
            ("-", None),
            ("5", None),
            ("s", None),
            (".s", None),
            ("1.5", None),
            ("3d", None),
            ("1 s", None),
            ("abc", None),
            ("1.5.5s", None),
        ];
        for (text, want) in table {
            assert_eq!(parse_go_duration(text), *want, "parsing {text:?}");
        }
    }

    #[test]
    fn only_positive_durations_count_as_set() {
        assert_eq!(positive_go_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(positive_go_duration("0s"), None);
        assert_eq!(positive_go_duration("-1s"), None);
        assert_eq!(positive_go_duration("junk"), None);
    }

    #[test]
    fn durations_print_like_go_duration_string() {
        let table: &[(Duration, &str)] = &[
            (Duration::ZERO, "0s"),
            (Duration::from_nanos(1), "1ns"),
            (Duration::from_nanos(1_100), "1.1\u{b5}s"),
            (Duration::from_micros(2), "2\u{b5}s"),
            (Duration::from_millis(300), "300ms"),
            (Duration::from_nanos(1_234_567), "1.234567ms"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_secs(5), "5s"),
            (Duration::from_secs(300), "5m0s"),
            (Duration::from_millis(90_500), "1m30.5s"),
            (Duration::from_secs(3600), "1h0m0s"),
            (Duration::from_secs(5400), "1h30m0s"),
            (Duration::from_secs(100 * 3600 + 61), "100h1m1s"),
        ];
        for (d, want) in table {
            assert_eq!(format_go_duration(*d), *want, "formatting {d:?}");
        }
    }

    #[test]
    fn printed_durations_parse_back_to_the_same_value() {
        for nanos in [
            1u64,
            999,
            1_500,
            2_000_000,
            1_500_000_000,
            5_400_000_000_000,
        ] {
            let d = Duration::from_nanos(nanos);
            assert_eq!(positive_go_duration(&format_go_duration(d)), Some(d));
        }
    }
}
