//! Test support: fake MCP servers and helpers shared by the integration tests.
#![allow(dead_code)]

pub mod fake_mcp;

use mcpwatch::probe::{AddressPolicy, ProbeReport, ProbeTarget, Prober, ProberConfig};

/// A prober that may reach loopback (where every test server lives) and nothing private else.
pub fn loopback_prober() -> Prober {
    let policy = AddressPolicy::parse_allow_list("127.0.0.0/8,::1/128").unwrap();
    Prober::new(ProberConfig {
        policy,
        ..ProberConfig::default()
    })
    .unwrap()
}

/// Probe `url` with the loopback prober after `tweak` adjusts the target.
pub async fn probe_with(url: &str, tweak: impl FnOnce(&mut ProbeTarget)) -> ProbeReport {
    let mut target = ProbeTarget::new(url.parse().unwrap());
    target.timeout = std::time::Duration::from_secs(5);
    tweak(&mut target);
    loopback_prober().probe(&target).await
}

pub async fn probe(url: &str) -> ProbeReport {
    probe_with(url, |_| {}).await
}
pub mod admin;
pub mod app;
pub mod browser;
pub mod contract;
pub mod db;
pub mod fixtures;
pub mod foreign;
pub mod nginx;
pub mod oauth_as;
pub mod opsgenie;
pub mod pagerduty;
pub mod pgbouncer;
pub mod private_pg;
pub mod proc;
pub mod registry;
pub mod seed;
pub mod smtp;
pub mod webhook_rx;

/// What a check of [`eventually`] says: done, or what it still sees.
pub trait Pending {
    /// `None` when the awaited state is reached; otherwise what was seen instead.
    fn pending(self) -> Option<String>;
}

impl Pending for bool {
    fn pending(self) -> Option<String> {
        (!self).then(|| "not yet".to_string())
    }
}

impl Pending for Option<String> {
    fn pending(self) -> Option<String> {
        self
    }
}

/// Wait until `check` holds, polling every 100 ms, for at most `bound`; fails naming `what`
/// and, when the check says it, what it last saw. Waits for an event instead of sleeping in
/// its stead.
pub async fn eventually<P: Pending>(
    what: &str,
    bound: std::time::Duration,
    mut check: impl AsyncFnMut() -> P,
) {
    let start = std::time::Instant::now();
    while let Some(last) = check().await.pending() {
        assert!(
            start.elapsed() < bound,
            "{what}: not within {bound:?}; last: {last}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
