//! Canonical tool lists and their identities.
//!
//! `schema_hash = "sha256:" + hex(SHA-256(JCS(tools sorted by name)))`, where JCS is RFC 8785:
//! key order, whitespace and number spelling no longer depend on the server's serializer, so
//! one server seen through two eras (or two serializers) has one hash. A second identity,
//! `interface_hash`, covers only each tool's name and input schema: a description edit moves
//! the first hash but not the second.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// A tool list that cannot be canonicalized (a tool without a string name).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum CanonicalError {
    /// An item of the list is not an object with a string `name`.
    #[error("tool #{index} has no string 'name'")]
    Unnamed { index: usize },
    /// RFC 8785 serialization failed (a number JSON cannot carry).
    #[error("tool list cannot be serialized canonically: {0}")]
    Jcs(String),
}

/// Tools sorted by name (the server's order is not part of a tool list's identity).
pub fn sorted_tools(tools: &[Value]) -> Result<Vec<Value>, CanonicalError> {
    let mut named = Vec::with_capacity(tools.len());
    for (index, tool) in tools.iter().enumerate() {
        let name = tool
            .get("name")
            .and_then(Value::as_str)
            .ok_or(CanonicalError::Unnamed { index })?;
        named.push((name.to_string(), tool.clone()));
    }
    named.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(named.into_iter().map(|(_, tool)| tool).collect())
}

/// RFC 8785 bytes of the tools sorted by name.
pub fn canonical_bytes(tools: &[Value]) -> Result<Vec<u8>, CanonicalError> {
    let sorted = sorted_tools(tools)?;
    serde_jcs::to_vec(&sorted).map_err(|e| CanonicalError::Jcs(e.to_string()))
}

/// `sha256:<hex>` of the canonical tool list.
pub fn schema_hash(tools: &[Value]) -> Result<String, CanonicalError> {
    Ok(sha256_tagged(&canonical_bytes(tools)?))
}

/// `sha256:<hex>` over each tool's `name` and `inputSchema` only.
pub fn interface_hash(tools: &[Value]) -> Result<String, CanonicalError> {
    let reduced: Vec<Value> = tools
        .iter()
        .map(|t| {
            serde_json::json!({
                "name": t.get("name").cloned().unwrap_or(Value::Null),
                "inputSchema": t.get("inputSchema").cloned().unwrap_or(Value::Null),
            })
        })
        .collect();
    schema_hash(&reduced)
}

/// The canonical tool list as a JSON value (sorted, and with JCS number forms), for snapshots.
pub fn canonical_value(tools: &[Value]) -> Result<Value, CanonicalError> {
    let bytes = canonical_bytes(tools)?;
    serde_json::from_slice(&bytes).map_err(|e| CanonicalError::Jcs(e.to_string()))
}

/// `sha256:<hex>` of a resource, template or prompt list: RFC 8785 over the items sorted by
/// their `key` member (`uri`, `uriTemplate`, `name`), as tools are by name.
pub fn list_hash(items: &[Value], key: &str) -> Result<String, CanonicalError> {
    let mut keyed = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let k = item
            .get(key)
            .and_then(Value::as_str)
            .ok_or(CanonicalError::Unnamed { index })?;
        keyed.push((k, item));
    }
    keyed.sort_by(|a, b| a.0.cmp(b.0));
    let sorted: Vec<&Value> = keyed.into_iter().map(|(_, item)| item).collect();
    let bytes = serde_jcs::to_vec(&sorted).map_err(|e| CanonicalError::Jcs(e.to_string()))?;
    Ok(sha256_tagged(&bytes))
}

fn sha256_tagged(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for b in digest {
        out.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
        out.push(char::from_digit(u32::from(b & 0xf), 16).unwrap_or('0'));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn tools_a() -> Vec<Value> {
        serde_json::from_str(
            r#"[{"name":"echo","description":"Echo","inputSchema":{"type":"object","properties":{"msg":{"type":"string","maxLength":1e2}},"required":["msg"]}},
                {"name":"add","inputSchema":{"type":"object","properties":{"a":{"type":"number","minimum":0.0}}}}]"#,
        )
        .unwrap()
    }

    fn tools_b() -> Vec<Value> {
        // Same content: other tool order, other key order, other number spellings.
        serde_json::from_str(
            r#"[{"inputSchema":{"properties":{"a":{"minimum":0,"type":"number"}},"type":"object"},"name":"add"},
                {"inputSchema":{"required":["msg"],"properties":{"msg":{"maxLength":100,"type":"string"}},"type":"object"},"description":"Echo","name":"echo"}]"#,
        )
        .unwrap()
    }

    #[test]
    fn key_order_tool_order_and_number_spelling_do_not_move_the_hash() {
        assert_eq!(
            schema_hash(&tools_a()).unwrap(),
            schema_hash(&tools_b()).unwrap()
        );
        let canonical = String::from_utf8(canonical_bytes(&tools_a()).unwrap()).unwrap();
        assert!(
            canonical.starts_with(r#"[{"inputSchema":{"properties":{"a":{"minimum":0,"#),
            "{canonical}"
        );
        assert!(canonical.contains(r#""maxLength":100"#), "{canonical}");
    }

    #[test]
    fn hash_has_the_documented_shape_and_known_value() {
        let h = schema_hash(&[json!({"name": "a", "inputSchema": {"type": "object"}})]).unwrap();
        // sha256 of `[{"inputSchema":{"type":"object"},"name":"a"}]`
        let expected = sha256_tagged(br#"[{"inputSchema":{"type":"object"},"name":"a"}]"#);
        assert_eq!(h, expected);
        assert!(h.starts_with("sha256:") && h.len() == 71, "{h}");
    }

    #[test]
    fn description_edit_moves_schema_hash_but_not_interface_hash() {
        let mut edited = tools_a();
        edited[0]["description"] = json!("Echo, louder");
        assert_ne!(
            schema_hash(&edited).unwrap(),
            schema_hash(&tools_a()).unwrap()
        );
        assert_eq!(
            interface_hash(&edited).unwrap(),
            interface_hash(&tools_a()).unwrap()
        );
        let mut retyped = tools_a();
        retyped[1]["inputSchema"]["properties"]["a"]["type"] = json!("integer");
        assert_ne!(
            interface_hash(&retyped).unwrap(),
            interface_hash(&tools_a()).unwrap()
        );
    }

    #[test]
    fn unnamed_tool_is_an_error() {
        let err = schema_hash(&[json!({"inputSchema": {}})]).unwrap_err();
        assert_eq!(err, CanonicalError::Unnamed { index: 0 });
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i32>().prop_map(|n| json!(n)),
            (-1.0e6f64..1.0e6).prop_map(|f| json!(f)),
            "[a-zé\u{1F600} ]{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map("[a-zA-Z_é]{1,6}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Reverse the key order of every object, recursively.
    fn reorder(v: &Value) -> Value {
        match v {
            Value::Object(m) => Value::Object(
                m.iter()
                    .rev()
                    .map(|(k, v)| (k.clone(), reorder(v)))
                    .collect(),
            ),
            Value::Array(a) => Value::Array(a.iter().map(reorder).collect()),
            other => other.clone(),
        }
    }

    proptest! {
        /// Reordering keys and tools never changes the hash; re-parsing canonical output is a
        /// fixed point.
        #[test]
        fn canonicalization_is_order_independent(
            schemas in proptest::collection::vec(arb_json(), 1..5)
        ) {
            let tools: Vec<Value> = schemas
                .iter()
                .enumerate()
                .map(|(i, s)| json!({"name": format!("t{i}"), "inputSchema": s, "x": i}))
                .collect();
            let mut shuffled: Vec<Value> = tools.iter().map(reorder).collect();
            shuffled.reverse();
            prop_assert_eq!(schema_hash(&tools).unwrap(), schema_hash(&shuffled).unwrap());
            let canon = canonical_value(&tools).unwrap();
            let again = canonical_bytes(canon.as_array().unwrap()).unwrap();
            prop_assert_eq!(again, canonical_bytes(&tools).unwrap());
        }
    }
}
