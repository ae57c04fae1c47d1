//! The credential-expiry watchdog: which of a server's probe credentials expire and when (the
//! `exp` of a static bearer JWT, read without trusting the token otherwise; the `expires_at`
//! an operator gives an OAuth client secret or key), and which warning is due at a moment.
//! [`watch`] is the leader's loop that sends `credential.expiring` and `credential.expired`.
//!
//! A monitor whose credential lapses reports a healthy server as `auth_failed`; warning a
//! week and a day ahead lets the operator rotate it before anyone is paged.

pub mod watch;

use std::time::Duration;

use base64::Engine;
use serde::Serialize;

use crate::store::ServerRecord;

/// The lead times warned at unless configured (`MCPWATCH_CREDENTIAL_WARN`).
pub const DEFAULT_LEADS: [Duration; 2] =
    [Duration::from_secs(7 * 86_400), Duration::from_secs(86_400)];

/// A probe credential that can expire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    /// A static `Authorization: Bearer` JWT among the probe headers (its `exp`).
    Bearer,
    /// The OAuth client secret or private key (the `expires_at` the operator set).
    OauthClient,
}

impl CredentialKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::Bearer => "bearer",
            CredentialKind::OauthClient => "oauth_client",
        }
    }

    /// The credential in words, for alerts.
    pub fn describe(self) -> &'static str {
        match self {
            CredentialKind::Bearer => "the bearer token in its probe headers",
            CredentialKind::OauthClient => "its OAuth client secret or key",
        }
    }
}

/// One credential of a server and when it expires (Unix ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expiry {
    pub credential: CredentialKind,
    pub expires_at: i64,
}

/// The server's credentials with a known expiry.
pub fn expiries(s: &ServerRecord) -> Vec<Expiry> {
    let mut out = Vec::new();
    if let Some(at) = s.bearer_expires_at {
        out.push(Expiry {
            credential: CredentialKind::Bearer,
            expires_at: at,
        });
    }
    if let Some(at) = s.oauth_shown().and_then(|o| o.expires_at) {
        out.push(Expiry {
            credential: CredentialKind::OauthClient,
            expires_at: at,
        });
    }
    out
}

/// The `exp` (Unix ms) of a JWT, read from its payload without checking its signature: the
/// watchdog only needs to know when the server will stop accepting it.
pub fn jwt_exp(token: &str) -> Option<i64> {
    let mut parts = token.trim().split('.');
    let (_header, payload, _sig) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let exp = claims.get("exp")?;
    let seconds = exp.as_i64().or_else(|| exp.as_f64().map(|f| f as i64))?;
    seconds.checked_mul(1000)
}

/// The `exp` of the `Authorization: Bearer` JWT among these headers, if there is one.
pub fn bearer_exp(headers: &[(String, String)]) -> Option<i64> {
    let (_, value) = headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("authorization"))?;
    let (scheme, token) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    jwt_exp(token)
}

/// A warning about one credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// It expires within this lead time.
    Expiring(Duration),
    /// It has expired.
    Expired,
}

impl Stage {
    /// The name the sent-warnings table keeps: `expiring:<seconds>` or `expired`.
    pub fn key(self) -> String {
        match self {
            Stage::Expiring(lead) => format!("expiring:{}", lead.as_secs()),
            Stage::Expired => "expired".into(),
        }
    }
}

/// The most urgent warning due at `now` for a credential expiring at `expires_at`: expired
/// once it has passed, else the shortest lead time it is within. A credential first seen a
/// day before it expires gets the one-day warning only, not the week's as well.
pub fn due(expires_at: i64, now: i64, leads: &[Duration]) -> Option<Stage> {
    if now >= expires_at {
        return Some(Stage::Expired);
    }
    let left = (expires_at - now) as u128;
    leads
        .iter()
        .filter(|lead| left <= lead.as_millis())
        .min()
        .map(|lead| Stage::Expiring(*lead))
}

/// A lead time in words: "7 days", "1 day", "12 hours".
pub fn lead_words(lead: Duration) -> String {
    let hours = lead.as_secs() / 3600;
    match (hours % 24, hours / 24) {
        (0, 1) => "1 day".into(),
        (0, d) if d > 0 => format!("{d} days"),
        (_, _) if hours == 1 => "1 hour".into(),
        (_, _) if hours > 0 => format!("{hours} hours"),
        _ => format!("{} minutes", lead.as_secs() / 60),
    }
}

/// `MCPWATCH_CREDENTIAL_WARN`: lead times such as `7d,1d,12h` (days or hours, 1 hour to a
/// year), longest first.
pub fn parse_leads(text: &str) -> Result<Vec<Duration>, String> {
    let mut leads = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (number, unit) = part.split_at(part.len() - 1);
        let hours = match (number.parse::<u64>(), unit) {
            (Ok(n), "d") => n.checked_mul(24),
            (Ok(n), "h") => Some(n),
            _ => None,
        }
        .filter(|h| (1..=24 * 366).contains(h))
        .ok_or_else(|| format!("'{part}' is not a lead time such as 7d or 12h (1h to 366d)"))?;
        leads.push(Duration::from_secs(hours * 3600));
    }
    if leads.is_empty() {
        return Err("give at least one lead time, e.g. 7d,1d".into());
    }
    leads.sort_by(|a, b| b.cmp(a));
    leads.dedup();
    Ok(leads)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: &str) -> String {
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        format!("{}.{}.sig", b64(r#"{"alg":"RS256"}"#), b64(claims))
    }

    #[test]
    fn the_exp_of_a_bearer_jwt_is_read_without_its_signature() {
        let headers = vec![(
            "Authorization".to_string(),
            format!("Bearer {}", jwt(r#"{"sub":"probe","exp":1900000000}"#)),
        )];
        assert_eq!(bearer_exp(&headers), Some(1_900_000_000_000));
        let opaque = vec![("Authorization".to_string(), "Bearer abc.def".to_string())];
        assert_eq!(bearer_exp(&opaque), None);
        let no_exp = vec![(
            "authorization".to_string(),
            format!("bearer {}", jwt(r#"{"sub":"x"}"#)),
        )];
        assert_eq!(bearer_exp(&no_exp), None);
        let basic = vec![("Authorization".to_string(), "Basic dTpw".to_string())];
        assert_eq!(bearer_exp(&basic), None);
        assert_eq!(jwt_exp("not-a-jwt"), None);
    }

    #[test]
    fn the_most_urgent_warning_is_due() {
        let leads = DEFAULT_LEADS;
        let day = 86_400_000;
        let exp = 100 * day;
        assert_eq!(due(exp, exp - 8 * day, &leads), None);
        assert_eq!(
            due(exp, exp - 7 * day, &leads),
            Some(Stage::Expiring(leads[0]))
        );
        assert_eq!(
            due(exp, exp - day / 2, &leads),
            Some(Stage::Expiring(leads[1]))
        );
        assert_eq!(due(exp, exp, &leads), Some(Stage::Expired));
        assert_eq!(Stage::Expiring(leads[0]).key(), "expiring:604800");
    }

    #[test]
    fn lead_times_parse_longest_first() {
        let leads = parse_leads("1d, 12h,7d").unwrap();
        assert_eq!(lead_words(leads[0]), "7 days");
        assert_eq!(lead_words(leads[1]), "1 day");
        assert_eq!(lead_words(leads[2]), "12 hours");
        assert!(parse_leads("7x").unwrap_err().contains("'7x'"));
        assert!(parse_leads("").is_err());
        assert!(parse_leads("0h").is_err());
    }
}
