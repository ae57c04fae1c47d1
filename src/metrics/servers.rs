//! The per-server series, kept compactly and written straight to the text format.
//!
//! The `prometheus` crate keeps each labelled child as its own object (label pairs as
//! strings, an atomic, a hash entry): about 500 bytes a series, 2.5 KiB a server at five
//! series, half the daemon's heap at 20,000 servers (heaptrack, `benches/fleet`). Here a
//! server is one table entry of plain numbers (about 150 bytes with its slug), and the
//! samples are written at scrape time. Hand-written because the crate has no compact vector.
//!
//! A scrape is written a chunk of servers at a time ([`ServerSeries::render_next`]): the text
//! of 100,000 servers is about 20 MB, and written whole it raised the daemon's RSS by 60 MB
//! at each scrape and held the table's lock (which every probe's result takes) meanwhile.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::ops::Bound;
use std::sync::{Arc, Mutex};

use crate::monitor::ServerStatus;

/// What one region saw at its last probe of a server. Packed into 48 bytes (it was 72): one
/// for each server and region, and a server's are one allocation, so the size class counts.
#[derive(Debug, Clone, Default)]
struct RegionValues {
    region: Arc<str>,
    /// `notAfter` of the TLS certificate, unix seconds (`None` for plain HTTP; a certificate
    /// ending at the epoch itself would read as none).
    tls_not_after: Option<std::num::NonZeroI64>,
    /// The last probe's synthetic tool calls (`None` for most servers: no allocation). A box
    /// around the vector is one pointer, where a vector takes 24 bytes and a boxed slice 16.
    #[allow(clippy::box_collection)]
    calls: Option<Box<Vec<CallValues>>>,
    /// In microseconds (saturating at about 71 minutes, past any probe's timeout); written
    /// as seconds by one division, which prints as short as the seconds it came from.
    duration_us: u32,
    /// Tools of the last probe that listed them (meaningful when `listed`).
    tools: u32,
    listed: bool,
    success: bool,
}

impl RegionValues {
    fn tools(&self) -> Option<u32> {
        self.listed.then_some(self.tools)
    }

    fn calls(&self) -> &[CallValues] {
        self.calls.as_deref().map_or(&[], |c| c.as_slice())
    }
}

/// Seconds as whole microseconds, saturating.
fn micros(seconds: f64) -> u32 {
    (seconds * 1e6).round().clamp(0.0, f64::from(u32::MAX)) as u32
}

/// One synthetic tool call of the last probe.
#[derive(Debug, Clone)]
struct CallValues {
    tool: Box<str>,
    success: bool,
    /// `None` when it was not called (refused, not listed) or did not answer.
    latency_seconds: Option<f64>,
}

#[derive(Debug, Default)]
struct ServerValues {
    status: Option<ServerStatus>,
    schema_changes: u64,
    /// Usually one; a boxed slice (no spare room, 8 bytes less than a vector in the table).
    regions: Box<[RegionValues]>,
}

/// Which per-server family.
#[derive(Clone, Copy)]
enum Kind {
    Success,
    Duration,
    Tools,
    Tls,
    Up,
    State,
    SchemaChanges,
    CallSuccess,
    CallDuration,
}

/// A family: kind, name, help, type.
struct Family(Kind, &'static str, &'static str, &'static str);

/// Every per-server family, in the order they are written.
const FAMILIES: [Family; 9] = [
    Family(
        Kind::Success,
        "mcpwatch_probe_success",
        "1 if the last probe was up or degraded, else 0",
        "gauge",
    ),
    Family(
        Kind::Duration,
        "mcpwatch_probe_duration_seconds",
        "Duration of the last probe",
        "gauge",
    ),
    Family(
        Kind::Tools,
        "mcpwatch_tools",
        "Tools listed by the last successful probe",
        "gauge",
    ),
    Family(
        Kind::Tls,
        "mcpwatch_tls_cert_expiry_timestamp_seconds",
        "notAfter of the server's TLS certificate",
        "gauge",
    ),
    Family(
        Kind::Up,
        "mcpwatch_server_up",
        "1 if the server is up or degraded, else 0",
        "gauge",
    ),
    Family(
        Kind::State,
        "mcpwatch_server_state",
        "1, labelled with the server's current state (one series per server)",
        "gauge",
    ),
    Family(
        Kind::SchemaChanges,
        "mcpwatch_schema_changes_total",
        "Schema changes seen",
        "counter",
    ),
    Family(
        Kind::CallSuccess,
        "mcpwatch_tool_call_success",
        "1 if the synthetic call of the tool met every expectation at the last probe, else 0",
        "gauge",
    ),
    Family(
        Kind::CallDuration,
        "mcpwatch_tool_call_duration_seconds",
        "How long the tool took to answer its synthetic call at the last probe",
        "gauge",
    ),
];

#[derive(Default)]
pub struct ServerSeries {
    /// By slug, ordered: a streamed scrape resumes after the last server it wrote.
    servers: Mutex<BTreeMap<Box<str>, ServerValues>>,
    /// Region names, shared by every server probed from them.
    regions: Mutex<Vec<Arc<str>>>,
}

impl ServerSeries {
    fn region(&self, name: &str) -> Arc<str> {
        let mut regions = self.regions.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(r) = regions.iter().find(|r| &***r == name) {
            return r.clone();
        }
        let r: Arc<str> = Arc::from(name);
        regions.push(r.clone());
        r
    }

    fn with<T>(&self, server: &str, f: impl FnOnce(&mut ServerValues) -> T) -> T {
        let mut servers = self.servers.lock().unwrap_or_else(|p| p.into_inner());
        match servers.get_mut(server) {
            Some(v) => f(v),
            None => f(servers.entry(server.into()).or_default()),
        }
    }

    /// A probe's outcome as seen from `region`.
    pub fn probed(
        &self,
        server: &str,
        region: &str,
        success: bool,
        duration_seconds: f64,
        tools: Option<u32>,
        tls_not_after: Option<i64>,
    ) {
        let region = self.region(region);
        self.with(server, |v| {
            let at = match v.regions.iter().position(|r| r.region == region) {
                Some(i) => i,
                None => {
                    // Exactly one more (a push into an empty vector makes room for four).
                    let mut regions = std::mem::take(&mut v.regions).into_vec();
                    regions.reserve_exact(1);
                    regions.push(RegionValues {
                        region,
                        ..RegionValues::default()
                    });
                    v.regions = regions.into_boxed_slice();
                    v.regions.len() - 1
                }
            };
            let r = &mut v.regions[at];
            r.success = success;
            r.duration_us = micros(duration_seconds);
            if let Some(tools) = tools {
                r.tools = tools;
                r.listed = true;
            }
            if let Some(t) = tls_not_after.and_then(std::num::NonZeroI64::new) {
                r.tls_not_after = Some(t);
            }
        });
    }

    /// The synthetic tool calls of a probe from `region` (replacing the last probe's).
    pub fn called(&self, server: &str, region: &str, calls: &[crate::probe::CallOutcome]) {
        let region = self.region(region);
        self.with(server, |v| {
            let Some(r) = v.regions.iter_mut().find(|r| r.region == region) else {
                return;
            };
            r.calls = (!calls.is_empty()).then(|| {
                Box::new(
                    calls
                        .iter()
                        .map(|c| CallValues {
                            tool: c.tool.as_str().into(),
                            success: c.called && c.failure.is_none(),
                            latency_seconds: c.latency_ms.map(|ms| ms / 1000.0),
                        })
                        .collect(),
                )
            });
        });
    }

    pub fn state(&self, server: &str, status: ServerStatus) {
        self.with(server, |v| v.status = Some(status));
    }

    pub fn schema_changed(&self, server: &str) {
        self.with(server, |v| v.schema_changes += 1);
    }

    pub fn forget(&self, server: &str) {
        let mut servers = self.servers.lock().unwrap_or_else(|p| p.into_inner());
        servers.remove(server);
    }

    pub fn family_names() -> impl Iterator<Item = String> {
        FAMILIES.iter().map(|f| f.1.to_string())
    }

    /// Append every family in the text exposition format.
    pub fn render(&self, out: &mut String) {
        let mut cursor = Cursor::default();
        while self.render_next(&mut cursor, out) {}
    }

    /// Append the next piece of the exposition (one family's samples of at most
    /// [`CHUNK_SERVERS`] servers, after its header if it starts there) and move `cursor` past
    /// it; false when everything was written. The lock is held for one piece: a server added
    /// meanwhile shows in the families not yet written, or at the next scrape.
    pub fn render_next(&self, cursor: &mut Cursor, out: &mut String) -> bool {
        let Some(family) = FAMILIES.get(cursor.family) else {
            return false;
        };
        if cursor.after.is_none() {
            let _ = writeln!(out, "# HELP {} {}", family.1, family.2);
            let _ = writeln!(out, "# TYPE {} {}", family.1, family.3);
        }
        let servers = self.servers.lock().unwrap_or_else(|p| p.into_inner());
        let from = match &cursor.after {
            Some(last) => Bound::Excluded(&**last),
            None => Bound::Unbounded,
        };
        let mut written = 0;
        let mut last = None;
        for (server, v) in servers
            .range::<str, _>((from, Bound::Unbounded))
            .take(CHUNK_SERVERS)
        {
            write_samples(out, family, server, v);
            written += 1;
            last = Some(server);
        }
        match last.filter(|_| written == CHUNK_SERVERS) {
            Some(last) => cursor.after = Some(last.clone()),
            None => {
                *cursor = Cursor {
                    family: cursor.family + 1,
                    after: None,
                }
            }
        }
        true
    }
}

/// Servers written per piece of a scrape: a piece of about 20 to 30 KB, made with room for
/// all of it, so each piece takes one block of one size that the allocator hands out again
/// for the next (pieces of a thousand servers grew by doubling to 128 KB through every size
/// on the way; right after a scrape at 100,000 servers the daemon read about 10 MB above its
/// level between scrapes).
pub const CHUNK_SERVERS: usize = 256;

/// Room made for one piece (most families' lines are 60 to 110 bytes).
pub const PIECE_BYTES: usize = 32 * 1024;

/// How far a scrape has written: the family, and the last server written in it.
#[derive(Debug, Default)]
pub struct Cursor {
    family: usize,
    after: Option<Box<str>>,
}

/// One server's samples of `family`.
fn write_samples(out: &mut String, family: &Family, server: &str, v: &ServerValues) {
    let name = family.1;
    let server = escape(server);
    let per_region = |out: &mut String, value: &dyn Fn(&RegionValues) -> Option<f64>| {
        for r in &v.regions {
            if let Some(x) = value(r) {
                let region = escape(&r.region);
                let _ = writeln!(out, "{name}{{server=\"{server}\",region=\"{region}\"}} {x}");
            }
        }
    };
    let per_call = |out: &mut String, value: &dyn Fn(&CallValues) -> Option<f64>| {
        for r in &v.regions {
            let region = escape(&r.region);
            for c in r.calls() {
                if let Some(x) = value(c) {
                    let tool = escape(&c.tool);
                    let _ = writeln!(
                        out,
                        "{name}{{server=\"{server}\",region=\"{region}\",tool=\"{tool}\"}} {x}"
                    );
                }
            }
        }
    };
    match family.0 {
        Kind::CallSuccess => per_call(out, &|c| Some(if c.success { 1.0 } else { 0.0 })),
        Kind::CallDuration => per_call(out, &|c| c.latency_seconds),
        Kind::Success => per_region(out, &|r| Some(if r.success { 1.0 } else { 0.0 })),
        Kind::Duration => per_region(out, &|r| Some(f64::from(r.duration_us) / 1e6)),
        Kind::Tools => per_region(out, &|r| r.tools().map(f64::from)),
        Kind::Tls => per_region(out, &|r| r.tls_not_after.map(|t| t.get() as f64)),
        Kind::Up => {
            if let Some(s) = v.status {
                let up = matches!(s, ServerStatus::Up | ServerStatus::Degraded);
                let _ = writeln!(out, "{name}{{server=\"{server}\"}} {}", u8::from(up));
            }
        }
        Kind::State => {
            // Only the current state has a series: alert rules match `{state="down"} == 1`,
            // which a vanished series resolves like a 0 would.
            if let Some(s) = v.status {
                let _ = writeln!(
                    out,
                    "{name}{{server=\"{server}\",state=\"{}\"}} 1",
                    s.as_str()
                );
            }
        }
        Kind::SchemaChanges => {
            if v.schema_changes > 0 {
                let _ = writeln!(out, "{name}{{server=\"{server}\"}} {}", v.schema_changes);
            }
        }
    }
}

/// A label value as the text format wants it (backslash, quote and newline escaped).
fn escape(value: &str) -> std::borrow::Cow<'_, str> {
    if !value.contains(['\\', '"', '\n']) {
        return value.into();
    }
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scrape_in_pieces_writes_every_server_once_and_each_header_once() {
        let s = ServerSeries::default();
        let n = 2 * CHUNK_SERVERS + 7;
        for i in 0..n {
            s.probed(&format!("s{i:05}"), "eu", true, 0.5, Some(2), None);
            s.state(&format!("s{i:05}"), ServerStatus::Up);
        }
        let mut cursor = Cursor::default();
        let mut pieces = Vec::new();
        let mut piece = String::new();
        while s.render_next(&mut cursor, &mut piece) {
            pieces.push(std::mem::take(&mut piece));
            if pieces.len() == 2 {
                // Added mid-scrape: after the cursor, so the families still to come have it.
                s.probed("s99999", "eu", true, 0.5, None, None);
            }
        }
        assert!(
            pieces
                .iter()
                .all(|p| p.lines().count() <= CHUNK_SERVERS + 2),
            "pieces of at most a chunk of servers"
        );
        let text = pieces.concat();
        for family in ["mcpwatch_probe_success", "mcpwatch_server_state"] {
            assert_eq!(text.matches(&format!("# TYPE {family} ")).count(), 1);
        }
        let successes = text
            .lines()
            .filter(|l| l.starts_with("mcpwatch_probe_success{"))
            .count();
        assert_eq!(successes, n + 1, "every server once, the late one included");
        let states = text
            .lines()
            .filter(|l| l.starts_with("mcpwatch_server_state{"))
            .count();
        assert_eq!(states, n, "the late server has no state yet");
        let mut whole = String::new();
        s.render(&mut whole);
        assert_eq!(whole, text, "render is the pieces together");
    }

    #[test]
    fn a_region_is_48_bytes_and_its_duration_prints_as_it_came() {
        assert!(std::mem::size_of::<RegionValues>() <= 48);
        let s = ServerSeries::default();
        s.probed("a", "eu", true, 0.0123, Some(0), None);
        let mut out = String::new();
        s.render(&mut out);
        for line in [
            r#"mcpwatch_probe_duration_seconds{server="a",region="eu"} 0.0123"#,
            r#"mcpwatch_tools{server="a",region="eu"} 0"#,
        ] {
            assert!(
                out.lines().any(|l| l == line),
                "{line} missing from:\n{out}"
            );
        }
        assert!(
            !out.contains("mcpwatch_tls_cert_expiry_timestamp_seconds{"),
            "no certificate, no sample: {out}"
        );
    }

    #[test]
    fn samples_are_written_as_the_text_format_wants_them() {
        let s = ServerSeries::default();
        s.probed("a\"b", "eu", true, 0.25, Some(3), None);
        s.probed("a\"b", "us", false, 1.5, None, Some(1_900_000_000));
        s.state("a\"b", ServerStatus::Down);
        s.schema_changed("a\"b");
        s.schema_changed("a\"b");
        let call = |tool: &str, latency_ms: Option<f64>, failure: Option<&str>| {
            crate::probe::CallOutcome {
                tool: tool.into(),
                called: latency_ms.is_some(),
                latency_ms,
                failure: failure.map(Into::into),
            }
        };
        s.called(
            "a\"b",
            "eu",
            &[
                call("get-sum", Some(250.0), None),
                call("slow", Some(1500.0), Some("over the bound")),
                call("write", None, Some("not called")),
            ],
        );
        let mut out = String::new();
        s.render(&mut out);
        for line in [
            r#"mcpwatch_probe_success{server="a\"b",region="eu"} 1"#,
            r#"mcpwatch_probe_success{server="a\"b",region="us"} 0"#,
            r#"mcpwatch_probe_duration_seconds{server="a\"b",region="us"} 1.5"#,
            r#"mcpwatch_tools{server="a\"b",region="eu"} 3"#,
            r#"mcpwatch_tls_cert_expiry_timestamp_seconds{server="a\"b",region="us"} 1900000000"#,
            r#"mcpwatch_server_up{server="a\"b"} 0"#,
            r#"mcpwatch_server_state{server="a\"b",state="down"} 1"#,
            r#"mcpwatch_schema_changes_total{server="a\"b"} 2"#,
            "# TYPE mcpwatch_schema_changes_total counter",
            r#"mcpwatch_tool_call_success{server="a\"b",region="eu",tool="get-sum"} 1"#,
            r#"mcpwatch_tool_call_success{server="a\"b",region="eu",tool="slow"} 0"#,
            r#"mcpwatch_tool_call_success{server="a\"b",region="eu",tool="write"} 0"#,
            r#"mcpwatch_tool_call_duration_seconds{server="a\"b",region="eu",tool="get-sum"} 0.25"#,
            r#"mcpwatch_tool_call_duration_seconds{server="a\"b",region="eu",tool="slow"} 1.5"#,
        ] {
            assert!(
                out.lines().any(|l| l == line),
                "{line} missing from:\n{out}"
            );
        }
        assert!(!out.contains(r#"mcpwatch_tools{server="a\"b",region="us"}"#));
        assert!(
            !out.contains(
                r#"mcpwatch_tool_call_duration_seconds{server="a\"b",region="eu",tool="write"}"#
            ),
            "a call never made has no duration"
        );
        s.called("a\"b", "eu", &[]);
        let mut after = String::new();
        s.render(&mut after);
        assert!(
            !after.contains("tool="),
            "calls removed from the server: {after}"
        );
        s.forget("a\"b");
        let mut out = String::new();
        s.render(&mut out);
        assert!(!out.contains("server="), "{out}");
    }
}
