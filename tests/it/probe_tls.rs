//! TLS against a real HTTPS fake: certificates minted per test with a private CA. The probe
//! must split connect from TLS time, record the leaf's expiry, and name the certificate
//! problem when verification fails.

use crate::support;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use mcpwatch::probe::{
    AddressPolicy, FailureKind, Phase, ProbeTarget, Prober, ProberConfig, Verdict,
};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use support::fake_mcp::{FakeConfig, FakeServer};
use time::{Duration, OffsetDateTime};

/// A CA, and leaves it signs.
struct Ca {
    params: CertificateParams,
    key: KeyPair,
    der: CertificateDer<'static>,
}

impl Ca {
    fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().unwrap();
        let der = params.self_signed(&key).unwrap().der().clone();
        Ca { params, key, der }
    }

    /// A leaf for `name`, valid from `not_before` to `not_after` (offsets from now).
    fn leaf(
        &self,
        name: &str,
        not_before: Duration,
        not_after: Duration,
    ) -> (CertificateDer<'static>, KeyPair, OffsetDateTime) {
        let mut params = CertificateParams::new(vec![name.to_string()]).unwrap();
        let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
        params.not_before = now + not_before;
        params.not_after = now + not_after;
        let key = KeyPair::generate().unwrap();
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).unwrap();
        (cert.der().clone(), key, params.not_after)
    }
}

fn server_config(
    cert: CertificateDer<'static>,
    key: &KeyPair,
) -> Arc<tokio_rustls::rustls::ServerConfig> {
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let cfg = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    Arc::new(cfg)
}

/// A prober that trusts `roots`, maps mcp.test to 127.0.0.1, and may reach loopback.
fn prober(roots: Vec<CertificateDer<'static>>) -> Prober {
    Prober::new(ProberConfig {
        policy: AddressPolicy::parse_allow_list("127.0.0.0/8").unwrap(),
        extra_roots: roots,
        hosts: HashMap::from([(
            "mcp.test".to_string(),
            vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
        )]),
    })
    .unwrap()
}

fn target(fake: &FakeServer) -> ProbeTarget {
    ProbeTarget::new(
        format!("https://mcp.test:{}/mcp", fake.addr.port())
            .parse()
            .unwrap(),
    )
}

#[tokio::test]
async fn trusted_certificate_is_up_with_expiry_and_split_timings() {
    let ca = Ca::new();
    let (cert, key, not_after) = ca.leaf("mcp.test", Duration::days(-1), Duration::days(30));
    let fake = FakeServer::start_tls(FakeConfig::default(), server_config(cert, &key)).await;
    let r = prober(vec![ca.der.clone()]).probe(&target(&fake)).await;
    assert_eq!(r.verdict, Verdict::Up, "{r:#?}");
    let tls = r.tls.expect("certificate info for https");
    assert_eq!(tls.not_after_unix, not_after.unix_timestamp());
    let t = &r.timings_ms;
    assert!(
        t.dns.is_some() && t.connect.is_some() && t.tls.is_some(),
        "{t:?}"
    );
    assert!(t.tls.unwrap() > 0.0, "the TLS handshake takes time: {t:?}");
}

#[tokio::test]
async fn untrusted_issuer_is_tls_with_the_reason() {
    let ca = Ca::new();
    let (cert, key, _) = ca.leaf("mcp.test", Duration::days(-1), Duration::days(30));
    let fake = FakeServer::start_tls(FakeConfig::default(), server_config(cert, &key)).await;
    let r = prober(Vec::new()).probe(&target(&fake)).await;
    let f = r.failure.expect("down");
    assert_eq!(
        (f.kind, f.phase),
        (FailureKind::Tls, Phase::Tls),
        "{}",
        f.message
    );
    assert!(f.message.contains("unknown issuer"), "{}", f.message);
    assert!(
        r.tls.is_some(),
        "expiry is recorded even when verification fails"
    );
    fake.seen(|s| assert!(s.methods.is_empty()));
}

#[tokio::test]
async fn expired_certificate_is_tls_expired() {
    let ca = Ca::new();
    let (cert, key, _) = ca.leaf("mcp.test", Duration::days(-60), Duration::days(-1));
    let fake = FakeServer::start_tls(FakeConfig::default(), server_config(cert, &key)).await;
    let r = prober(vec![ca.der.clone()]).probe(&target(&fake)).await;
    let f = r.failure.expect("down");
    assert_eq!(f.kind, FailureKind::Tls);
    assert!(f.message.contains("expired"), "{}", f.message);
}

#[tokio::test]
async fn wrong_host_name_is_tls_name_mismatch() {
    let ca = Ca::new();
    let (cert, key, _) = ca.leaf("other.test", Duration::days(-1), Duration::days(30));
    let fake = FakeServer::start_tls(FakeConfig::default(), server_config(cert, &key)).await;
    let r = prober(vec![ca.der.clone()]).probe(&target(&fake)).await;
    let f = r.failure.expect("down");
    assert_eq!(f.kind, FailureKind::Tls);
    assert!(
        f.message.contains("not valid for this host name"),
        "{}",
        f.message
    );
}

#[tokio::test]
async fn plain_http_server_on_https_url_is_tls() {
    let fake = FakeServer::start(FakeConfig::default()).await;
    let r = prober(Vec::new()).probe(&target(&fake)).await;
    let f = r.failure.expect("down");
    assert_eq!(
        (f.kind, f.phase),
        (FailureKind::Tls, Phase::Tls),
        "{}",
        f.message
    );
}
