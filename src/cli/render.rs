//! The human-readable report of one probe, for a terminal or a CI log.

use std::fmt::Write;

use crate::probe::{AuthChallenge, Failure, ProbeReport, Verdict};

fn ms(v: Option<f64>) -> String {
    match v {
        Some(v) if v >= 100.0 => format!("{v:.0} ms"),
        Some(v) => format!("{v:.1} ms"),
        None => "-".to_string(),
    }
}

/// Several aligned lines: verdict, era, server, tools and hash, timings, failure with a hint.
pub fn render_report(r: &ProbeReport) -> String {
    let mut out = String::new();
    let label = match r.verdict {
        Verdict::Up => "UP",
        Verdict::Degraded => "DEGRADED",
        Verdict::AuthRequired => "AUTH REQUIRED",
        Verdict::Down => "DOWN",
    };
    let _ = writeln!(out, "{label}  {}", r.url);
    if let Some(era) = r.era {
        let version = r.protocol_version.as_deref().unwrap_or("?");
        let _ = writeln!(out, "  era         {era} (protocol {version})");
    }
    if let Some(info) = &r.server_info {
        let _ = writeln!(out, "  server      {} {}", info.name, info.version);
    }
    if r.era.is_some() && r.verdict != Verdict::AuthRequired {
        let _ = writeln!(
            out,
            "  session     {}",
            if r.session {
                "yes (closed with DELETE)"
            } else {
                "none"
            }
        );
    }
    if let Some(hash) = &r.schema_hash {
        let pages = if r.pages == 1 {
            "1 page".to_string()
        } else {
            format!("{} pages", r.pages)
        };
        let _ = writeln!(
            out,
            "  tools       {} on {pages}: {}",
            r.tools_count,
            abbreviate(&r.tool_names.join(", "), 100)
        );
        let _ = writeln!(out, "  schema      {hash}");
    }
    let t = &r.timings_ms;
    let _ = writeln!(
        out,
        "  timings     dns {} · connect {} · tls {} · handshake {} · tools/list {} · total {}",
        ms(t.dns),
        ms(t.connect),
        ms(t.tls),
        ms(t.handshake),
        ms(t.tools_list),
        ms(Some(t.total))
    );
    if let Some(cert) = &r.tls {
        let _ = writeln!(out, "  certificate expires {}", cert.not_after);
    }
    if let Some(trace) = &r.trace_id {
        let _ = writeln!(
            out,
            "  trace       {trace} (W3C traceparent on every request)"
        );
    }
    if let Some(a) = &r.auth {
        write_auth(&mut out, a);
    }
    for c in &r.calls {
        let took = c
            .latency_ms
            .map(|l| format!(" in {l:.1} ms"))
            .unwrap_or_default();
        let _ = match &c.failure {
            None => writeln!(out, "  call        {} ok{took}", c.tool),
            Some(f) => writeln!(out, "  call        {} FAILED{took}: {f}", c.tool),
        };
    }
    for k in &r.contract {
        let label = match k.kind.as_str() {
            "resource_templates" => "templates",
            other => other,
        };
        let _ = writeln!(out, "  {label:<11} {} · {}", k.count, k.hash);
    }
    if let Some(s) = &r.stream {
        write_stream(&mut out, s);
    }
    for w in &r.warnings {
        let _ = writeln!(out, "  warning     {w}");
    }
    for n in &r.notes {
        let _ = writeln!(out, "  note        {n}");
    }
    if let Some(f) = &r.failure {
        write_failure(&mut out, f);
    }
    out
}

/// The streaming check: how its progress arrived, and the verdict.
fn write_stream(out: &mut String, s: &crate::probe::StreamOutcome) {
    let timing = match (s.first_ms, s.result_ms) {
        (Some(first), Some(result)) => format!(
            ": {} progress notifications, the first after {first:.0} ms, the result after {result:.0} ms",
            s.notifications
        ),
        (None, Some(result)) => format!(": no progress, the result after {result:.0} ms"),
        _ => String::new(),
    };
    let _ = match &s.failure {
        None => writeln!(out, "  stream      {} streamed{timing}", s.tool),
        Some(f) => writeln!(out, "  stream      {} FAILED{timing}: {f}", s.tool),
    };
}

/// What a 401/403 said, and what to do about it.
fn write_auth(out: &mut String, a: &AuthChallenge) {
    let mut line = format!("HTTP {}", a.http_status);
    if let Some(s) = &a.scheme {
        let _ = write!(line, ", scheme {s}");
    }
    if let Some(e) = &a.error {
        let _ = write!(line, ", error {e}");
    }
    let _ = writeln!(out, "  auth        {line}");
    if let Some(m) = &a.resource_metadata {
        let _ = writeln!(out, "  metadata    {m}");
    }
    if let Some(s) = &a.scope {
        let _ = writeln!(out, "  scope       {s}");
    }
    if let Some(d) = &a.discovery {
        write_discovery(out, d);
    }
    let hint = if a.credentials_sent {
        "the credentials sent were refused: renew the probe credential"
    } else {
        "the server is alive but protected: pass a credential with --header, or --allow-auth-required"
    };
    let _ = writeln!(out, "  hint        {hint}");
}

/// The OAuth discovery chain: complete (issuer, token endpoint), not advertised, or where it
/// broke (the failure below says why).
fn write_discovery(out: &mut String, d: &crate::probe::discovery::Discovery) {
    use crate::probe::discovery::DiscoveryStatus;
    let line = match d.status {
        DiscoveryStatus::Ok => format!(
            "OK: issuer {} · token endpoint {}",
            d.issuer.as_deref().unwrap_or("?"),
            d.token_endpoint.as_deref().unwrap_or("?")
        ),
        DiscoveryStatus::NotAdvertised => {
            "no OAuth metadata advertised (RFC 9728): a key out of band".into()
        }
        DiscoveryStatus::Broken => d.explain(),
    };
    let _ = writeln!(out, "  oauth       {line}");
}

/// The failure with its codes, and where to look first.
fn write_failure(out: &mut String, f: &Failure) {
    let mut codes = String::new();
    if let Some(s) = f.http_status {
        let _ = write!(codes, " [HTTP {s}]");
    }
    if let Some(c) = f.jsonrpc_code {
        let _ = write!(codes, " [JSON-RPC {c}]");
    }
    let _ = writeln!(
        out,
        "  failure     {} in {}{codes}: {}",
        f.kind, f.phase, f.message
    );
    let _ = writeln!(out, "  hint        {}", f.kind.hint());
}

fn abbreviate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut cut: String = s.chars().take(max).collect();
        cut.push('…');
        cut
    }
}
