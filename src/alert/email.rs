//! Email alerts over SMTP (lettre on rustls): one multipart (text + HTML) message per event,
//! a subject that says what happened, and `Message-ID: <delivery id@mcpwatch>` so a retry of
//! the same delivery is recognisably the same message.

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::webhook::headline;
use crate::store::{ChannelRecord, EventRecord};

/// An SMTP sender.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

/// What a send produced: `Ok(())`, or the error and whether retrying can help.
pub struct MailError {
    pub message: String,
    pub permanent: bool,
}

impl Mailer {
    /// From `MCPWATCH_SMTP_URL` and `MCPWATCH_SMTP_FROM` (validated at start).
    pub fn new(url: &str, from: &str) -> Result<Self, String> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| {
                format!(
                    "MCPWATCH_SMTP_URL: {}",
                    crate::secrets::redact_url_password(&e.to_string())
                )
            })?
            .timeout(Some(std::time::Duration::from_secs(10)))
            .build();
        let from = from
            .parse::<Mailbox>()
            .map_err(|e| format!("MCPWATCH_SMTP_FROM: {e}"))?;
        Ok(Mailer { transport, from })
    }

    pub async fn send(
        &self,
        channel: &ChannelRecord,
        event: &EventRecord,
        delivery_id: &str,
        public_url: Option<&str>,
    ) -> Result<(), MailError> {
        let (text, html) = bodies(event, public_url);
        let mail = Mail {
            to: &channel.recipients,
            subject: format!("[mcpwatch] {}", headline(event)),
            text,
            html,
            message_id: delivery_id,
            unsubscribe: None,
        };
        self.send_mail(mail).await
    }

    /// One multipart message; with `unsubscribe`, the RFC 8058 one-click headers
    /// (`List-Unsubscribe` with that URL and `List-Unsubscribe-Post`).
    pub async fn send_mail(&self, mail: Mail<'_>) -> Result<(), MailError> {
        let refused = |message: String| MailError {
            message,
            permanent: true,
        };
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(mail.subject)
            .message_id(Some(format!("<{}@mcpwatch>", mail.message_id)));
        for r in mail.to {
            // The address itself is left out: it may be a reader's, and errors are logged.
            let to = r
                .parse::<Mailbox>()
                .map_err(|e| refused(format!("a recipient address is not valid: {e}")))?;
            builder = builder.to(to);
        }
        if let Some(url) = mail.unsubscribe {
            builder = builder
                .raw_header(HeaderValue::new(
                    HeaderName::new_from_ascii_str("List-Unsubscribe"),
                    format!("<{url}>"),
                ))
                .raw_header(HeaderValue::new(
                    HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
                    "List-Unsubscribe=One-Click".into(),
                ));
        }
        let message = builder
            .multipart(MultiPart::alternative_plain_html(mail.text, mail.html))
            .map_err(|e| refused(e.to_string()))?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| MailError {
                permanent: e.is_permanent(),
                message: crate::secrets::redact_url_password(&e.to_string()),
            })
    }
}

/// One message to send.
pub struct Mail<'a> {
    pub to: &'a [String],
    pub subject: String,
    pub text: String,
    pub html: String,
    /// Becomes `Message-ID: <id@mcpwatch>`: the same on every retry.
    pub message_id: &'a str,
    /// A one-click unsubscribe URL (RFC 8058).
    pub unsubscribe: Option<&'a str>,
}

/// `s` with `&`, `<`, `>` and `"` escaped for HTML.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Plain text and HTML bodies: what happened, where, why, and a link.
pub fn bodies(event: &EventRecord, public_url: Option<&str>) -> (String, String) {
    let d = &event.payload;
    let mut lines: Vec<(String, String)> = Vec::new();
    if let Some(name) = d["server"]["name"].as_str() {
        lines.push((
            "Server".into(),
            format!("{name} ({})", d["server"]["url"].as_str().unwrap_or("")),
        ));
    }
    if let (Some(from), Some(to)) = (d["from"].as_str(), d["to"].as_str()) {
        lines.push(("State".into(), format!("{from} → {to}")));
    }
    if let Some(region) = d["region"].as_str() {
        lines.push(("Region".into(), region.to_string()));
    }
    if let Some(kind) = d["failure"]["kind"].as_str() {
        lines.push((
            "Failure".into(),
            format!(
                "{kind} in {}: {}",
                d["failure"]["phase"].as_str().unwrap_or("?"),
                d["failure"]["message"].as_str().unwrap_or("")
            ),
        ));
    }
    if let Some(summary) = d["summary"].as_str() {
        lines.push(("Schema".into(), summary.to_string()));
    }
    if let Some(slo) = d["slo"]["name"].as_str() {
        let f = &d["figures"];
        lines.push((
            "Objective".into(),
            format!(
                "{slo}: {} % over {} days",
                d["slo"]["objective"].as_f64().unwrap_or(0.0) * 100.0,
                d["slo"]["window_days"]
            ),
        ));
        let pct = |v: &serde_json::Value| v.as_f64().map(|r| format!("{:.2} %", r * 100.0));
        if let Some(left) = pct(&f["budget_left"]) {
            lines.push(("Budget left".into(), left));
        }
        if let Some(r) = f["burn_rates"]["1h"].as_f64() {
            lines.push(("Burn rate (1 h)".into(), format!("{r:.1}×")));
        }
    }
    if let Some(id) = d["incident_id"].as_str() {
        lines.push(("Incident".into(), id.to_string()));
    }
    lines.push(("When".into(), crate::clock::rfc3339(event.at)));
    let link = match (public_url, d["server"]["slug"].as_str()) {
        (Some(base), Some(slug)) => Some(format!("{base}/s/{slug}")),
        _ => None,
    };
    let title = headline(event);
    let mut text = format!("{title}\n\n");
    for (k, v) in &lines {
        text.push_str(&format!("{k}: {v}\n"));
    }
    if let Some(l) = &link {
        text.push_str(&format!("\nStatus page: {l}\n"));
    }
    let mut html = format!("<h2>{}</h2><table>", escape(&title));
    for (k, v) in &lines {
        html.push_str(&format!(
            "<tr><th align=\"left\">{}</th><td>{}</td></tr>",
            escape(k),
            escape(v)
        ));
    }
    html.push_str("</table>");
    if let Some(l) = &link {
        html.push_str(&format!("<p><a href=\"{0}\">{0}</a></p>", escape(l)));
    }
    (text, html)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bodies_say_what_failed_where_and_escape_html() {
        let e = EventRecord {
            id: "e".into(),
            server_id: None,
            kind: "server.down".into(),
            at: 0,
            payload: json!({"server": {"name": "<b>Weather</b>", "slug": "weather", "url": "https://w.example/mcp"},
                "from": "up", "to": "down", "region": "eu-west",
                "failure": {"kind": "timeout", "phase": "tools_list", "message": "no answer"}}),
        };
        let (text, html) = bodies(&e, Some("https://status.example"));
        assert!(
            text.starts_with("DOWN: <b>Weather</b> — timeout in tools_list from eu-west\n"),
            "{text}"
        );
        assert!(text.contains("Failure: timeout in tools_list: no answer"));
        assert!(text.contains("Status page: https://status.example/s/weather"));
        assert!(
            html.contains("&lt;b&gt;Weather&lt;/b&gt;") && !html.contains("<b>Weather"),
            "{html}"
        );
        assert_eq!(
            crate::secrets::redact_url_password("smtp://u:pw@host:25 refused"),
            "smtp://***@host:25 refused"
        );
    }
}
