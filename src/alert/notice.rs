//! Notices to a status page's subscribers: the confirmation request of a new subscription
//! (double opt-in) and every update of an incident or maintenance post the page shows, by
//! email (with RFC 8058 one-click unsubscribe headers) or as a JSON POST to a webhook.
//!
//! They are claimed, retried and given up on as the outbox's deliveries are (the dispatcher's
//! lease, backoff and 24 h), from their own table (`SubscriberStore`). An address is opened
//! only to send to it and never appears in a log, an error or an answer.
//!
//! The links in them (confirm, unsubscribe) are made and checked by `web::subscribe`.

use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{Value, json};

use super::dispatcher::{Dispatcher, SendOutcome};
use super::email::{Mail, escape};
use crate::clock::rfc3339;
use crate::secrets::Sealer;
use crate::store::{
    NoticeRecord, PostRecord, PostUpdateRecord, Store, StoreError, StoreResult, SubscriberRecord,
};
use crate::web::subscribe::{confirm_link, unsubscribe_link};

/// Notices claimed at once.
const BATCH: u32 = 32;

/// What a notice says, in every form it is sent in.
#[derive(Debug, Clone, PartialEq)]
pub struct NoticeText {
    pub subject: String,
    pub text: String,
    pub html: String,
    /// The webhook body.
    pub json: Value,
}

/// The confirmation request for `s` on the page titled `page`.
pub fn confirmation(sealer: &Sealer, s: &SubscriberRecord, page: &str) -> NoticeText {
    let url = confirm_link(sealer, s);
    let lead = format!(
        "Someone, hopefully you, asked to be told about incidents and maintenance on {page} ({}/).",
        s.base_url
    );
    let ignore = "If it was not you, ignore this message: nothing more will be sent, and the \
                  address is forgotten within 7 days.";
    NoticeText {
        subject: format!("[{page}] Confirm your subscription"),
        text: format!("{lead}\n\nTo confirm, open this link:\n{url}\n\n{ignore}\n"),
        html: format!(
            "<p>{}</p><p><a href=\"{1}\">Confirm your subscription</a><br>{1}</p><p>{2}</p>",
            escape(&lead),
            escape(&url),
            escape(ignore)
        ),
        json: json!({
            "type": "subscription.confirm",
            "page": {"title": page, "url": format!("{}/", s.base_url)},
            "confirm_url": url,
        }),
    }
}

/// A post's update as a notice: `servers` are the public servers it names.
pub struct PostNotice<'a> {
    pub page: &'a str,
    pub post: &'a PostRecord,
    pub update: &'a PostUpdateRecord,
    /// Whether it is the post's first update.
    pub first: bool,
    pub servers: &'a [String],
}

/// What `n` tells subscriber `s`.
pub fn post_text(sealer: &Sealer, s: &SubscriberRecord, n: &PostNotice<'_>) -> NoticeText {
    let kind = if n.post.kind == "maintenance" {
        "Maintenance"
    } else {
        "Incident"
    };
    let status = crate::web::status_label(&n.update.status);
    let url = format!("{}/incidents/{}", s.base_url, n.post.id);
    let unsubscribe = unsubscribe_link(sealer, s);
    let mut facts = vec![
        ("Status", status.clone()),
        ("Impact", n.post.impact.clone()),
    ];
    if !n.servers.is_empty() {
        facts.push(("Affects", n.servers.join(", ")));
    }
    facts.push(("Posted", crate::web::date_time(n.update.at)));
    let mut text = format!("{}\n\n{}: {}\n\n", n.post.title, status, n.update.message);
    let mut html = format!(
        "<h2>{}</h2><p><strong>{}:</strong> {}</p><table>",
        escape(&n.post.title),
        escape(&status),
        escape(&n.update.message)
    );
    for (k, v) in &facts {
        text.push_str(&format!("{k}: {v}\n"));
        html.push_str(&format!(
            "<tr><th align=\"left\">{k}</th><td>{}</td></tr>",
            escape(v)
        ));
    }
    let footer = format!("You get this because you subscribed to {}.", n.page);
    text.push_str(&format!(
        "\nThe whole story: {url}\n\n{footer}\nUnsubscribe: {unsubscribe}\n"
    ));
    html.push_str(&format!(
        "</table><p><a href=\"{0}\">The whole story</a></p><p>{1} <a href=\"{2}\">Unsubscribe</a></p>",
        escape(&url),
        escape(&footer),
        escape(&unsubscribe)
    ));
    NoticeText {
        subject: format!("[{}] {kind}: {} ({status})", n.page, n.post.title),
        text,
        html,
        json: json!({
            "type": if n.first { "post.created" } else { "post.updated" },
            "page": {"title": n.page, "url": format!("{}/", s.base_url)},
            "post": {
                "id": n.post.id, "kind": n.post.kind, "title": n.post.title,
                "status": n.post.status, "impact": n.post.impact, "servers": n.servers,
                "url": url,
            },
            "update": {"status": n.update.status, "message": n.update.message, "at": rfc3339(n.update.at)},
            "unsubscribe_url": unsubscribe,
        }),
    }
}

/// The title of page `page_id`.
async fn page_title(store: &dyn Store, page_id: &str) -> StoreResult<String> {
    let pages = store.list_pages().await?;
    Ok(crate::web::Pages::of_page_id(&pages, page_id).title)
}

/// What notice `n` says to `s`; `None` when its post or update is gone.
async fn compose(
    store: &dyn Store,
    sealer: &Sealer,
    s: &SubscriberRecord,
    n: &NoticeRecord,
) -> StoreResult<Option<NoticeText>> {
    let page = page_title(store, &s.page_id).await?;
    let Some(post_id) = n.post_id.as_deref() else {
        return Ok(Some(confirmation(sealer, s, &page)));
    };
    let Some(post) = store.get_post(post_id).await? else {
        return Ok(None);
    };
    let updates = store.post_updates(std::slice::from_ref(&post.id)).await?;
    let Some(update) = updates.iter().find(|u| u.id == n.delivery.event_id) else {
        return Ok(None);
    };
    let servers: Vec<String> = store
        .servers_by_id(&post.server_ids)
        .await?
        .into_iter()
        .filter(|x| x.public)
        .map(|x| x.name)
        .collect();
    let notice = PostNotice {
        page: &page,
        post: &post,
        update,
        first: updates.first().is_some_and(|u| u.id == update.id),
        servers: &servers,
    };
    Ok(Some(post_text(sealer, s, &notice)))
}

impl Dispatcher {
    /// Claim and send one batch of due notices; how many it handled.
    pub(super) async fn deliver_notices(&self, now: i64) -> Result<usize, StoreError> {
        let lease_until = now + self.lease.as_millis() as i64;
        let due = self.store.claim_notices(now, lease_until, BATCH).await?;
        let n = due.len();
        let mut sends = tokio::task::JoinSet::new();
        for notice in due {
            let this = self.clone();
            sends.spawn(async move { this.deliver_notice(notice).await });
        }
        while sends.join_next().await.is_some() {}
        Ok(n)
    }

    async fn deliver_notice(&self, mut n: NoticeRecord) {
        let outcome = match self.notice_outcome(&n).await {
            Ok(outcome) => outcome,
            Err(e) => {
                // Not now: the lease runs out and it is tried again, with the same id.
                tracing::warn!(notice_id = %n.delivery.id, error = %e, "notice postponed: it could not be read");
                return;
            }
        };
        let now = (self.clock)();
        super::dispatcher::record_outcome(&mut n.delivery, &outcome, false, now);
        if outcome.http_status == Some(410) {
            // The receiver is gone for good: so is the subscription (and its address).
            let _ = self.store.delete_subscriber(&n.delivery.channel_id).await;
        }
        tracing::info!(
            notice_id = %n.delivery.id, subscriber_id = %n.delivery.channel_id, kind = %n.kind,
            status = %n.delivery.status, attempts = n.delivery.attempts, "notice attempt"
        );
        if let Err(e) = self.store.finish_notice(&n.delivery).await {
            tracing::error!(notice_id = %n.delivery.id, error = %e, "notice result not recorded");
        }
    }

    /// Send `n` once, or say why it cannot be sent.
    async fn notice_outcome(&self, n: &NoticeRecord) -> StoreResult<SendOutcome> {
        let refused = |why: &str| SendOutcome {
            http_status: None,
            error: Some(why.to_string()),
            duration_ms: 0.0,
            permanent: true,
        };
        let Some(s) = self.store.get_subscriber(&n.delivery.channel_id).await? else {
            return Ok(refused("the subscriber is gone"));
        };
        if n.kind == "post" && s.confirmed_at.is_none() {
            return Ok(refused("the subscriber has not confirmed"));
        }
        let Some(content) = compose(self.store.as_ref(), &self.sealer, &s, n).await? else {
            return Ok(refused("the post or its update is gone"));
        };
        let Ok(address) = self.sealer.open(&s.address_enc) else {
            return Ok(refused(
                "the address cannot be opened (another secret key?)",
            ));
        };
        let address = String::from_utf8_lossy(&address).into_owned();
        let bound = self.send_bound();
        let send = self.send_notice(&s, &address, content, &n.delivery.id);
        Ok(tokio::time::timeout(bound, send)
            .await
            .unwrap_or_else(|_| SendOutcome {
                http_status: None,
                error: Some(format!("no answer within {} s", bound.as_secs())),
                duration_ms: bound.as_millis() as f64,
                permanent: false,
            }))
    }

    async fn send_notice(
        &self,
        s: &SubscriberRecord,
        address: &str,
        content: NoticeText,
        notice_id: &str,
    ) -> SendOutcome {
        let started = std::time::Instant::now();
        let (http_status, error, permanent) = if s.kind == "email" {
            let Some(mailer) = &self.mailer else {
                let why = "email subscriber, but MCPWATCH_SMTP_URL is not configured";
                return SendOutcome {
                    http_status: None,
                    error: Some(why.into()),
                    duration_ms: 0.0,
                    permanent: false,
                };
            };
            let unsubscribe = unsubscribe_link(&self.sealer, s);
            let to = [address.to_string()];
            let mail = Mail {
                to: &to,
                subject: content.subject,
                text: content.text,
                html: content.html,
                message_id: notice_id,
                unsubscribe: (content.json["type"] != "subscription.confirm")
                    .then_some(unsubscribe.as_str()),
            };
            match mailer.send_mail(mail).await {
                Ok(()) => (None, None, false),
                Err(e) => (None, Some(e.message), e.permanent),
            }
        } else {
            let mut headers = HeaderMap::new();
            if let Ok(id) = HeaderValue::from_str(notice_id) {
                headers.insert("webhook-id", id);
            }
            let bytes = serde_json::to_vec(&content.json).unwrap_or_default();
            let (status, error) = self.post_to(address, bytes, headers).await;
            (status, error, false)
        };
        SendOutcome {
            http_status,
            error,
            duration_ms: started.elapsed().as_secs_f64() * 1000.0,
            permanent,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_post_notice_says_what_changed_escapes_html_and_links_out() {
        let sealer = Sealer::new(&[5; 32]);
        let s = SubscriberRecord {
            id: "sub-1".into(),
            page_id: "default".into(),
            kind: "email".into(),
            address_enc: String::new(),
            address_mac: String::new(),
            base_url: "https://status.example.com".into(),
            confirmed_at: Some(1),
            confirm_sent_at: 0,
            created_at: 0,
        };
        let post = PostRecord {
            id: "post-1".into(),
            kind: "incident".into(),
            title: "Search <b>slow</b>".into(),
            status: "identified".into(),
            impact: "major".into(),
            server_ids: vec!["x".into()],
            window_id: None,
            incident_id: None,
            created_at: 0,
            updated_at: 0,
            resolved_at: None,
        };
        let update = PostUpdateRecord {
            id: "u-2".into(),
            post_id: "post-1".into(),
            status: "identified".into(),
            message: "A cache node & a <script> failed".into(),
            at: 0,
        };
        let servers = vec!["Search".to_string()];
        let n = PostNotice {
            page: "Acme status",
            post: &post,
            update: &update,
            first: false,
            servers: &servers,
        };
        let t = post_text(&sealer, &s, &n);
        assert_eq!(
            t.subject,
            "[Acme status] Incident: Search <b>slow</b> (Identified)"
        );
        assert!(
            t.text
                .contains("Identified: A cache node & a <script> failed")
        );
        assert!(t.text.contains("Affects: Search\n"));
        assert!(
            t.text
                .contains("https://status.example.com/incidents/post-1")
        );
        assert!(
            t.html
                .contains("A cache node &amp; a &lt;script&gt; failed")
        );
        assert!(!t.html.contains("<script>") && !t.html.contains("<b>slow"));
        assert_eq!(t.json["type"], "post.updated");
        assert!(
            t.json["unsubscribe_url"]
                .as_str()
                .unwrap()
                .starts_with("https://status.example.com/unsubscribe?s=sub-1&t=")
        );
        let c = confirmation(&sealer, &s, "Acme status");
        assert_eq!(c.json["type"], "subscription.confirm");
        assert!(
            c.text
                .contains("https://status.example.com/subscribe/confirm?s=sub-1&t=")
        );
    }
}
