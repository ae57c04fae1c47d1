//! What the ingest keeps of each server's settings between results: only what deciding,
//! routing and alerts read. It is held for every server the replica decides, so its size is
//! per-server memory (issue 12: 2 KiB a server in all): a whole [`ServerRecord`] is about
//! 460 bytes before its strings; this is about 130.

use crate::alert::Scoped;
use crate::probe::Era;
use crate::store::ServerRecord;

/// A server's settings as the ingest keeps them.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Watched {
    pub id: Box<str>,
    pub slug: Box<str>,
    pub name: Box<str>,
    /// The URL as shown (credentials in it appear as `***`), for alerts.
    pub url: Box<str>,
    pub tags: Box<[String]>,
    /// Regions that probe it; empty: every region.
    pub regions: Box<[String]>,
    /// Regions down needed for the server to be down; `None`: a majority.
    pub quorum: Option<u32>,
    pub interval_seconds: u32,
    pub failures_to_down: u32,
    pub successes_to_up: u32,
    /// The last era found (what the scheduler tries first).
    pub era_hint: Option<Era>,
    pub paused: bool,
    pub expect_auth: bool,
    /// Probe credentials (headers or an OAuth identity) are configured.
    pub has_credentials: bool,
}

impl From<ServerRecord> for Watched {
    fn from(s: ServerRecord) -> Self {
        Watched {
            has_credentials: s.has_credentials(),
            era_hint: s.era_hint.as_deref().and_then(|e| e.parse().ok()),
            id: s.id.into(),
            slug: s.slug.into(),
            name: s.name.into(),
            url: s.url.into(),
            tags: s.tags.into(),
            regions: s.regions.into(),
            quorum: s.quorum,
            interval_seconds: s.interval_seconds,
            failures_to_down: s.failures_to_down,
            successes_to_up: s.successes_to_up,
            paused: s.paused,
            expect_auth: s.expect_auth,
        }
    }
}

impl Watched {
    /// The server as events and alerts show it.
    pub fn event_json(&self) -> serde_json::Value {
        crate::store::server_event_json(&self.id, &self.slug, &self.name, &self.url)
    }
}

impl Scoped for Watched {
    fn id(&self) -> &str {
        &self.id
    }
    fn tags(&self) -> &[String] {
        &self.tags
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
        assert_eq!(&*w.regions, ["eu", "us"]);
        assert!(crate::alert::maintenance::covers(&[], &["prod".into()], &w));
        let (compact, whole) = (size_of::<Watched>(), size_of::<ServerRecord>());
        assert!(compact * 3 <= whole, "{compact} bytes against {whole}");
    }
}
