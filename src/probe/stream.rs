//! The streaming check: call a tool that reports progress as it runs (the reference server's
//! long-running operation, say), asking for progress with a `progressToken`, and time each
//! `notifications/progress` as it arrives on the SSE answer against the final result.
//!
//! A server cannot stamp when it sent a notification, but a tool that reports progress sends
//! its first one well before it finishes. When every notification arrives together with the
//! result (the first one in the call's last tenth), something between the server and us held
//! the stream back: a buffering proxy (nginx's `proxy_buffering on`, the default), which every
//! client behind it suffers. That is `degraded`, with the likely fix in the message.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::calls::{ToolCall, call_headers, permitted, stopped_words, timed_call};
use super::exchange::Run;
use super::recorder::round_ms;
use super::tools::Transport;

/// Below this the call is too quick to tell streaming from buffering.
const MEASURABLE: Duration = Duration::from_millis(300);

/// The first notification must arrive before this share of the call has passed...
const FIRST_BY_SHARE: f64 = 0.9;
/// ...and at least this long before the result.
const FIRST_LEAD: Duration = Duration::from_millis(50);

/// What the streaming check saw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StreamOutcome {
    pub tool: String,
    /// Whether the request was sent (a refused or unknown tool is not called).
    pub called: bool,
    /// Progress notifications that arrived before the result.
    pub notifications: u32,
    /// Milliseconds from the request to the first notification.
    pub first_ms: Option<f64>,
    /// Milliseconds from the request to the result.
    pub result_ms: Option<f64>,
    /// The longest wait between two arrivals (the request, each notification, the result).
    pub max_gap_ms: Option<f64>,
    /// `None` when progress streamed (or the call was too quick to tell); else why not, in
    /// plain words with the likely fix.
    pub failure: Option<String>,
}

/// Call `call`'s tool asking for progress, and judge how its notifications arrived.
pub(crate) async fn check<T: Transport>(
    transport: &mut T,
    run: &mut Run,
    call: &ToolCall,
    tools: &[Value],
) -> StreamOutcome {
    let mut out = StreamOutcome {
        tool: call.tool.clone(),
        called: false,
        notifications: 0,
        first_ms: None,
        result_ms: None,
        max_gap_ms: None,
        failure: None,
    };
    let tool = match permitted(call, tools) {
        Ok(tool) => tool,
        Err(why) => {
            out.failure = Some(why);
            return out;
        }
    };
    let token = format!("mcpwatch-stream-{}", run.next_id());
    let params = json!({"name": call.tool, "arguments": call.arguments,
                        "_meta": {"progressToken": token}});
    let headers = call_headers(&call.tool, &call.arguments, tool);
    let watch = Arc::new(Mutex::new(Vec::new()));
    run.progress_watch = Some(watch.clone());
    let (answer, started, took) = timed_call(transport, run, params, headers).await;
    run.progress_watch = None;
    out.called = true;
    let arrivals: Vec<Duration> = watch
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|at| at.saturating_duration_since(started))
        .collect();
    out.notifications = u32::try_from(arrivals.len()).unwrap_or(u32::MAX);
    out.first_ms = arrivals.first().map(ms);
    match answer {
        None => {
            out.failure = Some(format!(
                "the streaming tool did not finish within the probe's deadline ({} ms; {} progress notifications arrived)",
                took.as_millis(),
                arrivals.len()
            ));
        }
        Some(Err(stop)) => {
            out.failure = Some(format!("streaming check: {}", stopped_words(&stop)));
        }
        Some(Ok(_)) => {
            out.result_ms = Some(ms(&took));
            out.max_gap_ms = Some(ms(&max_gap(&arrivals, took)));
            out.failure = judge(&arrivals, took);
        }
    }
    out
}

fn ms(d: &Duration) -> f64 {
    round_ms(d.as_secs_f64() * 1000.0)
}

/// The longest wait between the request, each arrival and the result.
fn max_gap(arrivals: &[Duration], result: Duration) -> Duration {
    let mut last = Duration::ZERO;
    let mut gap = Duration::ZERO;
    for at in arrivals.iter().copied().chain([result]) {
        gap = gap.max(at.saturating_sub(last));
        last = at;
    }
    gap
}

/// `None` when the notifications streamed (or the call was too short to tell); else why not.
fn judge(arrivals: &[Duration], result: Duration) -> Option<String> {
    let Some(first) = arrivals.first().copied() else {
        return Some(format!(
            "no progress notification arrived before the result ({} ms after the call): the tool sent none for our progressToken, or something between the server and us dropped them",
            result.as_millis()
        ));
    };
    if result < MEASURABLE {
        return None;
    }
    let lead = result.saturating_sub(first);
    let on_time =
        first.as_secs_f64() <= result.as_secs_f64() * FIRST_BY_SHARE && lead >= FIRST_LEAD;
    if on_time {
        return None;
    }
    let last = arrivals.last().copied().unwrap_or(first);
    Some(format!(
        "progress did not stream: all {} progress notifications arrived within {} ms of each other, {} ms after the call and {} ms before its result, so clients see no progress until the end. An intermediary buffers the response stream: behind nginx set `proxy_buffering off;` for the MCP location (a server may also send `X-Accel-Buffering: no`, which nginx honours unless told to ignore it); other proxies and CDNs have a similar setting",
        arrivals.len(),
        last.saturating_sub(first).as_millis(),
        first.as_millis(),
        lead.as_millis()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: &[u64]) -> Vec<Duration> {
        ms.iter().map(|m| Duration::from_millis(*m)).collect()
    }

    #[test]
    fn progress_spread_over_the_call_streams_and_bunched_at_the_end_is_buffered() {
        let result = Duration::from_millis(2000);
        assert_eq!(judge(&at(&[500, 1000, 1500, 2000]), result), None);
        let buffered = judge(&at(&[1998, 1998, 1999, 1999]), result).unwrap();
        assert!(
            buffered.contains("all 4 progress notifications"),
            "{buffered}"
        );
        assert!(buffered.contains("proxy_buffering off"), "{buffered}");
        assert!(
            judge(&[], result)
                .unwrap()
                .contains("no progress notification")
        );
        // Too quick to tell: a 100 ms call passes with whatever arrived.
        assert_eq!(judge(&at(&[99]), Duration::from_millis(100)), None);
    }

    #[test]
    fn the_longest_wait_counts_the_request_and_the_result() {
        assert_eq!(
            max_gap(&at(&[100, 900, 1000]), Duration::from_millis(1100)),
            Duration::from_millis(800)
        );
        assert_eq!(
            max_gap(&[], Duration::from_millis(700)),
            Duration::from_millis(700)
        );
    }
}
