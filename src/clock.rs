//! Time: the [`Clock`] every time-based part is given (the system clock, or a manual one in
//! tests), and the helpers that turn Unix milliseconds into RFC 3339. Depends on nothing else
//! in the crate, so every module may use it.

use std::sync::Arc;

/// A clock returning Unix milliseconds (real, or manual in tests).
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The real clock.
pub fn system_clock() -> Clock {
    Arc::new(now_ms)
}

/// Now as Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Unix ms → RFC 3339 UTC with milliseconds.
pub fn rfc3339(ms: i64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}
