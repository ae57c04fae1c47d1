//! What the network hooks saw during one probe: timestamps of the DNS lookup, the TCP connect
//! and the TLS handshake (for the timings), the certificate, and why a connection failed.
//! [`ConnTimingLayer`] times reqwest's connector; the resolver (`dns.rs`) and the TLS hooks
//! (`tls.rs`) report into the same [`Recorder`].

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use super::policy::BlockedAddress;
use super::report::Phase;

/// Timestamps of one connection.
#[derive(Debug, Default, Clone, Copy)]
struct ConnProgress {
    start: Option<Instant>,
    dns_start: Option<Instant>,
    dns_end: Option<Instant>,
    tls_start: Option<Instant>,
    end: Option<Instant>,
}

impl ConnProgress {
    fn ms(a: Option<Instant>, b: Option<Instant>) -> Option<f64> {
        Some(round_ms(
            b?.saturating_duration_since(a?).as_secs_f64() * 1000.0,
        ))
    }
}

/// Milliseconds with microsecond precision, for stable JSON.
pub(crate) fn round_ms(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

#[derive(Debug, Default)]
struct RecState {
    current: ConnProgress,
    first: Option<ConnProgress>,
    cert_not_after: Option<i64>,
    tls_error: Option<String>,
    blocked: Option<BlockedAddress>,
    dns_error: Option<String>,
}

/// What the network hooks saw during one probe.
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    state: Mutex<RecState>,
}

/// Connection-level timings of the probe's first connection.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub(crate) struct ConnTimings {
    pub dns: Option<f64>,
    pub connect: Option<f64>,
    pub tls: Option<f64>,
    /// dns + connect + tls, to subtract from the step that opened the connection.
    pub total: Option<f64>,
}

impl Recorder {
    fn with<T>(&self, f: impl FnOnce(&mut RecState) -> T) -> T {
        // A poisoned lock only means another hook panicked; the data is still usable.
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }

    fn conn_started(&self) {
        self.with(|s| {
            s.current = ConnProgress {
                start: Some(Instant::now()),
                ..ConnProgress::default()
            }
        });
    }

    fn conn_finished(&self) {
        self.with(|s| {
            s.current.end = Some(Instant::now());
            if s.first.is_none() {
                s.first = Some(s.current);
            }
        });
    }

    pub(crate) fn dns_started(&self) {
        self.with(|s| s.current.dns_start = Some(Instant::now()));
    }

    pub(crate) fn dns_finished(&self) {
        self.with(|s| s.current.dns_end = Some(Instant::now()));
    }

    pub(crate) fn tls_started(&self) {
        self.with(|s| {
            if s.current.tls_start.is_none() && s.current.end.is_none() {
                s.current.tls_start = Some(Instant::now());
            }
        });
    }

    pub(crate) fn cert_seen(&self, not_after: i64) {
        self.with(|s| {
            s.cert_not_after.get_or_insert(not_after);
        });
    }

    pub(crate) fn tls_error(&self, message: String) {
        self.with(|s| s.tls_error = Some(message));
    }

    pub(crate) fn dns_failed(&self, message: String) {
        self.with(|s| s.dns_error = Some(message));
    }

    pub(crate) fn blocked(&self, address: BlockedAddress) {
        self.with(|s| s.blocked = Some(address));
    }

    /// For classifying a failed request: the recorded TLS error, whether TLS had started, and
    /// whether a connection attempt is still open (it failed before completing).
    pub(crate) fn failure_context(&self) -> (Option<String>, bool, bool) {
        self.with(|s| {
            (
                s.tls_error.clone(),
                s.current.tls_start.is_some(),
                s.current.end.is_none(),
            )
        })
    }

    pub(crate) fn cert_not_after(&self) -> Option<i64> {
        self.with(|s| s.cert_not_after)
    }

    /// The network phase a connection in progress is in, if one is.
    pub(crate) fn in_flight_phase(&self) -> Option<Phase> {
        self.with(|s| {
            let c = s.current;
            if c.start.is_none() || c.end.is_some() {
                None
            } else if c.tls_start.is_some() {
                Some(Phase::Tls)
            } else if c.dns_start.is_some() && c.dns_end.is_none() {
                Some(Phase::Dns)
            } else {
                Some(Phase::Connect)
            }
        })
    }

    /// Timings of the first completed connection.
    pub(crate) fn conn_timings(&self) -> ConnTimings {
        self.with(|s| {
            let Some(c) = s.first else {
                return ConnTimings::default();
            };
            let dns = ConnProgress::ms(c.dns_start, c.dns_end);
            let connect_from = c.dns_end.or(c.start);
            let connect = ConnProgress::ms(connect_from, c.tls_start.or(c.end));
            let tls = ConnProgress::ms(c.tls_start, c.end);
            ConnTimings {
                dns,
                connect,
                tls,
                total: ConnProgress::ms(c.start, c.end),
            }
        })
    }
}

/// Times reqwest's connector (DNS + TCP + TLS) without naming its sealed types.
#[derive(Clone)]
pub(crate) struct ConnTimingLayer(pub(crate) Arc<Recorder>);

impl<S> tower_layer::Layer<S> for ConnTimingLayer {
    type Service = ConnTiming<S>;
    fn layer(&self, inner: S) -> Self::Service {
        ConnTiming {
            inner,
            recorder: self.0.clone(),
        }
    }
}

#[derive(Clone)]
pub(crate) struct ConnTiming<S> {
    inner: S,
    recorder: Arc<Recorder>,
}

impl<S, Req> tower_service::Service<Req> for ConnTiming<S>
where
    S: tower_service::Service<Req>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        self.recorder.conn_started();
        let fut = self.inner.call(req);
        let recorder = self.recorder.clone();
        Box::pin(async move {
            let result = fut.await;
            recorder.conn_finished();
            result
        })
    }
}
