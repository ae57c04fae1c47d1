//! Both identities of a tool list, remembered by what the list was as parsed.
//!
//! A server serves the same list probe after probe. RFC 8785 canonicalization (sorting the
//! tools, re-serializing every number and key) was a fifth of the daemon's CPU at scale
//! (`benches/fleet`), for answers that almost never change. A SHA-256 over the parsed list's
//! structure (every value tagged and length-prefixed, so two different lists never feed the
//! hasher the same bytes) costs a few microseconds and needs no allocation; a list seen
//! before by that digest gets its identities from here. Any difference at all (even key
//! order or the spelling of a number, which canonicalization would forgive) only misses the
//! memo: the identities are then computed the long way, so a hit can never be wrong.
//!
//! Hand-written rather than a caching crate: a bounded map cleared when full is all it needs.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::{Mutex, OnceLock};

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::canonical::{CanonicalError, interface_hash, schema_hash};

/// Lists remembered at most. Each takes about 150 bytes with its two identities; when full,
/// the memo starts over (a fleet with more distinct lists than this pays the full cost for
/// some of them, never a wrong answer).
const CAPACITY: usize = 65_536;

type Identities = (String, String);

fn memo() -> &'static Mutex<HashMap<[u8; 32], Identities>> {
    static MEMO: OnceLock<Mutex<HashMap<[u8; 32], Identities>>> = OnceLock::new();
    MEMO.get_or_init(Default::default)
}

/// `(schema_hash, interface_hash)` of `tools`, from the memo when this exact list was seen.
pub fn identities(tools: &[Value]) -> Result<Identities, CanonicalError> {
    let key = structural_digest(tools);
    if let Some(known) = memo().lock().ok().and_then(|m| m.get(&key).cloned()) {
        return Ok(known);
    }
    let computed = (schema_hash(tools)?, interface_hash(tools)?);
    if let Ok(mut m) = memo().lock() {
        if m.len() >= CAPACITY {
            m.clear();
        }
        m.insert(key, computed.clone());
    }
    Ok(computed)
}

/// SHA-256 over an unambiguous encoding of the list as parsed (order of keys included).
fn structural_digest(tools: &[Value]) -> [u8; 32] {
    let mut h = Sha256::new();
    feed_len(&mut h, b'a', tools.len());
    for tool in tools {
        feed(&mut h, tool);
    }
    h.finalize().into()
}

fn feed(h: &mut Sha256, v: &Value) {
    match v {
        Value::Null => h.update(b"n"),
        Value::Bool(b) => h.update(if *b { b"t" } else { b"f" }),
        Value::Number(n) => {
            // `Display` spells each number one way; the terminator ends it.
            h.update(b"N");
            let _ = write!(Hashing(h), "{n};");
        }
        Value::String(s) => feed_str(h, b's', s),
        Value::Array(items) => {
            feed_len(h, b'a', items.len());
            items.iter().for_each(|item| feed(h, item));
        }
        Value::Object(map) => {
            feed_len(h, b'o', map.len());
            for (k, v) in map {
                feed_str(h, b'k', k);
                feed(h, v);
            }
        }
    }
}

/// Formats straight into the hasher (no string allocated per number).
struct Hashing<'a>(&'a mut Sha256);

impl Write for Hashing<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.update(s.as_bytes());
        Ok(())
    }
}

fn feed_len(h: &mut Sha256, tag: u8, len: usize) {
    h.update([tag]);
    h.update((len as u64).to_le_bytes());
}

fn feed_str(h: &mut Sha256, tag: u8, s: &str) {
    feed_len(h, tag, s.len());
    h.update(s.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn list(description: &str) -> Vec<Value> {
        vec![json!({"name": "echo", "description": description,
            "inputSchema": {"type": "object", "properties": {"n": {"maximum": 10}}}})]
    }

    #[test]
    fn a_remembered_list_has_the_identities_computed_the_long_way() {
        for tools in [list("Echo"), list("Echo, louder"), vec![]] {
            let first = identities(&tools).unwrap();
            let again = identities(&tools).unwrap();
            let long_way = (
                schema_hash(&tools).unwrap(),
                interface_hash(&tools).unwrap(),
            );
            assert_eq!(first, long_way);
            assert_eq!(again, long_way);
        }
    }

    #[test]
    fn lists_that_differ_anywhere_have_different_digests() {
        let base = structural_digest(&list("Echo"));
        let variants = [
            list("Echo "),
            vec![json!({"name": "echo", "description": "Echo",
                "inputSchema": {"type": "object", "properties": {"n": {"maximum": 10.0}}}})],
            // The same strings split differently between key and value.
            vec![json!({"nameecho": "", "description": "Echo",
                "inputSchema": {"type": "object", "properties": {"n": {"maximum": 10}}}})],
            vec![json!({"name": "echo", "description": ["Echo"],
                "inputSchema": {"type": "object", "properties": {"n": {"maximum": 10}}}})],
            list("Echo").into_iter().chain(list("Echo")).collect(),
        ];
        for v in &variants {
            assert_ne!(structural_digest(v), base, "{v:?}");
        }
        assert_eq!(structural_digest(&list("Echo")), base);
    }

    #[test]
    fn an_unnamed_tool_is_still_an_error() {
        let tools = vec![json!({"inputSchema": {}})];
        assert_eq!(
            identities(&tools).unwrap_err(),
            CanonicalError::Unnamed { index: 0 }
        );
    }
}
