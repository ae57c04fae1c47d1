//! Rate limits on GCRA (governor) keyed by a string, on tokio's clock, and the client address
//! a limit is keyed by (`X-Forwarded-For` only from a trusted proxy). Used by the API's
//! authentication and by the public subscription form; depends on nothing of ours.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request};
use axum::http::HeaderMap;
use governor::clock::Clock as _;
use ipnet::IpNet;

/// A rate limit per key (an API key id, or a client address), on GCRA: `per_minute` requests
/// a minute with bursts up to the same number. Runs on tokio's clock, so tests with paused
/// time drive it.
pub struct RateLimiter {
    limiter: governor::RateLimiter<
        String,
        governor::state::keyed::DashMapStateStore<String>,
        TokioClock,
        governor::middleware::NoOpMiddleware<TokioInstant>,
    >,
}

impl RateLimiter {
    pub fn new(per_minute: u32) -> Self {
        let per_minute =
            std::num::NonZeroU32::new(per_minute.max(1)).unwrap_or(std::num::NonZeroU32::MIN);
        Self::of(governor::Quota::per_minute(per_minute))
    }

    /// One request every `period`, with bursts up to `burst`.
    pub fn with_period(period: Duration, burst: u32) -> Self {
        let burst = std::num::NonZeroU32::new(burst.max(1)).unwrap_or(std::num::NonZeroU32::MIN);
        let quota = governor::Quota::with_period(period.max(Duration::from_millis(1))).map_or_else(
            || governor::Quota::per_second(burst),
            |q| q.allow_burst(burst),
        );
        Self::of(quota)
    }

    fn of(quota: governor::Quota) -> Self {
        RateLimiter {
            limiter: governor::RateLimiter::dashmap_with_clock(quota, TokioClock),
        }
    }

    /// `Ok`, or the whole seconds to wait (at least 1).
    pub fn check(&self, key: &str) -> Result<(), u64> {
        if self.limiter.len() > 100_000 {
            // Forget keys whose buckets are full again, so the map cannot grow without bound.
            self.limiter.retain_recent();
        }
        self.limiter
            .check_key(&key.to_string())
            .map_err(|not_until| {
                let wait = not_until.wait_time_from(TokioClock.now());
                wait.as_secs_f64().ceil().max(1.0) as u64
            })
    }
}

/// The key a client address is limited by: an IPv4 address, or the /64 an IPv6 address is in
/// (one host can use a whole /64, so per-address keys would not limit it at all).
pub fn address_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// An instant on tokio's clock, for governor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TokioInstant(tokio::time::Instant);

impl std::ops::Add<governor::nanos::Nanos> for TokioInstant {
    type Output = TokioInstant;

    fn add(self, other: governor::nanos::Nanos) -> TokioInstant {
        TokioInstant(self.0 + Duration::from(other))
    }
}

impl governor::clock::Reference for TokioInstant {
    fn duration_since(&self, earlier: Self) -> governor::nanos::Nanos {
        self.0.saturating_duration_since(earlier.0).into()
    }

    fn saturating_sub(&self, duration: governor::nanos::Nanos) -> Self {
        TokioInstant(self.0.checked_sub(duration.into()).unwrap_or(self.0))
    }
}

/// tokio's clock, for governor.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioClock;

impl governor::clock::Clock for TokioClock {
    type Instant = TokioInstant;

    fn now(&self) -> TokioInstant {
        TokioInstant(tokio::time::Instant::now())
    }
}

/// The client's address: the peer's, or, when the peer is a trusted proxy, the right-most
/// `X-Forwarded-For` entry that is not itself a trusted proxy (entries further left are
/// whatever the client chose to send).
pub fn client_ip(req: &Request, trusted: &[IpNet]) -> IpAddr {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]));
    client_ip_from(peer, req.headers(), trusted)
}

/// [`client_ip`] from the peer's address and the request's headers.
pub fn client_ip_from(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    forwarded
        .into_iter()
        .rev()
        .find(|ip| !is_trusted(ip))
        .unwrap_or(peer)
}
