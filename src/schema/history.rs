//! A server's schema history: every change of its served tool list, newest first, each with
//! the structural diff from the list before it (the same diff the `schema.changed` event
//! carried) and, for a return to a list served earlier, which list it reverted.

use serde_json::Value;

use super::{SchemaDiff, diff};

/// One change: at `at`, the served list became `hash` (from `previous`, none for the first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub at: i64,
    pub previous: Option<String>,
    pub hash: String,
}

/// A change with what it changed.
#[derive(Debug, Clone)]
pub struct Entry {
    pub change: Change,
    /// The diff from the previous list; `None` for the first list (or an unknown previous).
    pub diff: Option<SchemaDiff>,
    /// For a return to a list served before: the list it went back from.
    pub reverts: Option<String>,
}

/// The history of `changes` (newest first); `tools_of` gives a hash's canonical tool list.
pub fn history<'a>(
    changes: &[Change],
    tools_of: impl Fn(&str) -> Option<&'a [Value]>,
) -> Vec<Entry> {
    changes
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let diff = c
                .previous
                .as_deref()
                .and_then(|prev| Some(diff(tools_of(prev)?, tools_of(&c.hash)?)));
            let served_before = changes[i + 1..].iter().any(|older| older.hash == c.hash);
            Entry {
                change: c.clone(),
                diff,
                reverts: c.previous.clone().filter(|_| served_before),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_return_to_an_earlier_list_is_a_change_that_reverts() {
        let a = [json!({"name": "echo", "inputSchema": {"type": "object"}})];
        let b = [json!({"name": "add", "inputSchema": {"type": "object"}})];
        let change = |at, previous: Option<&str>, hash: &str| Change {
            at,
            previous: previous.map(String::from),
            hash: hash.into(),
        };
        // Newest first: A -> B -> A -> B.
        let changes = [
            change(4, Some("A"), "B"),
            change(3, Some("B"), "A"),
            change(2, Some("A"), "B"),
            change(1, None, "A"),
        ];
        let h = history(&changes, |hash| match hash {
            "A" => Some(&a[..]),
            "B" => Some(&b[..]),
            _ => None,
        });
        assert_eq!(h.len(), 4);
        let reverts: Vec<Option<&str>> = h.iter().map(|e| e.reverts.as_deref()).collect();
        assert_eq!(reverts, vec![Some("A"), Some("B"), None, None]);
        assert!(
            h[3].diff.is_none(),
            "the first list has nothing to diff against"
        );
        assert_eq!(h[1].diff.as_ref().unwrap().removed, vec!["add".to_string()]);
        assert!(h[1].diff.as_ref().unwrap().breaking);
    }
}
