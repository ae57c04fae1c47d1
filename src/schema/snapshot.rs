//! The snapshot file: a committed baseline of a server's tool list.
//!
//! Pretty-printed JSON so a change shows up readably in code review. The hash is recomputed on
//! load: a hand-edited file whose `schema_hash` no longer matches its tools is refused instead
//! of silently comparing against the wrong baseline.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::canonical::{CanonicalError, canonical_value, interface_hash, schema_hash};

/// Format version of the snapshot file.
pub const SNAPSHOT_FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Always 1 for now.
    pub format: u32,
    pub schema_hash: String,
    pub interface_hash: String,
    /// Where it was taken (redacted URL), for humans.
    pub url: String,
    /// RFC 3339.
    pub taken_at: String,
    pub protocol_version: Option<String>,
    pub server_version: Option<String>,
    /// Canonical tool list: sorted by name, JCS number forms.
    pub tools: Vec<Value>,
    /// The server's resources, resource templates and prompts, by kind (absent in files
    /// from before they were listed: then only the tools are compared).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub contract: BTreeMap<String, ListSnapshot>,
}

/// One listed kind in a snapshot: its hash and items (as served).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListSnapshot {
    pub hash: String,
    pub items: Vec<Value>,
}

/// The member that names an item of a listed kind.
pub fn list_key(kind: &str) -> &'static str {
    match kind {
        "resources" => "uri",
        "resource_templates" => "uriTemplate",
        _ => "name",
    }
}

/// Each kind whose list moved from `base` to `live`, with its diff (a kind no longer listed
/// counts as all its items removed). Empty when `base` has no lists (an older file).
pub fn contract_drift(base: &Snapshot, live: &Snapshot) -> Vec<(String, super::ListDiff)> {
    if base.contract.is_empty() {
        return Vec::new();
    }
    let mut kinds: Vec<&String> = base.contract.keys().chain(live.contract.keys()).collect();
    kinds.sort();
    kinds.dedup();
    kinds
        .into_iter()
        .filter_map(|kind| {
            let (b, l) = (base.contract.get(kind), live.contract.get(kind));
            if b.map(|x| &x.hash) == l.map(|x| &x.hash) {
                return None;
            }
            let (b, l) = (
                b.map(|s| s.items.as_slice()).unwrap_or_default(),
                l.map(|s| s.items.as_slice()).unwrap_or_default(),
            );
            let d = super::diff_lists(list_key(kind), b, l);
            Some((kind.clone(), d))
        })
        .collect()
}

/// Reading or writing a snapshot file failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// The file could not be read or written.
    #[error("cannot {action} snapshot file {path}: {source}")]
    Io {
        action: &'static str,
        path: String,
        source: std::io::Error,
    },
    /// The file is not a snapshot (bad JSON or missing fields).
    #[error("{path} is not an mcpwatch snapshot: {reason}")]
    Invalid { path: String, reason: String },
    /// The file's tools do not hash to its `schema_hash`.
    #[error(
        "{path}: schema_hash {stated} does not match its tools ({actual}); re-create it with `mcpwatch snapshot`"
    )]
    HashMismatch {
        path: String,
        stated: String,
        actual: String,
    },
    /// A listed kind's items do not hash to its `hash`.
    #[error(
        "{path}: the {kind} hash {stated} does not match its items ({actual}); re-create it with `mcpwatch snapshot`"
    )]
    ListHashMismatch {
        path: String,
        kind: String,
        stated: String,
        actual: String,
    },
    /// The tool list could not be canonicalized.
    #[error(transparent)]
    Canonical(#[from] CanonicalError),
}

impl Snapshot {
    /// Build a snapshot from a live tool list.
    pub fn from_tools(
        tools: &[Value],
        url: &str,
        taken_at: &str,
        protocol_version: Option<String>,
        server_version: Option<String>,
    ) -> Result<Self, CanonicalError> {
        let canonical = canonical_value(tools)?;
        Ok(Snapshot {
            format: SNAPSHOT_FORMAT,
            schema_hash: schema_hash(tools)?,
            interface_hash: interface_hash(tools)?,
            url: url.to_string(),
            taken_at: taken_at.to_string(),
            protocol_version,
            server_version,
            tools: canonical.as_array().cloned().unwrap_or_default(),
            contract: BTreeMap::new(),
        })
    }

    /// Pretty JSON with a trailing newline.
    pub fn to_pretty_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_else(|_| "{}".to_string());
        s.push('\n');
        s
    }

    pub fn write(&self, path: &Path) -> Result<(), SnapshotError> {
        std::fs::write(path, self.to_pretty_json()).map_err(|source| SnapshotError::Io {
            action: "write",
            path: path.display().to_string(),
            source,
        })
    }

    pub fn read(path: &Path) -> Result<Self, SnapshotError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| SnapshotError::Io {
            action: "read",
            path: shown.clone(),
            source,
        })?;
        let snap: Snapshot = serde_json::from_str(&text).map_err(|e| SnapshotError::Invalid {
            path: shown.clone(),
            reason: e.to_string(),
        })?;
        if snap.format != SNAPSHOT_FORMAT {
            return Err(SnapshotError::Invalid {
                path: shown,
                reason: format!(
                    "format {} is not supported (expected {SNAPSHOT_FORMAT})",
                    snap.format
                ),
            });
        }
        let actual = schema_hash(&snap.tools)?;
        if actual != snap.schema_hash {
            return Err(SnapshotError::HashMismatch {
                path: shown,
                stated: snap.schema_hash,
                actual,
            });
        }
        for (kind, list) in &snap.contract {
            let actual = super::list_hash(&list.items, list_key(kind))?;
            if actual != list.hash {
                return Err(SnapshotError::ListHashMismatch {
                    path: shown,
                    kind: kind.clone(),
                    stated: list.hash.clone(),
                    actual,
                });
            }
        }
        Ok(snap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trips_and_detects_tampering() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("snap.json");
        let tools = vec![
            json!({"name": "b", "inputSchema": {}}),
            json!({"name": "a", "inputSchema": {}}),
        ];
        let snap = Snapshot::from_tools(&tools, "http://x/mcp", "2026-01-01T00:00:00Z", None, None)
            .unwrap();
        assert_eq!(snap.tools[0]["name"], "a");
        snap.write(&path).unwrap();
        assert_eq!(Snapshot::read(&path).unwrap(), snap);

        let tampered = std::fs::read_to_string(&path)
            .unwrap()
            .replace("\"b\"", "\"c\"");
        std::fs::write(&path, tampered).unwrap();
        let err = Snapshot::read(&path).unwrap_err().to_string();
        assert!(err.contains("does not match its tools"), "{err}");

        std::fs::write(&path, "not json").unwrap();
        let err = Snapshot::read(&path).unwrap_err().to_string();
        assert!(err.contains("is not an mcpwatch snapshot"), "{err}");
        let err = Snapshot::read(&dir.path().join("missing.json"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("cannot read snapshot file"), "{err}");
    }
}
