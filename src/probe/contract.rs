//! The rest of the contract: when the server advertises them, `resources/list`,
//! `resources/templates/list` and `prompts/list`, every page (the tool list's page cap and
//! cursor-cycle rule), each kind counted and hashed canonically (RFC 8785 over the items
//! sorted by their key, like the tools). The tools' hash is not touched.
//!
//! A broken list does not make the server down (its tools work): it is a warning naming the
//! list and what broke, so the probe is `degraded`.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::exchange::{Run, Stop};
use super::report::Phase;
use super::tools::{Transport, check_result_type};

/// The lists beside tools that a server's capabilities advertise.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Advertised {
    pub resources: bool,
    pub prompts: bool,
}

impl Advertised {
    pub(crate) fn from_capabilities(caps: &Value) -> Self {
        let has = |k: &str| caps.get(k).is_some_and(|v| !v.is_null());
        Advertised {
            resources: has("resources"),
            prompts: has("prompts"),
        }
    }
}

/// One kind of list: its method, the result's array, and the member that names an item.
struct Kind {
    name: &'static str,
    method: &'static str,
    array: &'static str,
    key: &'static str,
}

const RESOURCES: Kind = Kind {
    name: "resources",
    method: "resources/list",
    array: "resources",
    key: "uri",
};
const TEMPLATES: Kind = Kind {
    name: "resource_templates",
    method: "resources/templates/list",
    array: "resourceTemplates",
    key: "uriTemplate",
};
const PROMPTS: Kind = Kind {
    name: "prompts",
    method: "prompts/list",
    array: "prompts",
    key: "name",
};

/// One listed kind: how many items and their canonical hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ListedKind {
    /// `resources`, `resource_templates` or `prompts`.
    pub kind: String,
    pub count: usize,
    /// `sha256:` of the RFC 8785 form of the items sorted by their key.
    pub hash: String,
    /// The items as received (not part of the JSON report).
    #[serde(skip)]
    pub items: Vec<Value>,
}

/// List every advertised kind; a kind that fails is left out with a warning on the run.
pub(crate) async fn list_contract<T: Transport>(
    transport: &mut T,
    run: &mut Run,
    advertised: Advertised,
) -> Vec<ListedKind> {
    let mut kinds = Vec::new();
    if advertised.resources {
        kinds.extend([&RESOURCES, &TEMPLATES]);
    }
    if advertised.prompts {
        kinds.push(&PROMPTS);
    }
    let mut out = Vec::new();
    for kind in kinds {
        match list_kind(transport, run, kind).await {
            Ok(items) => match crate::schema::list_hash(&items, kind.key) {
                Ok(hash) => out.push(ListedKind {
                    kind: kind.name.into(),
                    count: items.len(),
                    hash,
                    items,
                }),
                Err(e) => run.warn(format!("{}: cannot be hashed: {e}", kind.method)),
            },
            Err(why) => run.warn(format!("{}: {why}", kind.method)),
        }
    }
    out
}

/// Every page of one kind, or why it broke.
async fn list_kind<T: Transport>(
    transport: &mut T,
    run: &mut Run,
    kind: &Kind,
) -> Result<Vec<Value>, String> {
    let phase = Phase::ToolsList;
    let mut items: Vec<Value> = Vec::new();
    let (mut cursors, mut keys) = (HashSet::new(), HashSet::new());
    let mut cursor: Option<String> = None;
    for page in 1..=run.max_pages {
        let params = cursor.as_ref().map_or(json!({}), |c| json!({"cursor": c}));
        let result = match transport.call(run, kind.method, params, phase).await {
            Ok(r) => r,
            Err(Stop::Failed(f) | Stop::NotThisEra(f)) => return Err(f.message),
            Err(Stop::Auth(_)) => return Err("refused: the server asks for credentials".into()),
        };
        check_result_type(&result, kind.method, phase).map_err(|f| f.message)?;
        // The cursor first: a cycle re-serves pages, and "cycle" is the diagnosis, not the
        // repeated items it causes.
        let next = match result.get("nextCursor") {
            None | Some(Value::Null) => None,
            Some(Value::String(c)) if c.is_empty() => None,
            Some(Value::String(c)) if !cursors.insert(c.clone()) => {
                return Err(format!(
                    "cursor cycle: cursor seen twice after {page} pages"
                ));
            }
            Some(Value::String(c)) => Some(c.clone()),
            Some(other) => return Err(format!("nextCursor is not a string: {other}")),
        };
        let page_items = result
            .get(kind.array)
            .and_then(Value::as_array)
            .ok_or_else(|| format!("the result has no '{}' array", kind.array))?;
        for item in page_items {
            let key = item
                .get(kind.key)
                .and_then(Value::as_str)
                .ok_or_else(|| format!("an item has no string '{}'", kind.key))?;
            if !keys.insert(key.to_string()) {
                return Err(format!("lists '{key}' more than once"));
            }
        }
        items.extend(page_items.iter().cloned());
        match next {
            Some(c) => cursor = Some(c),
            None => return Ok(items),
        }
    }
    Err(format!(
        "did not end within the page cap of {} pages",
        run.max_pages
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_say_which_lists_to_read() {
        let both = Advertised::from_capabilities(
            &json!({"tools": {}, "resources": {}, "prompts": {"listChanged": true}}),
        );
        assert_eq!(
            both,
            Advertised {
                resources: true,
                prompts: true
            }
        );
        assert_eq!(
            Advertised::from_capabilities(&json!({"tools": {}, "prompts": null})),
            Advertised::default()
        );
    }
}
