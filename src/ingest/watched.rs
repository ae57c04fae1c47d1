//! What the ingest keeps of each server's settings between results: only what deciding,
//! routing and alerts read. It is held for every server the replica decides, so its size is
//! per-server memory (issue 12: 2 KiB a server in all): a whole [`ServerRecord`] is about
//! 460 bytes before its strings; this is 64 with two allocations.

use crate::alert::Scoped;
use crate::probe::Era;
use crate::store::ServerRecord;

/// A server's settings as the ingest keeps them: 64 bytes (it was 120) and two allocations,
/// so that with its monitor a cached server fits a 192-byte allocation.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Watched {
    pub id: Box<str>,
    /// The slug, the name and the URL as shown (credentials in it appear as `***`), one after
    /// the other: one allocation where three strings took three.
    text: Box<str>,
    slug_len: u32,
    name_len: u32,
    /// Tags and probing regions; `None` when it has neither (most servers).
    grouping: Option<Box<Grouping>>,
    pub interval_seconds: u32,
    /// Regions down needed for the server to be down; `None`: a majority (the API allows 1
    /// to 32).
    pub quorum: Option<u8>,
    /// 16 bits (the API allows far less).
    pub failures_to_down: u16,
    pub successes_to_up: u16,
    /// The last era found (what the scheduler tries first).
    pub era_hint: Option<Era>,
    pub paused: bool,
    pub expect_auth: bool,
    /// Probe credentials (headers or an OAuth identity) are configured.
    pub has_credentials: bool,
    /// The settings changed: reload them before the next use. Only the settings: the monitor
    /// may hold this batch's decisions, not committed yet, and reloading its state from the
    /// database would decide them again (a second "first" tool list, a second `server.up`).
    /// Kept here, not beside, because here it fits in room the other fields leave.
    pub stale: bool,
}

/// A server's tags and the regions that probe it.
#[derive(Debug, Clone, PartialEq)]
struct Grouping {
    tags: Box<[String]>,
    /// Empty: every region.
    regions: Box<[String]>,
}

impl From<ServerRecord> for Watched {
    fn from(s: ServerRecord) -> Self {
        let has_credentials = s.has_credentials();
        let grouping = (!s.tags.is_empty() || !s.regions.is_empty()).then(|| {
            Box::new(Grouping {
                tags: s.tags.into(),
                regions: s.regions.into(),
            })
        });
        Watched {
            has_credentials,
            era_hint: s.era_hint.as_deref().and_then(|e| e.parse().ok()),
            // Lengths past 4 GiB cannot come through the API (a request body is at most
            // 16 MiB).
            slug_len: s.slug.len() as u32,
            name_len: s.name.len() as u32,
            text: [s.slug, s.name, s.url].concat().into(),
            id: s.id.into(),
            grouping,
            quorum: s.quorum.map(|q| u8::try_from(q).unwrap_or(u8::MAX)),
            interval_seconds: s.interval_seconds,
            failures_to_down: u16::try_from(s.failures_to_down).unwrap_or(u16::MAX),
            successes_to_up: u16::try_from(s.successes_to_up).unwrap_or(u16::MAX),
            paused: s.paused,
            expect_auth: s.expect_auth,
            stale: false,
        }
    }
}

impl Watched {
    pub fn slug(&self) -> &str {
        &self.text[..self.slug_len as usize]
    }

    pub fn name(&self) -> &str {
        &self.text[self.slug_len as usize..][..self.name_len as usize]
    }

    /// The URL as shown (credentials in it appear as `***`), for alerts.
    pub fn url(&self) -> &str {
        &self.text[(self.slug_len + self.name_len) as usize..]
    }

    /// Regions that probe it; empty: every region.
    pub fn regions(&self) -> &[String] {
        self.grouping.as_ref().map_or(&[], |g| &g.regions)
    }

    /// The server as events and alerts show it.
    pub fn event_json(&self) -> serde_json::Value {
        crate::store::server_event_json(&self.id, self.slug(), self.name(), self.url())
    }
}

impl Scoped for Watched {
    fn id(&self) -> &str {
        &self.id
    }
    fn tags(&self) -> &[String] {
        self.grouping.as_ref().map_or(&[], |g| &g.tags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_what_deciding_and_alerts_read_in_a_quarter_of_a_record() {
        let record: ServerRecord = serde_json::from_value(serde_json::json!({
            "id": "0193a0b0-0000-7000-8000-000000000001", "slug": "docs", "name": "Docs",
            "url": "https://x.example/mcp?key=***", "header_names": ["Authorization"],
            "interval_seconds": 60, "timeout_seconds": 10, "tags": ["prod"], "public": true,
            "paused": false, "failures_to_down": 3, "successes_to_up": 2,
            "degraded_latency_ms": null, "expect_auth": true, "era_hint": "streamable_http",
            "created_at": 1, "updated_at": 2, "regions": ["eu", "us"], "quorum": 2
        }))
        .unwrap();
        let event_json = record.event_json();
        let w = Watched::from(record);
        assert_eq!(w.event_json(), event_json);
        assert!(w.has_credentials && w.expect_auth && !w.paused);
        assert_eq!(w.era_hint, Some(Era::StreamableHttp));
        assert_eq!(
            (w.failures_to_down, w.successes_to_up, w.quorum),
            (3, 2, Some(2))
        );
        assert_eq!(w.regions(), ["eu", "us"]);
        assert_eq!(
            (w.slug(), w.name(), w.url()),
            ("docs", "Docs", "https://x.example/mcp?key=***")
        );
        assert!(crate::alert::maintenance::covers(&[], &["prod".into()], &w));
        let (compact, whole) = (size_of::<Watched>(), size_of::<ServerRecord>());
        assert!(
            compact <= 64 && compact * 6 <= whole,
            "{compact} bytes against {whole}"
        );
    }
}
