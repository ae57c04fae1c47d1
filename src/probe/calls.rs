//! Synthetic tool calls: after `tools/list`, call the tools the operator named and check what
//! came back. Only a tool the server marks `readOnlyHint: true` is ever called, unless that
//! call carries an explicit write override: a monitor must never change what it watches.
//!
//! A call's failure never stops the probe (the server answered the protocol); it is recorded
//! per call and `finish_up` turns the first one into the report's `tool_call` failure.

use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::exchange::{Run, Stop};
use super::recorder::round_ms;
use super::report::Phase;
use super::tools::Transport;

/// How long before the probe's deadline a call gives up, leaving time to report and close.
const CALL_MARGIN: Duration = Duration::from_millis(300);

/// Longest stretch of the server's own words kept in a call's failure.
const WORDS_CAP: usize = 300;

/// Most calls one server is checked with: each is a request inside one probe's deadline.
pub const MAX_CALLS: usize = 10;

/// Largest serialized `arguments` of one call.
const MAX_ARGUMENTS_BYTES: usize = 16 * 1024;

/// The calls one server is checked with (stored on the server as this JSON).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CallPlan {
    pub calls: Vec<ToolCall>,
    /// A failed call makes the probe `down` instead of `degraded`.
    #[serde(default)]
    pub failure_is_down: bool,
    /// The streaming check's call (`stream.rs`): a tool that reports progress as it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<ToolCall>,
}

/// What the calls and the streaming check found.
#[derive(Debug, Default)]
pub(crate) struct Checked {
    pub calls: Vec<CallOutcome>,
    pub stream: Option<super::stream::StreamOutcome>,
}

/// One call the operator asked for, and what its result must show.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolCall {
    /// The tool's name as `tools/list` gives it.
    pub tool: String,
    /// The call's `arguments` (an object).
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    pub arguments: Value,
    /// Call it even though the server does not mark it `readOnlyHint: true`.
    #[serde(default)]
    pub allow_write: bool,
    /// A JSON pointer into the result and the value it must hold there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_pointer: Option<PointerExpectation>,
    /// Text the result's content must contain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_contains: Option<String>,
    /// The call must answer within this many milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_latency_ms: Option<u64>,
}

/// `pointer` (RFC 6901, into the whole `tools/call` result) must hold `equals`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PointerExpectation {
    pub pointer: String,
    /// Any JSON value.
    #[schema(schema_with = any_json)]
    pub equals: Value,
}

/// The schema of a member that may hold any JSON value, said as every JSON type.
fn any_json() -> utoipa::openapi::Object {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([
            Type::String,
            Type::Number,
            Type::Boolean,
            Type::Object,
            Type::Array,
            Type::Null,
        ]))
        .build()
}

fn empty_object() -> Value {
    json!({})
}

impl ToolCall {
    /// A call of `tool` with `arguments` and only the default expectations.
    pub fn new(tool: impl Into<String>, arguments: Value) -> Self {
        ToolCall {
            tool: tool.into(),
            arguments,
            allow_write: false,
            expect_pointer: None,
            expect_contains: None,
            max_latency_ms: None,
        }
    }

    /// Parse `NAME` or `NAME {"json":"arguments"}` (the CLI's `--call`).
    pub fn parse(spec: &str) -> Result<Self, String> {
        let spec = spec.trim();
        let (name, args) = match spec.split_once(char::is_whitespace) {
            Some((name, rest)) => (name, rest.trim()),
            None => (spec, ""),
        };
        if name.is_empty() {
            return Err("a call needs a tool name: 'NAME {\"json\":\"arguments\"}'".into());
        }
        let arguments = if args.is_empty() {
            empty_object()
        } else {
            serde_json::from_str(args)
                .map_err(|e| format!("the arguments of '{name}' are not JSON: {e}"))?
        };
        if !arguments.is_object() {
            return Err(format!("the arguments of '{name}' must be a JSON object"));
        }
        Ok(ToolCall::new(name, arguments))
    }

    /// What is wrong with this call as an operator configured it (the API, a monitors
    /// file): every problem, each naming its field.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let name_ok = !self.tool.is_empty()
            && self.tool.chars().count() <= 128
            && !self.tool.chars().any(char::is_control);
        if !name_ok {
            out.push("tool: must be 1-128 characters without control characters".into());
        }
        if !self.arguments.is_object() {
            out.push("arguments: must be a JSON object".into());
        } else if self.arguments.to_string().len() > MAX_ARGUMENTS_BYTES {
            out.push(format!(
                "arguments: at most {MAX_ARGUMENTS_BYTES} bytes of JSON"
            ));
        }
        if let Some(p) = &self.expect_pointer
            && !(p.pointer.is_empty() || p.pointer.starts_with('/'))
        {
            out.push(format!(
                "expect_pointer.pointer: '{}' is not a JSON pointer (RFC 6901: empty, or starting with /)",
                p.pointer
            ));
        }
        if let Some(text) = &self.expect_contains
            && (text.is_empty() || text.chars().count() > 1000)
        {
            out.push("expect_contains: must be 1-1000 characters".into());
        }
        if let Some(ms) = self.max_latency_ms
            && !(1..=60_000).contains(&ms)
        {
            out.push("max_latency_ms: must be between 1 and 60000".into());
        }
        out
    }
}

/// What one call did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CallOutcome {
    pub tool: String,
    /// Whether the request was sent (a refused or unknown tool is not called).
    pub called: bool,
    /// Milliseconds from request to answer, when it answered.
    pub latency_ms: Option<f64>,
    /// `None` when every expectation held; else the expectation that failed and the server's
    /// words.
    pub failure: Option<String>,
}

/// Make the probe's calls (if any) in order over its transport, then the streaming check
/// (if asked for); `tools` is the listed tools.
pub(crate) async fn run_calls<T: Transport>(
    transport: &mut T,
    run: &mut Run,
    tools: &[Value],
) -> Checked {
    let Some(plan) = run.calls.clone() else {
        return Checked::default();
    };
    let mut calls = Vec::with_capacity(plan.calls.len());
    for call in &plan.calls {
        calls.push(run_call(transport, run, call, tools).await);
    }
    let stream = match &plan.stream {
        Some(call) => Some(super::stream::check(transport, run, call, tools).await),
        None => None,
    };
    Checked { calls, stream }
}

/// The listed tool `call` names, if the call may be made: the server lists it, and marks it
/// `readOnlyHint: true` or the call carries the write override. Else why not (`not called: …`).
pub(crate) fn permitted<'t>(call: &ToolCall, tools: &'t [Value]) -> Result<&'t Value, String> {
    let Some(tool) = tools
        .iter()
        .find(|t| t.get("name").and_then(Value::as_str) == Some(call.tool.as_str()))
    else {
        return Err(format!(
            "not called: the server lists no tool '{}'",
            call.tool
        ));
    };
    if !call.allow_write && !is_read_only(tool) {
        return Err(format!(
            "not called: '{}' is not marked readOnlyHint: true (only an explicit write override on this call, --allow-write, calls it)",
            call.tool
        ));
    }
    Ok(tool)
}

/// When a call must give up: a little short of the probe's deadline, so a tool that hangs
/// fails its call and the report still comes back with everything the probe learned before.
fn call_deadline(run: &Run) -> Option<tokio::time::Instant> {
    run.deadline
        .map(|d| d.checked_sub(CALL_MARGIN).unwrap_or(d))
}

async fn run_call<T: Transport>(
    transport: &mut T,
    run: &mut Run,
    call: &ToolCall,
    tools: &[Value],
) -> CallOutcome {
    let mut outcome = CallOutcome {
        tool: call.tool.clone(),
        called: false,
        latency_ms: None,
        failure: None,
    };
    let tool = match permitted(call, tools) {
        Ok(tool) => tool,
        Err(why) => {
            outcome.failure = Some(why);
            return outcome;
        }
    };
    let params = json!({"name": call.tool, "arguments": call.arguments});
    let headers = call_headers(&call.tool, &call.arguments, tool);
    let (answer, _, latency) = timed_call(transport, run, params, headers).await;
    outcome.called = true;
    outcome.latency_ms = Some(round_ms(latency.as_secs_f64() * 1000.0));
    outcome.failure = match answer {
        Some(Ok(result)) => check_result(&result, tool, call, latency).err(),
        Some(Err(stop)) => Some(stopped_words(&stop)),
        None => Some(format!(
            "no answer within the probe's deadline ({} ms after the call)",
            latency.as_millis()
        )),
    };
    outcome
}

/// One `tools/call` in phase `tool_call`, given up a little short of the probe's deadline:
/// the answer (`None` when there was none in time), when it was sent, and how long it took.
pub(crate) async fn timed_call<T: Transport>(
    transport: &mut T,
    run: &mut Run,
    params: Value,
    headers: HeaderMap,
) -> (Option<Result<Value, Stop>>, Instant, Duration) {
    run.enter(Phase::ToolCall);
    let stop_at = call_deadline(run);
    let started = Instant::now();
    let calling = transport.call_tool(run, params, headers, Phase::ToolCall);
    let answer = match stop_at {
        Some(at) => tokio::time::timeout_at(at, calling).await.ok(),
        None => Some(calling.await),
    };
    let took = started.elapsed();
    run.leave(Phase::ToolCall);
    (answer, started, took)
}

/// A call that stopped short of a result, in words (the server's own, cut to length).
pub(crate) fn stopped_words(stop: &Stop) -> String {
    match stop {
        Stop::Failed(f) | Stop::NotThisEra(f) => {
            format!("the call failed: {}", truncate(&f.message, WORDS_CAP))
        }
        Stop::Auth(_) => "the call was refused: the server asks for credentials".into(),
    }
}

/// `annotations.readOnlyHint` is `true` (absent means false, as the spec defaults it).
fn is_read_only(tool: &Value) -> bool {
    tool.pointer("/annotations/readOnlyHint") == Some(&Value::Bool(true))
}

/// Every expectation, in order; the first that fails is the answer.
fn check_result(
    result: &Value,
    tool: &Value,
    call: &ToolCall,
    latency: Duration,
) -> Result<(), String> {
    if result.get("isError") == Some(&Value::Bool(true)) {
        return Err(format!(
            "the tool reported an error (isError): {}",
            truncate(&content_text(result), WORDS_CAP)
        ));
    }
    if let Some(schema) = tool.get("outputSchema") {
        check_output(result, schema)?;
    }
    if let Some(p) = &call.expect_pointer {
        match result.pointer(&p.pointer) {
            Some(v) if *v == p.equals => {}
            Some(v) => {
                return Err(format!(
                    "expected {} at {}, got {}",
                    p.equals,
                    p.pointer,
                    truncate(&v.to_string(), WORDS_CAP)
                ));
            }
            None => {
                return Err(format!(
                    "expected {} at {}, found nothing there",
                    p.equals, p.pointer
                ));
            }
        }
    }
    if let Some(needle) = &call.expect_contains
        && !content_text(result).contains(needle.as_str())
        && !result.to_string().contains(needle.as_str())
    {
        return Err(format!("the result does not contain \"{needle}\""));
    }
    if let Some(max) = call.max_latency_ms
        && latency > Duration::from_millis(max)
    {
        return Err(format!(
            "answered in {} ms, over the bound of {max} ms",
            latency.as_millis()
        ));
    }
    Ok(())
}

/// A tool that declares an `outputSchema` must return `structuredContent` valid against it
/// (JSON Schema 2020-12 unless the schema names another draft).
fn check_output(result: &Value, schema: &Value) -> Result<(), String> {
    let Some(structured) = result.get("structuredContent") else {
        return Err("the tool declares an outputSchema but returned no structuredContent".into());
    };
    let validator = jsonschema::validator_for(schema)
        .map_err(|e| format!("the tool's outputSchema is not a valid JSON Schema: {e}"))?;
    let errors: Vec<String> = validator
        .iter_errors(structured)
        .take(3)
        .map(|e| format!("{e} at '{}'", e.instance_path()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "structuredContent does not match the outputSchema: {}",
            truncate(&errors.join("; "), WORDS_CAP)
        ))
    }
}

/// The text of the result's text content blocks, joined.
fn content_text(result: &Value) -> String {
    result
        .get("content")
        .and_then(Value::as_array)
        .map(|blocks| {
            blocks
                .iter()
                .filter_map(|b| b.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// `s` on one line (a server's words may span many), cut at `cap` characters.
fn truncate(s: &str, cap: usize) -> String {
    let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
    match s.char_indices().nth(cap) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s,
    }
}

/// 2026-07-28's headers for a `tools/call`: `Mcp-Name` (the tool), and `Mcp-Param-{H}` for
/// each argument whose input-schema property carries `x-mcp-header: H` (clients must mirror
/// them). Eras before 2026 ignore them; the stateless transport sends them.
pub(crate) fn call_headers(name: &str, arguments: &Value, tool: &Value) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&header_value(name)) {
        h.insert("mcp-name", v);
    }
    let Some(props) = tool
        .pointer("/inputSchema/properties")
        .and_then(Value::as_object)
    else {
        return h;
    };
    for (param, schema) in props {
        let Some(header) = schema.get("x-mcp-header").and_then(Value::as_str) else {
            continue;
        };
        let text = match arguments.get(param) {
            Some(Value::String(s)) => s.clone(),
            Some(v @ (Value::Number(_) | Value::Bool(_))) => v.to_string(),
            _ => continue,
        };
        let name = HeaderName::from_bytes(format!("mcp-param-{header}").as_bytes());
        if let (Ok(name), Ok(value)) = (name, HeaderValue::from_str(&header_value(&text))) {
            h.insert(name, value);
        }
    }
    h
}

/// A header value as the spec encodes it: as is when it is plain visible ASCII without
/// leading or trailing whitespace, else `=?base64?…?=` of its UTF-8.
fn header_value(text: &str) -> String {
    let plain = !text.is_empty()
        && text.trim() == text
        && text
            .bytes()
            .all(|b| b == b' ' || b == b'\t' || (0x21..=0x7e).contains(&b));
    if plain {
        text.to_string()
    } else {
        format!(
            "=?base64?{}?=",
            base64::engine::general_purpose::STANDARD.encode(text.as_bytes())
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_spec_parses_or_says_what_is_wrong() {
        let c = ToolCall::parse(r#"add {"a": 2, "b": 3}"#).unwrap();
        assert_eq!(
            (c.tool.as_str(), c.arguments),
            ("add", json!({"a": 2, "b": 3}))
        );
        assert_eq!(ToolCall::parse("ping").unwrap().arguments, json!({}));
        assert!(
            ToolCall::parse("add {oops")
                .unwrap_err()
                .contains("not JSON")
        );
        assert!(ToolCall::parse("add [1]").unwrap_err().contains("object"));
        assert!(ToolCall::parse("  ").unwrap_err().contains("tool name"));
    }

    #[test]
    fn header_values_outside_plain_ascii_are_base64() {
        assert_eq!(header_value("get_weather"), "get_weather");
        assert_eq!(header_value("météo"), "=?base64?bcOpdMOpbw==?=");
        assert_eq!(header_value(" padded"), "=?base64?IHBhZGRlZA==?=");
    }

    #[test]
    fn x_mcp_header_arguments_are_mirrored() {
        let tool = json!({"name": "w", "inputSchema": {"type": "object", "properties": {
            "region": {"type": "string", "x-mcp-header": "Region"},
            "days": {"type": "integer", "x-mcp-header": "Days"},
            "note": {"type": "string"}}}});
        let h = call_headers(
            "w",
            &json!({"region": "eu-west", "days": 3, "note": "x"}),
            &tool,
        );
        assert_eq!(h["mcp-name"], "w");
        assert_eq!(h["mcp-param-region"], "eu-west");
        assert_eq!(h["mcp-param-days"], "3");
        assert_eq!(h.len(), 3);
    }

    #[test]
    fn expectations_fail_with_what_was_expected() {
        let tool = json!({"name": "add", "outputSchema": {"type": "object",
            "properties": {"result": {"type": "integer"}}, "required": ["result"]}});
        let call = ToolCall::new("add", json!({}));
        let ok =
            json!({"content": [{"type": "text", "text": "5"}], "structuredContent": {"result": 5}});
        assert_eq!(check_result(&ok, &tool, &call, Duration::ZERO), Ok(()));
        let wrong = json!({"content": [], "structuredContent": {"result": "five"}});
        let e = check_result(&wrong, &tool, &call, Duration::ZERO).unwrap_err();
        assert!(
            e.contains("does not match the outputSchema") && e.contains("/result"),
            "{e}"
        );
        let missing = json!({"content": []});
        assert!(
            check_result(&missing, &tool, &call, Duration::ZERO)
                .unwrap_err()
                .contains("no structuredContent")
        );
        let failed = json!({"isError": true, "content": [{"type": "text", "text": "db down"}]});
        assert!(
            check_result(&failed, &tool, &call, Duration::ZERO)
                .unwrap_err()
                .contains("db down")
        );
        let mut pointed = call.clone();
        pointed.expect_pointer = Some(PointerExpectation {
            pointer: "/structuredContent/result".into(),
            equals: json!(6),
        });
        assert!(
            check_result(&ok, &tool, &pointed, Duration::ZERO)
                .unwrap_err()
                .contains("expected 6")
        );
        let mut slow = call.clone();
        slow.max_latency_ms = Some(10);
        assert!(
            check_result(&ok, &tool, &slow, Duration::from_millis(11))
                .unwrap_err()
                .contains("over the bound")
        );
        let mut contains = call;
        contains.expect_contains = Some("5".into());
        assert_eq!(check_result(&ok, &tool, &contains, Duration::ZERO), Ok(()));
    }
}
