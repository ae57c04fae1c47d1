//! TLS for the probe: one rustls configuration built once (roots loaded once), specialised per
//! probe with two small hooks that let us see what an ordinary client hides:
//!
//! - a session store that never resumes (every probe does a full handshake, so certificate
//!   problems are never masked by a cached session) and records when the handshake starts,
//!   which splits "connect" from "TLS" in the timings;
//! - a verifier wrapper that records the leaf certificate's expiry and the verification error,
//!   then delegates to webpki unchanged.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ClientSessionStore, Resumption, Tls12Resumption, WebPkiServerVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, NamedGroup, RootCertStore, SignatureScheme};

use super::net::Recorder;

/// Building the TLS configuration failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsSetupError {
    /// A PEM file of extra roots could not be read or holds no certificate.
    #[error("cannot load CA certificates from {path}: {reason}")]
    Roots { path: String, reason: String },
    /// rustls refused the configuration.
    #[error("TLS configuration error: {0}")]
    Config(String),
}

/// The verifier and base configuration shared by every probe.
#[derive(Clone)]
pub struct TlsBase {
    verifier: Arc<WebPkiServerVerifier>,
    config: ClientConfig,
}

impl std::fmt::Debug for TlsBase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsBase")
    }
}

impl TlsBase {
    /// Mozilla's roots plus any extra PEM certificates (a private CA).
    pub fn new(extra_roots: &[CertificateDer<'static>]) -> Result<Self, TlsSetupError> {
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for cert in extra_roots {
            roots
                .add(cert.clone())
                .map_err(|e| TlsSetupError::Config(format!("extra root rejected: {e}")))?;
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| TlsSetupError::Config(e.to_string()))?;
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsSetupError::Config(e.to_string()))?
            .with_webpki_verifier(verifier.clone())
            .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(TlsBase { verifier, config })
    }

    /// Load PEM certificates from a file (for `--cacert`).
    pub fn load_pem(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
        use rustls::pki_types::pem::PemObject;
        let err = |reason: String| TlsSetupError::Roots {
            path: path.display().to_string(),
            reason,
        };
        let certs: Vec<_> = CertificateDer::pem_file_iter(path)
            .map_err(|e| err(e.to_string()))?
            .collect::<Result<_, _>>()
            .map_err(|e| err(e.to_string()))?;
        if certs.is_empty() {
            return Err(err("no CERTIFICATE block found".to_string()));
        }
        Ok(certs)
    }

    /// The configuration for one probe, reporting into `recorder`.
    pub(crate) fn for_probe(&self, recorder: Arc<Recorder>) -> ClientConfig {
        let mut config = self.config.clone();
        config.resumption = Resumption::store(Arc::new(HandshakeClock {
            recorder: recorder.clone(),
        }))
        .tls12_resumption(Tls12Resumption::Disabled);
        config
            .dangerous()
            .set_certificate_verifier(Arc::new(RecordingVerifier {
                inner: self.verifier.clone(),
                recorder,
            }));
        config
    }
}

/// A session store that stores nothing and notes when rustls first consults it, which it does
/// while building the ClientHello: the start of the TLS handshake.
#[derive(Debug)]
struct HandshakeClock {
    recorder: Arc<Recorder>,
}

impl ClientSessionStore for HandshakeClock {
    fn set_kx_hint(&self, _: ServerName<'static>, _: NamedGroup) {}
    fn kx_hint(&self, _: &ServerName<'_>) -> Option<NamedGroup> {
        self.recorder.tls_started();
        None
    }
    fn set_tls12_session(
        &self,
        _: ServerName<'static>,
        _: rustls::client::Tls12ClientSessionValue,
    ) {
    }
    fn tls12_session(&self, _: &ServerName<'_>) -> Option<rustls::client::Tls12ClientSessionValue> {
        self.recorder.tls_started();
        None
    }
    fn remove_tls12_session(&self, _: &ServerName<'static>) {}
    fn insert_tls13_ticket(
        &self,
        _: ServerName<'static>,
        _: rustls::client::Tls13ClientSessionValue,
    ) {
    }
    fn take_tls13_ticket(
        &self,
        _: &ServerName<'static>,
    ) -> Option<rustls::client::Tls13ClientSessionValue> {
        self.recorder.tls_started();
        None
    }
}

/// Delegates to webpki; records the leaf's expiry and any verification error on the way.
#[derive(Debug)]
struct RecordingVerifier {
    inner: Arc<WebPkiServerVerifier>,
    recorder: Arc<Recorder>,
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(not_after) = cert_not_after(end_entity.as_ref()) {
            self.recorder.cert_seen(not_after);
        }
        let result = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        );
        if let Err(e) = &result {
            self.recorder.tls_error(describe_tls_error(e));
        }
        result
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A certificate error in words an operator acts on.
pub(crate) fn describe_tls_error(e: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            C::Expired | C::ExpiredContext { .. } => "certificate has expired".to_string(),
            C::NotValidYet | C::NotValidYetContext { .. } => {
                "certificate is not valid yet".to_string()
            }
            C::UnknownIssuer => {
                "certificate is not signed by a trusted CA (unknown issuer)".to_string()
            }
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                "certificate is not valid for this host name".to_string()
            }
            C::Revoked => "certificate has been revoked".to_string(),
            C::BadSignature => "certificate has a bad signature".to_string(),
            other => format!("invalid certificate: {other:?}"),
        },
        other => other.to_string(),
    }
}

/// The notAfter of an X.509 certificate as Unix seconds, read with a minimal DER walk:
/// Certificate → tbsCertificate → [version] serial sigAlg issuer **validity** → notAfter.
pub fn cert_not_after(der: &[u8]) -> Option<i64> {
    let (cert, _) = der_element(der, 0x30)?;
    let (mut tbs, _) = der_element(cert, 0x30)?;
    if tbs.first() == Some(&0xA0) {
        tbs = der_skip(tbs)?; // [0] EXPLICIT version
    }
    tbs = der_skip(tbs)?; // serialNumber
    tbs = der_skip(tbs)?; // signature AlgorithmIdentifier
    tbs = der_skip(tbs)?; // issuer
    let (validity, _) = der_element(tbs, 0x30)?;
    let after_not_before = der_skip(validity)?;
    let tag = *after_not_before.first()?;
    let (time, _) = der_element(after_not_before, tag)?;
    parse_asn1_time(tag, time)
}

/// The contents of the element at the start of `input` if it has `tag`, and the rest.
fn der_element(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    if *input.first()? != tag {
        return None;
    }
    let (len, header) = der_length(&input[1..])?;
    let start = 1 + header;
    let end = start.checked_add(len)?;
    Some((input.get(start..end)?, input.get(end..)?))
}

fn der_skip(input: &[u8]) -> Option<&[u8]> {
    let tag = *input.first()?;
    der_element(input, tag).map(|(_, rest)| rest)
}

/// (length, bytes used by the length field).
fn der_length(input: &[u8]) -> Option<(usize, usize)> {
    let first = *input.first()?;
    if first < 0x80 {
        return Some((usize::from(first), 1));
    }
    let count = usize::from(first & 0x7f);
    if count == 0 || count > 4 {
        return None;
    }
    let mut len = 0usize;
    for b in input.get(1..=count)? {
        len = (len << 8) | usize::from(*b);
    }
    Some((len, 1 + count))
}

/// UTCTime (0x17, YYMMDDHHMMSSZ) or GeneralizedTime (0x18, YYYYMMDDHHMMSSZ) → Unix seconds.
fn parse_asn1_time(tag: u8, bytes: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(bytes).ok()?.strip_suffix('Z')?;
    let (year, rest) = match tag {
        0x17 if s.len() == 12 => {
            let yy: i32 = s[..2].parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &s[2..])
        }
        0x18 if s.len() == 14 => (s[..4].parse().ok()?, &s[4..]),
        _ => return None,
    };
    let num = |i: usize| -> Option<u8> { rest.get(i..i + 2)?.parse().ok() };
    let month = time::Month::try_from(num(0)?).ok()?;
    let date = time::Date::from_calendar_date(year, month, num(2)?).ok()?;
    let clock = time::Time::from_hms(num(4)?, num(6)?, num(8)?).ok()?;
    Some(
        time::PrimitiveDateTime::new(date, clock)
            .assume_utc()
            .unix_timestamp(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Wrap `content` in a DER element with `tag`.
    fn el(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        if content.len() < 0x80 {
            out.push(content.len() as u8);
        } else {
            out.push(0x82);
            out.extend_from_slice(&(content.len() as u16).to_be_bytes());
        }
        out.extend_from_slice(content);
        out
    }

    fn fake_cert(not_after: (u8, &str)) -> Vec<u8> {
        let validity = [
            el(0x17, b"250101000000Z"),
            el(not_after.0, not_after.1.as_bytes()),
        ]
        .concat();
        let padding = vec![0x41u8; 200]; // force a long-form length in the outer elements
        let tbs = [
            el(0xA0, &el(0x02, &[2])),
            el(0x02, &[1, 2, 3]),
            el(0x30, &el(0x06, &[1, 2])),
            el(0x30, &el(0x31, &padding)),
            el(0x30, &validity),
        ]
        .concat();
        el(
            0x30,
            &[el(0x30, &tbs), el(0x30, &[]), el(0x03, &[0])].concat(),
        )
    }

    #[test]
    fn reads_not_after_in_both_time_forms() {
        // 2030-06-15T12:30:45Z
        let expected = 1_907_757_045;
        assert_eq!(
            cert_not_after(&fake_cert((0x17, "300615123045Z"))),
            Some(expected)
        );
        assert_eq!(
            cert_not_after(&fake_cert((0x18, "20300615123045Z"))),
            Some(expected)
        );
        // UTCTime years 50-99 are 19xx.
        assert_eq!(cert_not_after(&fake_cert((0x17, "700101000000Z"))), Some(0));
    }

    #[test]
    fn garbage_is_none_not_a_panic() {
        assert_eq!(cert_not_after(&[]), None);
        assert_eq!(cert_not_after(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(cert_not_after(&fake_cert((0x17, "301315123045Z"))), None);
        let full = fake_cert((0x17, "300615123045Z"));
        for cut in 0..full.len() {
            let _ = cert_not_after(&full[..cut]);
        }
    }
}
