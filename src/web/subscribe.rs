//! Readers subscribing to a page's incident and maintenance notices, by email or webhook.
//!
//! - `POST /subscribe` (the form on `/`): an address in, a confirmation request out (double
//!   opt-in); the answer is the same whether the address was new, pending or already
//!   subscribed, so the form cannot tell anyone who subscribed.
//! - `GET /subscribe/confirm?s&t` shows a button; its `POST` confirms. A link opened by a mail
//!   scanner therefore confirms nothing.
//! - `GET /unsubscribe?s&t` shows a button; its `POST` (also the RFC 8058 one-click POST a mail
//!   client sends) deletes the subscription and the address with it.
//!
//! `t` is a keyed digest of the subscriber id for one purpose (`Sealer::mac`): nothing to
//! store, a confirm link cannot unsubscribe, and neither can be made up. Links point at the
//! origin the reader subscribed on: `MCPWATCH_PUBLIC_URL`, or the host of a page that has one;
//! never a Host header nobody configured (a confirmation mail must not carry an attacker's
//! link). Sign-ups are limited per client address and per hour in all, a pending address gets
//! at most one confirmation request per 10 minutes, and unconfirmed addresses are forgotten
//! after 7 days.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use askama::Template;
use axum::Form;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use ipnet::IpNet;
use serde::Deserialize;
use tokio::sync::Notify;

use super::WebState;
use super::brand::{Brand, host_of};
use crate::clock::now_ms;
use crate::probe::AddressPolicy;
use crate::ratelimit::{RateLimiter, address_key};
use crate::secrets::Sealer;
use crate::store::{NoticeRecord, StoreError, SubscriberRecord, UNCONFIRMED_KEPT_MS};

/// The purpose of a confirm link's digest.
pub const CONFIRM: &str = "subscriber confirm";
/// The purpose of an unsubscribe link's digest.
pub const UNSUBSCRIBE: &str = "subscriber unsubscribe";
/// The purpose of an address's digest.
const ADDRESS: &str = "subscriber address";
/// A pending address gets another confirmation request after this long at the earliest.
const RESEND_AFTER_MS: i64 = 10 * 60_000;
/// New subscriptions per hour, over all readers: past it the form asks to come back later.
const SIGNUPS_PER_HOUR: i64 = 500;
/// Longest address or webhook URL taken.
const MAX_ADDRESS: usize = 254;
const MAX_URL: usize = 2048;

/// `{base}/subscribe/confirm?s=…&t=…`.
pub fn confirm_link(sealer: &Sealer, s: &SubscriberRecord) -> String {
    link(sealer, s, "/subscribe/confirm", CONFIRM)
}

/// `{base}/unsubscribe?s=…&t=…`: opened, a page with a button; POSTed, done (RFC 8058).
pub fn unsubscribe_link(sealer: &Sealer, s: &SubscriberRecord) -> String {
    link(sealer, s, "/unsubscribe", UNSUBSCRIBE)
}

fn link(sealer: &Sealer, s: &SubscriberRecord, path: &str, purpose: &str) -> String {
    format!(
        "{}{path}?s={}&t={}",
        s.base_url,
        s.id,
        sealer.mac(purpose, &s.id)
    )
}

/// What subscribing needs; `None` in [`WebState`] when subscriptions are off.
pub struct Subscriptions {
    pub sealer: Sealer,
    /// Whether email can be sent (`MCPWATCH_SMTP_URL`): otherwise only webhooks are offered.
    pub email: bool,
    /// Refuses webhook URLs whose literal address is not public (names are checked when sent).
    pub policy: AddressPolicy,
    /// Proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<IpNet>,
    /// The dispatcher's doorbell: a confirmation request goes out at once.
    pub wake: Arc<Notify>,
    /// Sign-ups per client address: a burst of 5, then one every 2 minutes.
    limiter: RateLimiter,
}

impl Subscriptions {
    pub fn new(sealer: Sealer, email: bool, policy: AddressPolicy, wake: Arc<Notify>) -> Self {
        Subscriptions {
            sealer,
            email,
            policy,
            trusted_proxies: Vec::new(),
            wake,
            limiter: RateLimiter::with_period(Duration::from_secs(120), 5),
        }
    }

    /// The origin links for a reader of `brand` go to: the page's own host when it has one
    /// and the reader came by it, else the configured public URL; `None`: no origin anyone
    /// configured, so no subscribing.
    fn base_for(
        &self,
        headers: &HeaderMap,
        brand: &Brand,
        public_url: Option<&str>,
    ) -> Option<String> {
        let asked = host_of(headers);
        if brand.host.is_some() && brand.host == asked {
            let scheme = public_url
                .and_then(|u| u.split_once("://"))
                .map_or("https", |(scheme, _)| scheme);
            let authority = headers.get(header::HOST)?.to_str().ok()?;
            return Some(format!("{scheme}://{authority}"));
        }
        public_url.map(|u| u.trim_end_matches('/').to_string())
    }
}

/// The page a reader of `brand` subscribes to: its id when it has a host of its own, else
/// `default` (so that re-branding or un-branding the default page keeps its subscribers).
pub fn page_id(brand: &Brand) -> &str {
    if brand.host.is_some() {
        &brand.key
    } else {
        "default"
    }
}

/// What the form on `/` offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offer {
    pub email: bool,
}

/// Whether (and how) readers of this page can subscribe.
pub fn offer(app: &WebState, headers: &HeaderMap, brand: &Brand) -> Option<Offer> {
    let subs = app.subscriptions.as_ref()?;
    subs.base_for(headers, brand, app.public_url.as_deref())?;
    Some(Offer { email: subs.email })
}

/// A short page: a heading, words, and maybe a button. It does not refresh itself (the
/// answer to a POST must not turn into a GET of `/subscribe` a minute later).
#[derive(Template)]
#[template(path = "subscribe.html")]
struct NoticePage<'a> {
    brand: &'a Brand,
    heading: &'a str,
    message: String,
    /// (action, button label) of a POST form.
    button: Option<(String, &'a str)>,
}

fn page(status: StatusCode, brand: &Brand, heading: &str, message: String) -> Response {
    render(status, brand, heading, message, None)
}

fn render(
    status: StatusCode,
    brand: &Brand,
    heading: &str,
    message: String,
    button: Option<(String, &str)>,
) -> Response {
    let html = NoticePage {
        brand,
        heading,
        message,
        button,
    }
    .render()
    .unwrap_or_else(|_| format!("<!DOCTYPE html><title>{heading}</title><p>{heading}</p>"));
    let no_store = [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))];
    (status, no_store, Html(html)).into_response()
}

/// A store failure on these pages: said plainly (the address is never in it), logged.
fn unavailable(brand: &Brand, e: StoreError) -> Response {
    tracing::warn!(error = %e, "subscription not handled: the database did not answer");
    page(
        StatusCode::SERVICE_UNAVAILABLE,
        brand,
        "Please try again in a moment",
        "The status page cannot reach its database right now; nothing was changed.".into(),
    )
}

/// The form: one of the two fields.
#[derive(Debug, Deserialize)]
pub struct SubscribeForm {
    email: Option<String>,
    webhook: Option<String>,
}

/// `(kind, address as stored, address as digested)`, or what is wrong with the input.
fn parse_address(
    form: &SubscribeForm,
    subs: &Subscriptions,
) -> Result<(&'static str, String, String), String> {
    fn pick(v: &Option<String>) -> Option<&str> {
        v.as_deref().map(str::trim).filter(|v| !v.is_empty())
    }
    match (pick(&form.email), pick(&form.webhook)) {
        (Some(email), None) => {
            if !subs.email {
                return Err("This page sends no email; subscribe with a webhook instead.".into());
            }
            if email.len() > MAX_ADDRESS || email.parse::<lettre::Address>().is_err() {
                return Err("That is not an email address (name@example.com).".into());
            }
            Ok(("email", email.to_string(), email.to_ascii_lowercase()))
        }
        (None, Some(url)) => {
            webhook_url(url, &subs.policy)?;
            Ok(("webhook", url.to_string(), url.to_string()))
        }
        (Some(_), Some(_)) => Err("Give an email address or a webhook URL, not both.".into()),
        (None, None) => Err("Give an email address (or a webhook URL).".into()),
    }
}

/// An `http(s)` URL with a host, whose literal address (if it is one) is public.
fn webhook_url(url: &str, policy: &AddressPolicy) -> Result<(), String> {
    let bad = || "That is not a webhook URL (https://…).".to_string();
    if url.len() > MAX_URL {
        return Err(bad());
    }
    let parsed = url::Url::parse(url).map_err(|_| bad())?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return Err(bad());
    }
    let literal = match parsed.host() {
        Some(url::Host::Ipv4(v4)) => Some(IpAddr::V4(v4)),
        Some(url::Host::Ipv6(v6)) => Some(IpAddr::V6(v6)),
        _ => None,
    };
    if let Some(Err(_)) = literal.map(|ip| policy.check(ip)) {
        return Err("That webhook's address is not a public one.".into());
    }
    Ok(())
}

/// The digests an address may be stored under: as an email (lower case) and as a URL (as
/// given), so an erasure request finds it whatever it is.
pub fn address_digests(sealer: &Sealer, address: &str) -> Vec<String> {
    let address = address.trim();
    let mut digests = vec![sealer.mac(ADDRESS, &address.to_ascii_lowercase())];
    if address != address.to_ascii_lowercase() {
        digests.push(sealer.mac(ADDRESS, address));
    }
    digests
}

/// The client's address, as the API's limits see it.
fn client_of(peer: Option<SocketAddr>, headers: &HeaderMap, trusted: &[IpNet]) -> String {
    let peer = peer.map_or(IpAddr::from([0, 0, 0, 0]), |p| p.ip());
    let ip = crate::ratelimit::client_ip_from(peer, headers, trusted);
    address_key(ip)
}

/// `POST /subscribe`.
pub async fn subscribe(
    State(app): State<WebState>,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
    Form(form): Form<SubscribeForm>,
) -> Response {
    let brand = app.brand(&headers).await;
    let Some(subs) = app.subscriptions.as_ref() else {
        let why = "This status page does not take subscriptions.".into();
        return page(StatusCode::NOT_FOUND, &brand, "No subscriptions here", why);
    };
    let Some(base) = subs.base_for(&headers, &brand, app.public_url.as_deref()) else {
        let why = "Subscriptions need the page's public address (MCPWATCH_PUBLIC_URL).".into();
        return page(
            StatusCode::SERVICE_UNAVAILABLE,
            &brand,
            "Not available",
            why,
        );
    };
    let peer = extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    let client = client_of(peer, &headers, &subs.trusted_proxies);
    if let Err(wait) = subs.limiter.check(&client) {
        return too_many(&brand, wait);
    }
    let (kind, address, normalised) = match parse_address(&form, subs) {
        Ok(parsed) => parsed,
        Err(why) => return page(StatusCode::BAD_REQUEST, &brand, "Not subscribed", why),
    };
    let mac = subs.sealer.mac(ADDRESS, &normalised);
    let pending = Pending {
        page_id: page_id(&brand),
        kind,
        address: &address,
        mac: &mac,
        base: &base,
    };
    match enrol(&app, subs, pending).await {
        Ok(Enrolled::Sent | Enrolled::Quiet) => {
            subs.wake.notify_one();
            let message = if kind == "email" {
                "If the address can receive mail, a message with a confirmation link is on its \
                 way. Nothing is sent until you open it; unconfirmed addresses are forgotten \
                 in 7 days."
            } else {
                "A confirmation request with a link is being POSTed to the webhook. Nothing else \
                 is sent until that link is opened; unconfirmed webhooks are forgotten in 7 days."
            };
            page(StatusCode::OK, &brand, "Almost done", message.into())
        }
        Ok(Enrolled::Busy) => too_many(&brand, 600),
        Err(e) => unavailable(&brand, e),
    }
}

fn too_many(brand: &Brand, wait: u64) -> Response {
    let mut resp = page(
        StatusCode::TOO_MANY_REQUESTS,
        brand,
        "Too many sign-ups",
        format!("Please try again in {} minutes.", wait.div_ceil(60).max(1)),
    );
    if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

/// A sign-up as entered.
struct Pending<'a> {
    page_id: &'a str,
    kind: &'a str,
    address: &'a str,
    mac: &'a str,
    base: &'a str,
}

/// What a sign-up did (the reader is told the same in every case).
enum Enrolled {
    /// A confirmation request was queued.
    Sent,
    /// Already confirmed, or asked to confirm only minutes ago: nothing sent.
    Quiet,
    /// Too many sign-ups this hour.
    Busy,
}

async fn enrol(
    app: &WebState,
    subs: &Subscriptions,
    p: Pending<'_>,
) -> Result<Enrolled, StoreError> {
    let store = app.store.as_ref();
    let now = now_ms();
    store.forget_unconfirmed(now - UNCONFIRMED_KEPT_MS).await?;
    if let Some(known) = store.find_subscriber(p.page_id, p.kind, p.mac).await? {
        if known.confirmed_at.is_some() || now - known.confirm_sent_at < RESEND_AFTER_MS {
            return Ok(Enrolled::Quiet);
        }
        store
            .resend_confirmation(&NoticeRecord::confirm(&known.id, now))
            .await?;
        return Ok(Enrolled::Sent);
    }
    if store.subscribers_since(now - 3_600_000).await? >= SIGNUPS_PER_HOUR {
        return Ok(Enrolled::Busy);
    }
    let sealed = subs
        .sealer
        .seal(p.address.as_bytes())
        .map_err(|e| StoreError::Database(format!("cannot seal the address: {e}")))?;
    let s = SubscriberRecord {
        id: uuid::Uuid::now_v7().to_string(),
        page_id: p.page_id.to_string(),
        kind: p.kind.to_string(),
        address_enc: sealed,
        address_mac: p.mac.to_string(),
        base_url: p.base.to_string(),
        confirmed_at: None,
        confirm_sent_at: now,
        created_at: now,
    };
    match store
        .insert_subscriber(&s, &NoticeRecord::confirm(&s.id, now))
        .await
    {
        // The same address signed up at the same moment: the other request sent it.
        Err(StoreError::Conflict(_)) => Ok(Enrolled::Quiet),
        other => other.map(|()| Enrolled::Sent),
    }
}

/// `?s=<subscriber id>&t=<digest>`.
#[derive(Debug, Deserialize)]
pub struct LinkQuery {
    s: Option<String>,
    t: Option<String>,
}

/// What a link names.
enum Linked {
    /// No link, or a digest that is not right for it.
    Invalid,
    /// A right link to a subscription that no longer exists.
    Gone,
    Found(SubscriberRecord),
}

/// The subscriber a link names, when its digest is right for `purpose`.
async fn linked(app: &WebState, q: &LinkQuery, purpose: &str) -> Result<Linked, StoreError> {
    let (Some(id), Some(t), Some(subs)) = (&q.s, &q.t, &app.subscriptions) else {
        return Ok(Linked::Invalid);
    };
    if id.len() > 64 || !subs.sealer.mac_matches(purpose, id, t) {
        return Ok(Linked::Invalid);
    }
    Ok(match app.store.get_subscriber(id).await? {
        Some(s) => Linked::Found(s),
        None => Linked::Gone,
    })
}

fn not_valid(brand: &Brand) -> Response {
    page(
        StatusCode::NOT_FOUND,
        brand,
        "This link is not valid",
        "It may be incomplete, or the subscription it was for no longer exists.".into(),
    )
}

fn action(path: &str, q: &LinkQuery) -> String {
    format!(
        "{path}?s={}&t={}",
        q.s.as_deref().unwrap_or(""),
        q.t.as_deref().unwrap_or("")
    )
}

/// `GET /subscribe/confirm`: a button, so that a link opened by a scanner confirms nothing.
pub async fn confirm_form(
    State(app): State<WebState>,
    headers: HeaderMap,
    Query(q): Query<LinkQuery>,
) -> Response {
    let brand = app.brand(&headers).await;
    match linked(&app, &q, CONFIRM).await {
        Ok(Linked::Found(_)) => render(
            StatusCode::OK,
            &brand,
            "Confirm your subscription",
            format!(
                "You will be told about incidents and maintenance on {}.",
                brand.title
            ),
            Some((action("/subscribe/confirm", &q), "Confirm")),
        ),
        Ok(_) => not_valid(&brand),
        Err(e) => unavailable(&brand, e),
    }
}

/// `POST /subscribe/confirm`.
pub async fn confirm(
    State(app): State<WebState>,
    headers: HeaderMap,
    Query(q): Query<LinkQuery>,
) -> Response {
    let brand = app.brand(&headers).await;
    let s = match linked(&app, &q, CONFIRM).await {
        Ok(Linked::Found(s)) => s,
        Ok(_) => return not_valid(&brand),
        Err(e) => return unavailable(&brand, e),
    };
    if let Err(e) = app.store.confirm_subscriber(&s.id, now_ms()).await {
        return unavailable(&brand, e);
    }
    let message = "You will get a notice when an incident or maintenance is posted or updated. \
                   Every notice has a link to unsubscribe in one click.";
    page(StatusCode::OK, &brand, "Subscribed", message.into())
}

/// `GET /unsubscribe`: a button (a prefetched link must not unsubscribe).
pub async fn unsubscribe_form(
    State(app): State<WebState>,
    headers: HeaderMap,
    Query(q): Query<LinkQuery>,
) -> Response {
    let brand = app.brand(&headers).await;
    match linked(&app, &q, UNSUBSCRIBE).await {
        Ok(Linked::Found(_)) => render(
            StatusCode::OK,
            &brand,
            "Unsubscribe",
            format!("Stop notices from {} and delete this address.", brand.title),
            Some((action("/unsubscribe", &q), "Unsubscribe")),
        ),
        Ok(Linked::Gone) => unsubscribed(&brand),
        Ok(Linked::Invalid) => not_valid(&brand),
        Err(e) => unavailable(&brand, e),
    }
}

/// `POST /unsubscribe`: the button, or a mail client's RFC 8058 one-click POST (its body,
/// `List-Unsubscribe=One-Click`, needs no reading: the link alone decides).
pub async fn unsubscribe(
    State(app): State<WebState>,
    headers: HeaderMap,
    Query(q): Query<LinkQuery>,
) -> Response {
    let brand = app.brand(&headers).await;
    let s = match linked(&app, &q, UNSUBSCRIBE).await {
        Ok(Linked::Found(s)) => s,
        // Already gone is what the reader wanted: say so rather than fail a retried POST.
        Ok(Linked::Gone) => return unsubscribed(&brand),
        Ok(Linked::Invalid) => return not_valid(&brand),
        Err(e) => return unavailable(&brand, e),
    };
    match app.store.delete_subscriber(&s.id).await {
        Ok(_) => unsubscribed(&brand),
        Err(e) => unavailable(&brand, e),
    }
}

fn unsubscribed(brand: &Brand) -> Response {
    let message = "You will get no more notices, and the address has been deleted.";
    page(StatusCode::OK, brand, "Unsubscribed", message.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subs() -> Subscriptions {
        Subscriptions::new(
            Sealer::new(&[3; 32]),
            true,
            AddressPolicy::public_only(),
            Arc::new(Notify::new()),
        )
    }

    fn host(h: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_str(h).unwrap());
        headers
    }

    #[test]
    fn links_go_only_to_an_origin_someone_configured() {
        let s = subs();
        let default = Brand::default();
        let public = Some("https://status.example.com/");
        // A Host nobody configured never becomes a link: mail must not carry an attacker's.
        assert_eq!(
            s.base_for(&host("evil.test"), &default, public).as_deref(),
            Some("https://status.example.com")
        );
        assert_eq!(s.base_for(&host("evil.test"), &default, None), None);
        let acme = Brand {
            key: "p1".into(),
            host: Some("status.acme.test".into()),
            ..Brand::default()
        };
        assert_eq!(
            s.base_for(&host("Status.Acme.test:8080"), &acme, public)
                .as_deref(),
            Some("https://Status.Acme.test:8080"),
            "a branded page's own host, with the public URL's scheme"
        );
        assert_eq!(page_id(&acme), "p1");
        assert_eq!(page_id(&default), "default");
    }

    #[test]
    fn a_confirm_link_cannot_unsubscribe_and_addresses_are_normalised() {
        let s = subs();
        let r = SubscriberRecord {
            id: "0193-a".into(),
            page_id: "default".into(),
            kind: "email".into(),
            address_enc: String::new(),
            address_mac: String::new(),
            base_url: "https://status.example.com".into(),
            confirmed_at: None,
            confirm_sent_at: 0,
            created_at: 0,
        };
        let confirm = confirm_link(&s.sealer, &r);
        let token = confirm.rsplit("t=").next().unwrap();
        assert!(confirm.starts_with("https://status.example.com/subscribe/confirm?s=0193-a&t="));
        assert!(s.sealer.mac_matches(CONFIRM, "0193-a", token));
        assert!(!s.sealer.mac_matches(UNSUBSCRIBE, "0193-a", token));
        assert!(
            unsubscribe_link(&s.sealer, &r).starts_with("https://status.example.com/unsubscribe?")
        );

        let form = |email: &str, webhook: &str| SubscribeForm {
            email: Some(email.into()),
            webhook: Some(webhook.into()),
        };
        let (kind, kept, digested) = parse_address(&form(" Reader@Example.TEST ", ""), &s).unwrap();
        assert_eq!(
            (kind, kept.as_str(), digested.as_str()),
            ("email", "Reader@Example.TEST", "reader@example.test")
        );
        assert_eq!(
            address_digests(&s.sealer, "READER@example.test")[0],
            s.sealer.mac(ADDRESS, &digested),
            "an erasure request finds the address whatever its case"
        );
        assert!(parse_address(&form("", "https://[::1]/hook"), &s).is_err());
        assert!(parse_address(&form("", "https://hooks.example.com/x?token=1"), &s).is_ok());
        let no_mail = Subscriptions {
            email: false,
            ..subs()
        };
        assert!(
            parse_address(&form("a@b.test", ""), &no_mail)
                .unwrap_err()
                .contains("no email")
        );
    }
}
