//! A probe identity by OAuth client credentials (RFC 6749 §4.4, as the MCP spec's
//! client-credentials extension describes): the probe obtains an access token from the
//! authorization server's token endpoint (configured, or found by the discovery chain),
//! authenticating with a client secret (`client_secret_basic` / `client_secret_post`) or a
//! private key (`private_key_jwt`, an RFC 7523 assertion), asking for a scope and for this
//! server as the resource (RFC 8707); keeps the token until shortly before it expires; and
//! sends it as `Authorization: Bearer`. A token endpoint that fails is its own failure
//! (`auth` in phase `token`), never taken for the MCP server being down.
//!
//! The token request never carries the probe's other headers, and goes through the same
//! address policy, caps and deadline as the probe.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::Method;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use url::Url;

use super::discovery::{DiscoveryStatus, discover};
use super::net::{Http, redact_url};
use super::report::{Failure, FailureKind, Phase};

/// How the client proves who it is at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// HTTP Basic with the client id and secret.
    ClientSecretBasic,
    /// The id and secret in the form body.
    ClientSecretPost,
    /// A JWT signed with the client's private key (RFC 7523).
    PrivateKeyJwt,
}

impl ClientAuth {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientAuth::ClientSecretBasic => "client_secret_basic",
            ClientAuth::ClientSecretPost => "client_secret_post",
            ClientAuth::PrivateKeyJwt => "private_key_jwt",
        }
    }
}

/// A probe's client-credentials identity, with its secret (a client secret, or a PEM private
/// key for `private_key_jwt`). Only in memory; sealed at rest.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientCredentials {
    /// `None`: found by the discovery chain.
    pub token_endpoint: Option<String>,
    pub client_id: String,
    pub auth: ClientAuth,
    /// The client secret, or the PEM private key.
    pub secret: String,
    pub scope: Option<String>,
    /// RFC 8707 `resource`; `None`: the server's URL.
    pub resource: Option<String>,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("token_endpoint", &self.token_endpoint)
            .field("client_id", &self.client_id)
            .field("auth", &self.auth)
            .field("secret", &"***")
            .finish_non_exhaustive()
    }
}

/// A token while it is good.
struct Held {
    token: String,
    until: Instant,
}

/// Tokens by identity, shared by every probe of a prober.
#[derive(Default)]
pub struct TokenCache {
    tokens: Mutex<HashMap<String, Held>>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenCache")
    }
}

/// Who asks for what: an identity's key in the cache (a changed secret is a new identity).
fn key(c: &ClientCredentials, server: &Url) -> String {
    let mut h = Sha256::new();
    for part in [
        server.as_str(),
        &c.client_id,
        &c.secret,
        c.token_endpoint.as_deref().unwrap_or(""),
        c.scope.as_deref().unwrap_or(""),
        c.resource.as_deref().unwrap_or(""),
        c.auth.as_str(),
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// A token is renewed this long before it expires (or a tenth of its life, if less).
const RENEW_EARLY: Duration = Duration::from_secs(60);
/// How long a token without `expires_in` is kept.
const NO_EXPIRY: Duration = Duration::from_secs(300);

fn token_failure(message: String) -> Failure {
    Failure::new(FailureKind::Auth, Phase::Token, message)
}

impl TokenCache {
    /// A held token for this identity, if still good.
    pub fn held(&self, c: &ClientCredentials, server: &Url) -> Option<String> {
        let tokens = self.tokens.lock().ok()?;
        tokens
            .get(&key(c, server))
            .filter(|h| h.until > Instant::now())
            .map(|h| h.token.clone())
    }

    /// Forget the held token (the server refused it).
    pub fn forget(&self, c: &ClientCredentials, server: &Url) {
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.remove(&key(c, server));
        }
    }

    /// A new token from the token endpoint, kept until shortly before it expires.
    pub(crate) async fn fetch(
        &self,
        http: &Http,
        c: &ClientCredentials,
        server: &Url,
    ) -> Result<String, Failure> {
        let endpoint = self.endpoint(http, c, server).await?;
        let (token, lifetime) = request_token(http, c, server, &endpoint).await?;
        let early = RENEW_EARLY.min(lifetime / 10);
        if let Ok(mut tokens) = self.tokens.lock() {
            if tokens.len() > 10_000 {
                tokens.retain(|_, h| h.until > Instant::now());
            }
            tokens.insert(
                key(c, server),
                Held {
                    token: token.clone(),
                    until: Instant::now() + lifetime.saturating_sub(early),
                },
            );
        }
        Ok(token)
    }

    /// The configured token endpoint, or the one the discovery chain names now. The chain is
    /// walked again at every token request (once per token lifetime), not remembered: metadata
    /// that breaks later is reported at the next renewal, as a new client would meet it.
    async fn endpoint(
        &self,
        http: &Http,
        c: &ClientCredentials,
        server: &Url,
    ) -> Result<Url, Failure> {
        let named = match &c.token_endpoint {
            Some(e) => e.clone(),
            None => discovered_endpoint(http, server).await?,
        };
        Url::parse(&named)
            .map_err(|_| token_failure(format!("the token endpoint '{named}' is not a URL")))
    }
}

/// The token endpoint the server's discovery chain names.
async fn discovered_endpoint(http: &Http, server: &Url) -> Result<String, Failure> {
    let d = discover(http, server, None).await;
    match (d.status, d.token_endpoint.clone()) {
        (DiscoveryStatus::Ok, Some(e)) => Ok(e),
        (DiscoveryStatus::NotAdvertised, _) => Err(token_failure(
            "no token endpoint configured, and the server advertises no OAuth metadata".into(),
        )),
        _ => Err(token_failure(format!(
            "no token endpoint configured, and {}",
            d.explain()
        ))),
    }
}

/// The form and headers of a token request.
fn token_request(
    c: &ClientCredentials,
    server: &Url,
    endpoint: &Url,
) -> Result<(String, HeaderMap), Failure> {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.append_pair("grant_type", "client_credentials");
    if let Some(scope) = &c.scope {
        form.append_pair("scope", scope);
    }
    let resource = c.resource.clone().unwrap_or_else(|| server.to_string());
    form.append_pair("resource", &resource);
    let mut headers = HeaderMap::new();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    headers.insert(
        reqwest::header::ACCEPT,
        HeaderValue::from_static("application/json"),
    );
    match c.auth {
        ClientAuth::ClientSecretBasic => {
            use base64::Engine;
            // RFC 6749 §2.3.1: both parts form-encoded before Basic.
            let enc =
                |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            let pair = format!("{}:{}", enc(&c.client_id), enc(&c.secret));
            let basic = base64::engine::general_purpose::STANDARD.encode(pair);
            let mut value = HeaderValue::from_str(&format!("Basic {basic}"))
                .map_err(|_| token_failure("the client id cannot go in a header".into()))?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        ClientAuth::ClientSecretPost => {
            form.append_pair("client_id", &c.client_id);
            form.append_pair("client_secret", &c.secret);
        }
        ClientAuth::PrivateKeyJwt => {
            form.append_pair("client_id", &c.client_id);
            form.append_pair(
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            );
            form.append_pair("client_assertion", &assertion(c, endpoint)?);
        }
    }
    Ok((form.finish(), headers))
}

/// The signing key and algorithm of a PEM private key: RSA → RS256, EC P-256 → ES256.
pub fn signing_key(
    pem: &str,
) -> Result<(jsonwebtoken::EncodingKey, jsonwebtoken::Algorithm), String> {
    use jsonwebtoken::{Algorithm, EncodingKey};
    let pem = pem.as_bytes();
    match EncodingKey::from_rsa_pem(pem) {
        Ok(k) => Ok((k, Algorithm::RS256)),
        Err(_) => EncodingKey::from_ec_pem(pem)
            .map(|k| (k, Algorithm::ES256))
            .map_err(|_| "the private key is not an RSA or EC (P-256) key in PEM".to_string()),
    }
}

/// An RFC 7523 client assertion: signed by the client's key, for this token endpoint, good
/// for 5 minutes, never reused.
fn assertion(c: &ClientCredentials, endpoint: &Url) -> Result<String, Failure> {
    let (key, alg) = signing_key(&c.secret).map_err(token_failure)?;
    let now = crate::clock::now_ms() / 1000;
    let claims = serde_json::json!({
        "iss": c.client_id, "sub": c.client_id, "aud": endpoint.as_str(),
        "iat": now, "exp": now + 300, "jti": uuid::Uuid::new_v4().to_string(),
    });
    jsonwebtoken::encode(&jsonwebtoken::Header::new(alg), &claims, &key)
        .map_err(|e| token_failure(format!("cannot sign the client assertion: {e}")))
}

/// POST the token request; the token and how long it lives, or why not.
async fn request_token(
    http: &Http,
    c: &ClientCredentials,
    server: &Url,
    endpoint: &Url,
) -> Result<(String, Duration), Failure> {
    let (form, headers) = token_request(c, server, endpoint)?;
    let at = redact_url(endpoint);
    let (mut resp, _) = http
        .send(
            Method::POST,
            endpoint,
            headers,
            Some(form.into_bytes()),
            Phase::Token,
        )
        .await
        .map_err(|f| token_failure(format!("token endpoint {at}: {}", f.message)))?;
    let status = resp.status();
    let body = http
        .read_body(&mut resp, Phase::Token)
        .await
        .map_err(|f| token_failure(format!("token endpoint {at}: {}", f.message)))?;
    let doc: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if !status.is_success() {
        let error = doc["error"].as_str().unwrap_or("no OAuth error");
        let words = doc["error_description"].as_str().unwrap_or("");
        let mut f = token_failure(format!(
            "token endpoint {at} refused the client (HTTP {}): {error}{}{words}",
            status.as_u16(),
            if words.is_empty() { "" } else { ": " }
        ));
        f.http_status = Some(status.as_u16());
        return Err(f);
    }
    let Some(token) = doc["access_token"].as_str().filter(|t| !t.is_empty()) else {
        return Err(token_failure(format!(
            "token endpoint {at} answered without an access_token"
        )));
    };
    let lifetime = doc["expires_in"]
        .as_u64()
        .map_or(NO_EXPIRY, Duration::from_secs);
    Ok((token.to_string(), lifetime))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(auth: ClientAuth) -> ClientCredentials {
        ClientCredentials {
            token_endpoint: Some("https://auth.example.com/token".into()),
            client_id: "probe id".into(),
            auth,
            secret: "s3cr:t".into(),
            scope: Some("tools:read".into()),
            resource: None,
        }
    }

    #[test]
    fn token_requests_carry_the_grant_scope_resource_and_client() {
        let server = Url::parse("https://mcp.example.com/mcp").unwrap();
        let endpoint = Url::parse("https://auth.example.com/token").unwrap();
        let (form, headers) =
            token_request(&creds(ClientAuth::ClientSecretBasic), &server, &endpoint).unwrap();
        assert_eq!(
            form,
            "grant_type=client_credentials&scope=tools%3Aread&resource=https%3A%2F%2Fmcp.example.com%2Fmcp"
        );
        // "probe+id:s3cr%3At", base64.
        assert_eq!(headers[AUTHORIZATION], "Basic cHJvYmUraWQ6czNjciUzQXQ=");
        assert!(headers[AUTHORIZATION].is_sensitive());
        let (form, headers) =
            token_request(&creds(ClientAuth::ClientSecretPost), &server, &endpoint).unwrap();
        assert!(
            form.ends_with("&client_id=probe+id&client_secret=s3cr%3At"),
            "{form}"
        );
        assert!(!headers.contains_key(AUTHORIZATION));
        let bad_key =
            token_request(&creds(ClientAuth::PrivateKeyJwt), &server, &endpoint).unwrap_err();
        assert_eq!(
            (bad_key.kind, bad_key.phase),
            (FailureKind::Auth, Phase::Token)
        );
        assert!(format!("{:?}", creds(ClientAuth::ClientSecretPost)).contains("***"));
        assert!(!format!("{:?}", creds(ClientAuth::ClientSecretPost)).contains("s3cr"));
    }
}
