//! Maintenance windows: when a server's alerts are held.
//!
//! A window is one-off (`starts_at` … `ends_at`) or recurring (a standard 5-field crontab
//! expression — 0 and 7 are Sunday, no seconds field — plus a duration, in an IANA time zone,
//! so "Mondays 09:00 Europe/Berlin" stays 09:00 local across DST changes). During a window
//! probes run, results and state changes are recorded, events are written, but no alert is
//! sent; when it ends and the server's state differs from the one before it, one summary goes
//! out. This file is the pure part: schedules and which servers a window covers.

use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;

/// A window's schedule, parsed and validated.
#[derive(Debug, Clone)]
pub enum Schedule {
    Once {
        start_ms: i64,
        end_ms: i64,
    },
    Recurring {
        cron: Box<croner::Cron>,
        duration_ms: i64,
        tz: Tz,
    },
}

/// A schedule that does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ScheduleError {
    /// The crontab expression is not 5 valid fields.
    #[error("'{0}' is not a 5-field crontab expression (minute hour day month weekday): {1}")]
    Cron(String, String),
    /// The time zone is not in the IANA database.
    #[error("'{0}' is not an IANA time zone like Europe/Berlin")]
    TimeZone(String),
    /// Durations must be between 1 minute and 7 days.
    #[error("duration must be between 60 and 604800 seconds")]
    Duration,
    /// A one-off window must end after it starts.
    #[error("ends_at must be after starts_at")]
    Order,
}

impl Schedule {
    pub fn once(start_ms: i64, end_ms: i64) -> Result<Self, ScheduleError> {
        if end_ms <= start_ms {
            return Err(ScheduleError::Order);
        }
        Ok(Schedule::Once { start_ms, end_ms })
    }

    pub fn recurring(cron: &str, duration_seconds: i64, tz: &str) -> Result<Self, ScheduleError> {
        if cron.split_whitespace().count() != 5 {
            return Err(ScheduleError::Cron(
                cron.into(),
                "expected exactly 5 fields".into(),
            ));
        }
        let parsed = croner::Cron::from_str(cron)
            .map_err(|e| ScheduleError::Cron(cron.into(), e.to_string()))?;
        let tz = Tz::from_str(tz).map_err(|_| ScheduleError::TimeZone(tz.into()))?;
        if !(60..=7 * 86_400).contains(&duration_seconds) {
            return Err(ScheduleError::Duration);
        }
        Ok(Schedule::Recurring {
            cron: Box::new(parsed),
            duration_ms: duration_seconds * 1000,
            tz,
        })
    }

    /// The occurrence `[start, end)` covering `at` (Unix ms), if any.
    pub fn active_at(&self, at: i64) -> Option<(i64, i64)> {
        match self {
            Schedule::Once { start_ms, end_ms } => {
                (*start_ms <= at && at < *end_ms).then_some((*start_ms, *end_ms))
            }
            Schedule::Recurring {
                cron,
                duration_ms,
                tz,
            } => {
                let local: DateTime<Tz> = Utc.timestamp_millis_opt(at).single()?.with_timezone(tz);
                let start = cron
                    .find_previous_occurrence(&local, true)
                    .ok()?
                    .timestamp_millis();
                (at < start + duration_ms).then_some((start, start + duration_ms))
            }
        }
    }
}

impl Schedule {
    /// The next occurrence starting after `at`, for showing upcoming windows.
    pub fn next_after(&self, at: i64) -> Option<(i64, i64)> {
        match self {
            Schedule::Once { start_ms, end_ms } => (*start_ms > at).then_some((*start_ms, *end_ms)),
            Schedule::Recurring {
                cron,
                duration_ms,
                tz,
            } => {
                let local: DateTime<Tz> = Utc.timestamp_millis_opt(at).single()?.with_timezone(tz);
                let start = cron
                    .find_next_occurrence(&local, false)
                    .ok()?
                    .timestamp_millis();
                Some((start, start + duration_ms))
            }
        }
    }
}

/// The schedule of a stored window.
pub fn schedule_of(w: &crate::store::WindowRecord) -> Result<Schedule, ScheduleError> {
    match (&w.cron, w.starts_at, w.ends_at) {
        (Some(cron), _, _) => Schedule::recurring(
            cron,
            w.duration_seconds.unwrap_or(0),
            w.timezone.as_deref().unwrap_or("UTC"),
        ),
        (None, Some(start), Some(end)) => Schedule::once(start, end),
        _ => Err(ScheduleError::Order),
    }
}

/// Whether a window naming `server_ids` and `tags` covers `server` (both empty: every server).
pub fn covers<S: super::Scoped + ?Sized>(
    server_ids: &[String],
    tags: &[String],
    server: &S,
) -> bool {
    (server_ids.is_empty() && tags.is_empty()) || super::names_server(server_ids, tags, server)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(rfc3339: &str) -> i64 {
        DateTime::parse_from_rfc3339(rfc3339)
            .unwrap()
            .timestamp_millis()
    }

    #[test]
    fn one_off_windows_are_half_open() {
        let w = Schedule::once(ms("2027-01-01T10:00:00Z"), ms("2027-01-01T11:00:00Z")).unwrap();
        assert!(w.active_at(ms("2027-01-01T10:00:00Z")).is_some());
        assert!(w.active_at(ms("2027-01-01T10:59:59Z")).is_some());
        assert!(w.active_at(ms("2027-01-01T11:00:00Z")).is_none());
        assert_eq!(Schedule::once(5, 5).unwrap_err(), ScheduleError::Order);
    }

    #[test]
    fn recurring_windows_keep_local_time_across_dst() {
        // Mondays 09:00–10:00 in Berlin: 08:00Z in winter (UTC+1), 07:00Z in summer (UTC+2).
        let w = Schedule::recurring("0 9 * * 1", 3600, "Europe/Berlin").unwrap();
        // 2027-03-22 is the Monday before the change (2027-03-28), 2027-03-29 the one after.
        assert_eq!(
            w.active_at(ms("2027-03-22T08:30:00Z")),
            Some((ms("2027-03-22T08:00:00Z"), ms("2027-03-22T09:00:00Z")))
        );
        assert!(w.active_at(ms("2027-03-22T07:30:00Z")).is_none());
        assert_eq!(
            w.active_at(ms("2027-03-29T07:30:00Z")),
            Some((ms("2027-03-29T07:00:00Z"), ms("2027-03-29T08:00:00Z")))
        );
        assert!(
            w.active_at(ms("2027-03-29T08:30:00Z")).is_none(),
            "09:30 local is past the window"
        );
        // And back in autumn (change on 2027-10-31).
        assert_eq!(
            w.active_at(ms("2027-11-01T08:15:00Z")),
            Some((ms("2027-11-01T08:00:00Z"), ms("2027-11-01T09:00:00Z")))
        );
    }

    #[test]
    fn next_occurrences_are_after_now_in_local_time() {
        let w = Schedule::recurring("0 9 * * 1", 3600, "Europe/Berlin").unwrap();
        // From inside the 2027-03-22 window, the next one is the Monday after DST began.
        assert_eq!(
            w.next_after(ms("2027-03-22T08:30:00Z")),
            Some((ms("2027-03-29T07:00:00Z"), ms("2027-03-29T08:00:00Z")))
        );
        let once = Schedule::once(ms("2027-01-01T10:00:00Z"), ms("2027-01-01T11:00:00Z")).unwrap();
        assert!(once.next_after(ms("2027-01-01T09:00:00Z")).is_some());
        assert!(once.next_after(ms("2027-01-01T10:00:00Z")).is_none());
    }

    #[test]
    fn sunday_is_0_and_7_and_bad_input_is_named() {
        let zero = Schedule::recurring("0 3 * * 0", 600, "UTC").unwrap();
        let seven = Schedule::recurring("0 3 * * 7", 600, "UTC").unwrap();
        let sunday = ms("2027-01-03T03:05:00Z"); // a Sunday
        assert!(zero.active_at(sunday).is_some() && seven.active_at(sunday).is_some());
        assert!(
            zero.active_at(ms("2027-01-04T03:05:00Z")).is_none(),
            "not Monday"
        );
        assert!(
            matches!(
                Schedule::recurring("0 0 3 * * 0", 600, "UTC"),
                Err(ScheduleError::Cron(..))
            ),
            "no seconds field"
        );
        assert!(matches!(
            Schedule::recurring("61 * * * *", 600, "UTC"),
            Err(ScheduleError::Cron(..))
        ));
        assert_eq!(
            Schedule::recurring("0 3 * * *", 600, "Mars/Olympus").unwrap_err(),
            ScheduleError::TimeZone("Mars/Olympus".into())
        );
        assert_eq!(
            Schedule::recurring("0 3 * * *", 10, "UTC").unwrap_err(),
            ScheduleError::Duration
        );
    }
}
