//! `tools/list` for every era: follow `nextCursor` to the end under a page cap, detect cursor
//! cycles, and validate each tool. The era supplies a [`Transport`] that sends one request.

use std::collections::HashSet;

use serde_json::{Map, Value, json};

use super::exchange::{Run, Stop};
use super::report::{Failure, FailureKind, Phase};

/// Sends one JSON-RPC request in an era's way and returns its `result`.
pub(crate) trait Transport {
    async fn call(
        &mut self,
        run: &mut Run,
        method: &str,
        params: Value,
        phase: Phase,
    ) -> Result<Value, Stop>;

    /// A `tools/call` with its 2026-07-28 headers (`Mcp-Name`, `Mcp-Param-*`); eras that
    /// define no such headers send it as any other request.
    async fn call_tool(
        &mut self,
        run: &mut Run,
        params: Value,
        _headers: reqwest::header::HeaderMap,
        phase: Phase,
    ) -> Result<Value, Stop> {
        self.call(run, "tools/call", params, phase).await
    }
}

/// Every page of the tool list.
#[derive(Debug, Default)]
pub(crate) struct ToolList {
    pub tools: Vec<Value>,
    pub pages: u32,
}

pub(crate) async fn list_tools<T: Transport>(
    transport: &mut T,
    run: &mut Run,
) -> Result<ToolList, Stop> {
    let phase = Phase::ToolsList;
    run.enter(phase);
    let mut out = ToolList::default();
    let mut seen_cursors = HashSet::new();
    let mut seen_names = HashSet::new();
    let mut cursor: Option<String> = None;
    loop {
        if out.pages >= run.max_pages {
            return Err(Failure::new(
                FailureKind::TooLarge,
                phase,
                format!(
                    "tools/list did not end within the page cap of {} pages",
                    run.max_pages
                ),
            )
            .into());
        }
        let params = match &cursor {
            Some(c) => json!({"cursor": c}),
            None => json!({}),
        };
        let result = transport.call(run, "tools/list", params, phase).await?;
        out.pages += 1;
        run.with(|p| p.pages = out.pages);
        check_result_type(&result, "tools/list", phase)?;
        // The cursor first: a cycle re-serves pages, and "cycle" is the diagnosis, not the
        // duplicate names it causes.
        let next = next_cursor(&result, run, &mut seen_cursors, out.pages)?;
        let tools = result
            .get("tools")
            .and_then(Value::as_array)
            .ok_or_else(|| {
                Failure::new(
                    FailureKind::Protocol,
                    phase,
                    "tools/list result has no 'tools' array",
                )
            })?;
        check_page(tools, out.tools.len(), &mut seen_names)?;
        out.tools.extend(tools.iter().cloned());
        match next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    run.leave(phase);
    if out.tools.is_empty() {
        return Err(Failure::new(
            FailureKind::EmptyTools,
            phase,
            "tools/list returned no tools",
        )
        .into());
    }
    Ok(out)
}

/// The page's `nextCursor`: `None` on the last page; a cursor seen before is a cycle.
fn next_cursor(
    result: &Value,
    run: &mut Run,
    seen: &mut HashSet<String>,
    pages: u32,
) -> Result<Option<String>, Failure> {
    let phase = Phase::ToolsList;
    match result.get("nextCursor") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(c)) if c.is_empty() => {
            run.note("tools/list returned an empty nextCursor; treated as the last page");
            Ok(None)
        }
        Some(Value::String(c)) if !seen.insert(c.clone()) => Err(Failure::new(
            FailureKind::Protocol,
            phase,
            format!("tools/list cursor cycle: cursor seen twice after {pages} pages"),
        )),
        Some(Value::String(c)) => Ok(Some(c.clone())),
        Some(other) => Err(Failure::new(
            FailureKind::Protocol,
            phase,
            format!("tools/list nextCursor is not a string: {other}"),
        )),
    }
}

/// Every tool on a page is valid, and no name repeats one listed before.
fn check_page(tools: &[Value], before: usize, seen: &mut HashSet<String>) -> Result<(), Failure> {
    let phase = Phase::ToolsList;
    for (i, tool) in tools.iter().enumerate() {
        let name = validate_tool(tool, before + i, phase)?;
        if !seen.insert(name.to_string()) {
            return Err(Failure::new(
                FailureKind::Protocol,
                phase,
                format!("tools/list lists the tool '{name}' more than once"),
            ));
        }
    }
    Ok(())
}

/// `resultType` absent or `complete` (2026-07-28: anything else is invalid for a list).
pub(crate) fn check_result_type(result: &Value, method: &str, phase: Phase) -> Result<(), Failure> {
    match result.get("resultType") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(s)) if s == "complete" => Ok(()),
        Some(other) => Err(Failure::new(
            FailureKind::Protocol,
            phase,
            format!("{method} returned resultType {other}, expected \"complete\""),
        )),
    }
}

/// A tool must be an object with a string `name` and an object `inputSchema`.
fn validate_tool(tool: &Value, index: usize, phase: Phase) -> Result<&str, Failure> {
    let invalid = |why: String| {
        Failure::new(
            FailureKind::Protocol,
            phase,
            format!("invalid tool #{index}: {why}"),
        )
    };
    let obj: &Map<String, Value> = tool
        .as_object()
        .ok_or_else(|| invalid("not an object".into()))?;
    let name = obj
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("no string 'name'".into()))?;
    if name.is_empty() {
        return Err(invalid("empty 'name'".into()));
    }
    match obj.get("inputSchema") {
        Some(Value::Object(_)) => Ok(name),
        Some(_) => Err(invalid(format!(
            "'{name}' has an inputSchema that is not an object"
        ))),
        None => Err(invalid(format!("'{name}' has no inputSchema"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_validation_names_the_problem() {
        let p = Phase::ToolsList;
        assert_eq!(
            validate_tool(&json!({"name": "a", "inputSchema": {}}), 0, p).unwrap(),
            "a"
        );
        let e = validate_tool(&json!({"name": "a"}), 3, p).unwrap_err();
        assert_eq!(e.message, "invalid tool #3: 'a' has no inputSchema");
        let e = validate_tool(&json!({"name": 5, "inputSchema": {}}), 0, p).unwrap_err();
        assert!(e.message.contains("no string 'name'"));
        let e = validate_tool(&json!({"name": "a", "inputSchema": "x"}), 0, p).unwrap_err();
        assert!(e.message.contains("not an object"));
    }

    #[test]
    fn result_type_must_be_complete_when_present() {
        assert!(check_result_type(&json!({}), "m", Phase::Handshake).is_ok());
        assert!(
            check_result_type(&json!({"resultType": "complete"}), "m", Phase::Handshake).is_ok()
        );
        let e = check_result_type(
            &json!({"resultType": "input_required"}),
            "m",
            Phase::Handshake,
        )
        .unwrap_err();
        assert_eq!(e.kind, FailureKind::Protocol);
    }
}
