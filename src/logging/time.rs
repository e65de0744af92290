//! Wall-clock time for log lines: local calendar fields through libc (`sys::localtime`),
//! with a pure UTC fallback that the master also uses for its RFC 3339 event times.

use std::time::{SystemTime, UNIX_EPOCH};

/// A wall-clock instant broken into calendar fields (local time when printed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalTime {
    /// Full year, e.g. 2026.
    pub year: i32,
    /// 1..=12.
    pub month: u8,
    /// 1..=31.
    pub day: u8,
    /// 0..=23.
    pub hour: u8,
    /// 0..=59.
    pub minute: u8,
    /// 0..=60 (leap second).
    pub second: u8,
    /// 0..=999.
    pub millis: u16,
}

/// Now, in the process's time zone (UTC when the zone is unavailable).
pub(super) fn now_local() -> LocalTime {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX);
    let millis = since_epoch.subsec_millis() as u16;
    local_fields(secs)
        .map(|t| LocalTime { millis, ..t })
        .unwrap_or_else(|| LocalTime {
            millis,
            ..utc_fields(secs)
        })
}

/// Calendar fields of `secs` in the process's time zone (TZ, /etc/localtime), via libc.
fn local_fields(secs: i64) -> Option<LocalTime> {
    let tm = crate::sys::localtime(secs)?;
    Some(LocalTime {
        year: tm.tm_year + 1900,
        month: u8::try_from(tm.tm_mon + 1).ok()?,
        day: u8::try_from(tm.tm_mday).ok()?,
        hour: u8::try_from(tm.tm_hour).ok()?,
        minute: u8::try_from(tm.tm_min).ok()?,
        second: u8::try_from(tm.tm_sec).ok()?,
        millis: 0,
    })
}

/// UTC calendar fields of `secs` since the epoch (the fallback when the local zone is
/// unavailable; also the master's RFC 3339 event times).
pub fn utc_fields(secs: i64) -> LocalTime {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    LocalTime {
        year: year as i32,
        month: month as u8,
        day: day as u8,
        hour: (rem / 3600) as u8,
        minute: (rem % 3600 / 60) as u8,
        second: (rem % 60) as u8,
        millis: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_fallback_computes_the_calendar() {
        assert_eq!(
            utc_fields(0),
            LocalTime {
                year: 1970,
                month: 1,
                day: 1,
                hour: 0,
                minute: 0,
                second: 0,
                millis: 0
            }
        );
        // 2024-02-29 23:59:59 UTC (a leap day).
        let t = utc_fields(1_709_251_199);
        assert_eq!(
            (t.year, t.month, t.day, t.hour, t.minute, t.second),
            (2024, 2, 29, 23, 59, 59)
        );
        let t = utc_fields(-1);
        assert_eq!((t.year, t.month, t.day, t.hour), (1969, 12, 31, 23));
    }

    #[test]
    fn local_time_is_within_a_day_of_utc() {
        let secs = 1_767_312_000; // 2026-01-02 00:00:00 UTC
        let local = local_fields(secs).expect("localtime_r works");
        assert!(local.year == 2026 || local.year == 2025);
        assert!(local.month == 1 || local.month == 12);
        assert!((1..=31).contains(&local.day));
    }
}
