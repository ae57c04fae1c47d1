//! The agent's on-disk result buffer: a folder of batch files named by a sequence number and
//! their result count (`00000000000000000042-17.json`), written atomically (temp file, then
//! rename), read and deleted oldest first. Past `max_results` the oldest batches are dropped
//! and counted, so an agent cut off for days keeps its newest results and a bounded disk.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::protocol::AgentResult;

/// A buffer failure (the folder cannot be written or read).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// The buffer folder or a batch file could not be used.
    #[error("result buffer {path}: {reason}")]
    Io { path: String, reason: String },
}

fn io(path: &Path, e: impl std::fmt::Display) -> QueueError {
    QueueError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// One stored batch.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    seq: u64,
    count: usize,
    path: PathBuf,
}

pub struct DiskQueue {
    dir: PathBuf,
    max_results: usize,
    /// Batches oldest first, and the next sequence number.
    state: Mutex<(Vec<Entry>, u64)>,
    /// Results dropped because the buffer was full.
    pub dropped: AtomicU64,
}

fn parse_name(name: &str) -> Option<(u64, usize)> {
    let stem = name.strip_suffix(".json")?;
    let (seq, count) = stem.split_once('-')?;
    Some((seq.parse().ok()?, count.parse().ok()?))
}

impl DiskQueue {
    /// Open (creating) the folder and pick up batches left by an earlier run.
    pub fn open(dir: &Path, max_results: usize) -> Result<Self, QueueError> {
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let mut entries = Vec::new();
        for f in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
            let f = f.map_err(|e| io(dir, e))?;
            let name = f.file_name().to_string_lossy().to_string();
            if name.ends_with(".tmp") {
                // A write cut short by a crash: never renamed, never acknowledged.
                let _ = std::fs::remove_file(f.path());
                continue;
            }
            if let Some((seq, count)) = parse_name(&name) {
                entries.push(Entry {
                    seq,
                    count,
                    path: f.path(),
                });
            }
        }
        entries.sort_by_key(|e| e.seq);
        let next = entries.last().map_or(0, |e| e.seq + 1);
        Ok(DiskQueue {
            dir: dir.to_path_buf(),
            max_results: max_results.max(1),
            state: Mutex::new((entries, next)),
            dropped: AtomicU64::new(0),
        })
    }

    /// Results waiting.
    pub fn len(&self) -> usize {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.0.iter().map(|e| e.count).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Store a batch; then drop the oldest batches while over the bound.
    pub fn push(&self, results: &[AgentResult]) -> Result<(), QueueError> {
        if results.is_empty() {
            return Ok(());
        }
        let body = serde_json::to_vec(results).map_err(|e| io(&self.dir, e))?;
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let seq = state.1;
        let path = self.dir.join(format!("{seq:020}-{}.json", results.len()));
        let tmp = self.dir.join(format!("{seq:020}.tmp"));
        std::fs::write(&tmp, &body).map_err(|e| io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| io(&path, e))?;
        state.1 += 1;
        state.0.push(Entry {
            seq,
            count: results.len(),
            path,
        });
        let mut total: usize = state.0.iter().map(|e| e.count).sum();
        while total > self.max_results && state.0.len() > 1 {
            let old = state.0.remove(0);
            let _ = std::fs::remove_file(&old.path);
            total -= old.count;
            self.dropped.fetch_add(old.count as u64, Ordering::Relaxed);
            tracing::warn!(
                dropped = old.count,
                buffered = total,
                "result buffer full: dropped the oldest batch"
            );
        }
        Ok(())
    }

    /// The oldest batch, without removing it: (its id, its results). A batch that no longer
    /// parses is dropped and counted.
    pub fn oldest(&self) -> Option<(u64, Vec<AgentResult>)> {
        loop {
            let entry = {
                let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
                state.0.first().cloned()?
            };
            match std::fs::read(&entry.path)
                .ok()
                .and_then(|b| serde_json::from_slice::<Vec<AgentResult>>(&b).ok())
            {
                Some(results) => return Some((entry.seq, results)),
                None => {
                    tracing::error!(path = %entry.path.display(), "unreadable result batch dropped");
                    self.dropped
                        .fetch_add(entry.count as u64, Ordering::Relaxed);
                    self.remove(entry.seq);
                }
            }
        }
    }

    /// Forget a batch the central acknowledged.
    pub fn remove(&self, seq: u64) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = state.0.iter().position(|e| e.seq == seq) {
            let e = state.0.remove(i);
            let _ = std::fs::remove_file(e.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::{ProbeReport, Verdict};

    fn result(n: usize) -> AgentResult {
        let mut report = ProbeReport::new(
            "https://x.example/mcp".into(),
            "2026-01-01T00:00:00Z".into(),
        );
        report.verdict = Verdict::Up;
        AgentResult {
            id: format!("00000000-0000-0000-0000-{n:012}"),
            server_id: "s".into(),
            started_at: n as i64,
            lag_ms: 0,
            vantage_unhealthy: false,
            report,
            tools: vec![],
        }
    }

    #[test]
    fn batches_come_back_in_order_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let q = DiskQueue::open(dir.path(), 100).unwrap();
        q.push(&[result(1), result(2)]).unwrap();
        q.push(&[result(3)]).unwrap();
        assert_eq!(q.len(), 3);
        drop(q);
        let q = DiskQueue::open(dir.path(), 100).unwrap();
        let (seq, first) = q.oldest().unwrap();
        assert_eq!(
            first.iter().map(|r| r.started_at).collect::<Vec<_>>(),
            vec![1, 2]
        );
        q.remove(seq);
        let (seq, next) = q.oldest().unwrap();
        assert_eq!(next[0].started_at, 3);
        q.remove(seq);
        assert!(q.oldest().is_none() && q.is_empty());
        q.push(&[result(4)]).unwrap();
        assert_eq!(q.oldest().unwrap().0, 2, "sequence numbers keep growing");
    }

    #[test]
    fn past_the_bound_the_oldest_go_first_and_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let q = DiskQueue::open(dir.path(), 4).unwrap();
        for i in 0..5 {
            q.push(&[result(2 * i), result(2 * i + 1)]).unwrap();
        }
        assert_eq!(q.len(), 4);
        assert_eq!(q.dropped.load(Ordering::Relaxed), 6);
        assert_eq!(q.oldest().unwrap().1[0].started_at, 6, "the newest survive");
        std::fs::write(dir.path().join("00000000000000000099.tmp"), b"half").unwrap();
        let q = DiskQueue::open(dir.path(), 4).unwrap();
        assert_eq!(q.len(), 4, "a torn write is discarded on open");
    }
}
