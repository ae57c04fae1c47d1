//! The ingest's overflow to disk: results that do not fit in its in-memory queue (the
//! database is away, or writes fall behind) are written here instead of making the probes
//! wait, so probing never stops. Results come back oldest first once the queue has room.
//!
//! Order is kept per server because nothing enters the queue while anything is here (the
//! `spilling` flag, set and cleared under the same lock as every write and read), and the
//! ingest reads this only when its queue is empty.
//!
//! On disk: segment files of JSON lines (`00000000000000000007-812.jsonl`: sequence and
//! result count), written atomically (temp file, then rename) once the open segment reaches
//! [`SEGMENT_BYTES`]; tool lists once per schema hash in `tools/` (a fleet mostly serves lists
//! it served before, so a result costs its report only: about a kilobyte). Past `max_bytes`
//! the oldest segment is dropped, counted and logged. What is here when the daemon stops is
//! read back at the next start (the store refuses result ids it has, so nothing counts twice).
//! Hand-written rather than a queue crate: it must keep tool lists apart and share the
//! ingest's lock discipline.

use std::collections::{HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::mpsc;

use super::{IngestClosed, IngestItem, Msg};
use crate::probe::ProbeReport;

/// A segment is written to disk when its open buffer reaches this size.
pub const SEGMENT_BYTES: usize = 1 << 20;
/// The smallest bound accepted: a few segments.
pub const MIN_BYTES: u64 = 16 << 20;

/// A spill failure (the folder cannot be used).
#[derive(Debug, thiserror::Error)]
#[error("result spill {path}: {reason}")]
pub struct SpillError {
    path: String,
    reason: String,
}

fn io_error(path: &Path, e: impl std::fmt::Display) -> SpillError {
    SpillError {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// One result as spilled: the ingest item, its tool list by reference.
#[derive(Serialize, Deserialize)]
struct Spilled {
    id: String,
    server_id: String,
    region: String,
    started_at: i64,
    vantage_unhealthy: bool,
    report: ProbeReport,
    /// The tool list, kept inline only when it has no schema hash (else in `tools/`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    tools: Vec<Value>,
}

#[derive(Debug)]
struct Segment {
    count: usize,
    bytes: u64,
    path: PathBuf,
}

#[derive(Default)]
struct Inner {
    /// Results are here (or on their way): new ones must come here too, not to the queue.
    spilling: bool,
    /// Written segments, oldest first.
    segments: VecDeque<Segment>,
    /// The segment being filled, in memory.
    open: Vec<u8>,
    open_count: usize,
    next_seq: u64,
    /// Bytes of written segments and tool lists.
    disk_bytes: u64,
    /// Schema hashes whose tool list is in `tools/`.
    tool_lists: HashSet<String>,
}

pub struct Spill {
    dir: PathBuf,
    max_bytes: u64,
    inner: Mutex<Inner>,
    /// Results dropped: past the bound (oldest first), or unreadable.
    pub dropped: AtomicU64,
}

fn parse_name(name: &str) -> Option<(u64, usize)> {
    let (seq, count) = name.strip_suffix(".jsonl")?.split_once('-')?;
    Some((seq.parse().ok()?, count.parse().ok()?))
}

/// The file of a schema hash's tool list (`sha256:ab…` → `tools/ab….json`); `None` for a
/// hash that is not plain hex, which is then kept inline.
fn tools_file(dir: &Path, hash: &str) -> Option<PathBuf> {
    let hex = hash.strip_prefix("sha256:")?;
    let plain = !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit());
    plain.then(|| dir.join("tools").join(format!("{hex}.json")))
}

impl Spill {
    /// Open (creating) the folder, picking up what an earlier run left.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Self, SpillError> {
        std::fs::create_dir_all(dir.join("tools")).map_err(|e| io_error(dir, e))?;
        let mut inner = Inner::default();
        for f in std::fs::read_dir(dir).map_err(|e| io_error(dir, e))? {
            let f = f.map_err(|e| io_error(dir, e))?;
            let name = f.file_name().to_string_lossy().to_string();
            if name.ends_with(".tmp") {
                // Cut short by a crash: never renamed, so never counted as spilled.
                let _ = std::fs::remove_file(f.path());
            } else if let Some((seq, count)) = parse_name(&name) {
                let bytes = f.metadata().map(|m| m.len()).unwrap_or(0);
                inner.segments.push_back(Segment {
                    count,
                    bytes,
                    path: f.path(),
                });
                inner.next_seq = inner.next_seq.max(seq + 1);
                inner.disk_bytes += bytes;
            }
        }
        inner
            .segments
            .make_contiguous()
            .sort_by_key(|s| s.path.clone());
        for f in std::fs::read_dir(dir.join("tools")).map_err(|e| io_error(dir, e))? {
            let f = f.map_err(|e| io_error(dir, e))?;
            let name = f.file_name().to_string_lossy().to_string();
            if name.ends_with(".tmp") {
                let _ = std::fs::remove_file(f.path());
            } else if let Some(hex) = name.strip_suffix(".json") {
                inner.tool_lists.insert(format!("sha256:{hex}"));
                inner.disk_bytes += f.metadata().map(|m| m.len()).unwrap_or(0);
            }
        }
        // Left tool lists alone are removed at the first take.
        inner.spilling = !inner.segments.is_empty() || !inner.tool_lists.is_empty();
        if inner.spilling {
            let held: usize = inner.segments.iter().map(|s| s.count).sum();
            tracing::warn!(results = held, dir = %dir.display(), "results spilled by an earlier run: storing them first");
        }
        Ok(Spill {
            dir: dir.to_path_buf(),
            max_bytes: max_bytes.max(MIN_BYTES),
            inner: Mutex::new(inner),
            dropped: AtomicU64::new(0),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queue `item`, or spill it when the queue is full or results are spilled already.
    pub(super) fn submit(
        &self,
        tx: &mpsc::Sender<Msg>,
        item: Box<IngestItem>,
    ) -> Result<(), IngestClosed> {
        let mut inner = self.lock();
        if !inner.spilling {
            match tx.try_send(Msg::Result(item)) {
                Ok(()) => return Ok(()),
                Err(mpsc::error::TrySendError::Closed(_)) => return Err(IngestClosed),
                Err(mpsc::error::TrySendError::Full(Msg::Result(item))) => {
                    inner.spilling = true;
                    tracing::warn!("ingest queue full: spilling results to disk");
                    self.write(&mut inner, &item);
                }
                Err(mpsc::error::TrySendError::Full(_)) => unreachable!("sent a result"),
            }
        } else {
            self.write(&mut inner, &item);
        }
        Ok(())
    }

    /// Spill `item` whatever the queue holds (shutdown: a result the database did not take).
    pub(super) fn keep(&self, item: &IngestItem) {
        let mut inner = self.lock();
        inner.spilling = true;
        self.write(&mut inner, item);
    }

    fn write(&self, inner: &mut Inner, item: &IngestItem) {
        let mut spilled = Spilled {
            id: item.result_id.clone(),
            server_id: item.server_id.clone(),
            region: item.region.clone(),
            started_at: item.started_at,
            vantage_unhealthy: item.vantage_unhealthy,
            report: item.report.clone(),
            tools: Vec::new(),
        };
        if !item.report.tools.is_empty() && !self.keep_tool_list(inner, &item.report) {
            spilled.tools = item.report.tools.clone();
        }
        let line = match serde_json::to_vec(&spilled) {
            Ok(line) => line,
            Err(e) => return self.lost(1, &e.to_string()),
        };
        inner.open.extend_from_slice(&line);
        inner.open.push(b'\n');
        inner.open_count += 1;
        if inner.open.len() >= SEGMENT_BYTES {
            self.seal(inner);
        }
        self.enforce_bound(inner);
    }

    /// Write the report's tool list to `tools/` once per hash; false if it must stay inline.
    fn keep_tool_list(&self, inner: &mut Inner, report: &ProbeReport) -> bool {
        let Some(hash) = report.schema_hash.as_ref() else {
            return false;
        };
        if inner.tool_lists.contains(hash) {
            return true;
        }
        let Some(path) = tools_file(&self.dir, hash) else {
            return false;
        };
        let Ok(body) = serde_json::to_vec(&report.tools) else {
            return false;
        };
        if atomic_write(&path, &body).is_err() {
            return false;
        }
        inner.disk_bytes += body.len() as u64;
        inner.tool_lists.insert(hash.clone());
        true
    }

    /// Write the open segment to disk.
    fn seal(&self, inner: &mut Inner) {
        if inner.open_count == 0 {
            return;
        }
        let path = self
            .dir
            .join(format!("{:020}-{}.jsonl", inner.next_seq, inner.open_count));
        let body = std::mem::take(&mut inner.open);
        let count = std::mem::take(&mut inner.open_count);
        inner.next_seq += 1;
        match atomic_write(&path, &body) {
            Ok(()) => {
                inner.disk_bytes += body.len() as u64;
                inner.segments.push_back(Segment {
                    count,
                    bytes: body.len() as u64,
                    path,
                });
            }
            Err(e) => self.lost(count, &e.reason),
        }
    }

    /// Past the bound, drop the oldest segments.
    fn enforce_bound(&self, inner: &mut Inner) {
        while inner.disk_bytes + inner.open.len() as u64 > self.max_bytes {
            let Some(oldest) = inner.segments.pop_front() else {
                break;
            };
            let _ = std::fs::remove_file(&oldest.path);
            inner.disk_bytes = inner.disk_bytes.saturating_sub(oldest.bytes);
            self.lost(oldest.count, "the spill is full (oldest dropped first)");
        }
    }

    fn lost(&self, count: usize, why: &str) {
        self.dropped.fetch_add(count as u64, Ordering::Relaxed);
        tracing::error!(results = count, reason = why, dir = %self.dir.display(), "spilled results dropped");
    }

    /// The oldest spilled results, a segment at a time; empty only when none are left, and
    /// then new results go to the queue again.
    pub(super) fn take(&self) -> Vec<IngestItem> {
        loop {
            let mut inner = self.lock();
            let body = if let Some(oldest) = inner.segments.pop_front() {
                inner.disk_bytes = inner.disk_bytes.saturating_sub(oldest.bytes);
                let body = std::fs::read(&oldest.path);
                let _ = std::fs::remove_file(&oldest.path);
                match body {
                    Ok(body) => body,
                    Err(e) => {
                        self.lost(oldest.count, &e.to_string());
                        continue;
                    }
                }
            } else if inner.open_count > 0 {
                inner.open_count = 0;
                std::mem::take(&mut inner.open)
            } else {
                self.drained(&mut inner);
                return Vec::new();
            };
            drop(inner);
            let items = self.decode(&body);
            if !items.is_empty() {
                return items;
            }
        }
    }

    /// Nothing is left: results go to the queue again, and the tool lists are removed.
    fn drained(&self, inner: &mut Inner) {
        if !inner.spilling {
            return;
        }
        inner.spilling = false;
        for hash in inner.tool_lists.drain() {
            if let Some(path) = tools_file(&self.dir, &hash) {
                let _ = std::fs::remove_file(path);
            }
        }
        inner.disk_bytes = 0;
        tracing::info!("spilled results all taken back");
    }

    fn decode(&self, body: &[u8]) -> Vec<IngestItem> {
        let mut items = Vec::new();
        let mut tool_lists: std::collections::HashMap<String, Vec<Value>> = Default::default();
        for line in body.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let Ok(spilled) = serde_json::from_slice::<Spilled>(line) else {
                self.lost(1, "an unreadable line");
                continue;
            };
            let mut report = spilled.report;
            report.tools = spilled.tools;
            if report.tools.is_empty() && report.tools_count > 0 {
                report.tools = self.tool_list(&mut tool_lists, report.schema_hash.as_deref());
                if report.tools.is_empty() {
                    // Without its list the result would read as a server serving no tools:
                    // a false schema change. Dropped, and said.
                    self.lost(1, "its tool list is missing from tools/");
                    continue;
                }
            }
            items.push(IngestItem {
                result_id: spilled.id,
                server_id: spilled.server_id,
                region: spilled.region,
                started_at: spilled.started_at,
                report,
                vantage_unhealthy: spilled.vantage_unhealthy,
            });
        }
        items
    }

    /// A tool list from `tools/`, read once per segment.
    fn tool_list(
        &self,
        read: &mut std::collections::HashMap<String, Vec<Value>>,
        hash: Option<&str>,
    ) -> Vec<Value> {
        let Some(hash) = hash else {
            return Vec::new();
        };
        if let Some(tools) = read.get(hash) {
            return tools.clone();
        }
        let tools = tools_file(&self.dir, hash)
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|body| serde_json::from_slice::<Vec<Value>>(&body).ok())
            .unwrap_or_default();
        read.insert(hash.to_string(), tools.clone());
        tools
    }

    /// Write the open segment to disk (at shutdown, for the next start).
    pub(super) fn persist(&self) {
        let mut inner = self.lock();
        self.seal(&mut inner);
    }

    /// Results spilled and not yet taken back.
    pub fn len(&self) -> usize {
        let inner = self.lock();
        inner.segments.iter().map(|s| s.count).sum::<usize>() + inner.open_count
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes spilled (disk and the open segment) and the bound.
    pub fn usage(&self) -> (u64, u64) {
        let inner = self.lock();
        (inner.disk_bytes + inner.open.len() as u64, self.max_bytes)
    }
}

/// Write a file whole or not at all.
fn atomic_write(path: &Path, body: &[u8]) -> Result<(), SpillError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, body).map_err(|e| io_error(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io_error(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn item(i: usize, hash: &str) -> IngestItem {
        let mut report = ProbeReport::new("http://x/mcp".into(), "2026-01-01T00:00:00Z".into());
        report.tools = vec![json!({"name": "a", "inputSchema": {"type": "object"}})];
        report.tools_count = 1;
        report.schema_hash = Some(hash.to_string());
        IngestItem {
            result_id: format!("r{i}"),
            server_id: format!("s{}", i % 3),
            region: "local".into(),
            started_at: i as i64,
            report,
            vantage_unhealthy: false,
        }
    }

    fn ids(items: &[IngestItem]) -> Vec<String> {
        items.iter().map(|i| i.result_id.clone()).collect()
    }

    #[test]
    fn past_a_full_queue_results_spill_and_come_back_in_order_with_their_tools() {
        let dir = tempfile::tempdir().unwrap();
        let spill = Spill::open(dir.path(), MIN_BYTES).unwrap();
        let (tx, mut rx) = mpsc::channel(1);
        for i in 0..4 {
            spill.submit(&tx, Box::new(item(i, "sha256:ab"))).unwrap();
        }
        assert!(matches!(rx.try_recv(), Ok(Msg::Result(i)) if i.result_id == "r0"));
        assert_eq!(spill.len(), 3);
        // The queue has room again, but results keep coming here until the spill is empty.
        spill.submit(&tx, Box::new(item(4, "sha256:ab"))).unwrap();
        assert!(rx.try_recv().is_err());
        let back = spill.take();
        assert_eq!(ids(&back), ["r1", "r2", "r3", "r4"]);
        assert_eq!(back[2].report.tools, item(0, "").report.tools);
        assert_eq!(back[2].report.schema_hash.as_deref(), Some("sha256:ab"));
        assert!(spill.take().is_empty());
        spill.submit(&tx, Box::new(item(5, "sha256:ab"))).unwrap();
        assert!(matches!(rx.try_recv(), Ok(Msg::Result(i)) if i.result_id == "r5"));
        let left: Vec<_> = std::fs::read_dir(dir.path().join("tools"))
            .unwrap()
            .collect();
        assert!(left.is_empty(), "tool lists removed once drained");
    }

    #[test]
    fn a_tool_list_is_written_once_per_hash_and_segments_go_to_disk() {
        let dir = tempfile::tempdir().unwrap();
        let spill = Spill::open(dir.path(), MIN_BYTES).unwrap();
        let (tx, _rx) = mpsc::channel(1);
        let n = 3_000;
        for i in 0..n {
            spill.submit(&tx, Box::new(item(i, "sha256:cd"))).unwrap();
        }
        let tool_files = std::fs::read_dir(dir.path().join("tools")).unwrap().count();
        assert_eq!(tool_files, 1);
        let segments = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|f| {
                f.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".jsonl")
            })
            .count();
        assert!(
            segments >= 1,
            "past {SEGMENT_BYTES} bytes a segment is written"
        );
        let (bytes, _) = spill.usage();
        let per_result = bytes / (n as u64 - 1);
        assert!(per_result < 1_024, "{per_result} bytes per spilled result");
        let mut back = Vec::new();
        loop {
            let part = spill.take();
            if part.is_empty() {
                break;
            }
            back.extend(part);
        }
        assert_eq!(back.len(), n - 1);
        assert!(back.windows(2).all(|w| w[0].started_at < w[1].started_at));
    }

    #[test]
    fn past_the_bound_the_oldest_are_dropped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let spill = Spill::open(dir.path(), MIN_BYTES).unwrap();
        let (tx, _rx) = mpsc::channel(1);
        let big = |i| {
            let mut it = item(i, "sha256:ef");
            it.report.notes = vec!["x".repeat(64 * 1024)];
            it
        };
        let n = 400; // ~25 MiB of results into 16 MiB
        for i in 0..n {
            spill.submit(&tx, Box::new(big(i))).unwrap();
        }
        let dropped = spill.dropped.load(Ordering::Relaxed) as usize;
        assert!(dropped > 0);
        assert_eq!(spill.len() + dropped, n - 1, "every result kept or counted");
        assert!(spill.usage().0 <= MIN_BYTES);
        let first = spill.take();
        assert_eq!(
            first[0].result_id,
            format!("r{}", dropped + 1),
            "the oldest went first"
        );
    }

    #[test]
    fn what_is_spilled_at_a_stop_comes_back_at_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        {
            let spill = Spill::open(dir.path(), MIN_BYTES).unwrap();
            let (tx, _rx) = mpsc::channel(1);
            for i in 0..3 {
                spill.submit(&tx, Box::new(item(i, "sha256:ab"))).unwrap();
            }
            spill.keep(&item(7, "sha256:ab"));
            spill.persist();
        }
        let spill = Spill::open(dir.path(), MIN_BYTES).unwrap();
        let (tx, mut rx) = mpsc::channel(10);
        // Spilled results first: a new one waits behind them.
        spill.submit(&tx, Box::new(item(8, "sha256:ab"))).unwrap();
        assert!(rx.try_recv().is_err());
        assert_eq!(ids(&spill.take()), ["r1", "r2", "r7"]);
        assert_eq!(ids(&spill.take()), ["r8"]);
        assert!(spill.take().is_empty());
    }

    #[test]
    fn a_result_whose_tool_list_is_lost_is_dropped_not_read_as_toolless() {
        let dir = tempfile::tempdir().unwrap();
        let spill = Spill::open(dir.path(), MIN_BYTES).unwrap();
        let (tx, _rx) = mpsc::channel(1);
        spill.submit(&tx, Box::new(item(0, "sha256:ab"))).unwrap();
        spill.submit(&tx, Box::new(item(1, "sha256:ab"))).unwrap();
        std::fs::remove_file(dir.path().join("tools/ab.json")).unwrap();
        assert!(spill.take().is_empty());
        assert_eq!(spill.dropped.load(Ordering::Relaxed), 1);
    }
}
