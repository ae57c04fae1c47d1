//! Probe options shared by `check` and `snapshot`, parsed and validated into a
//! [`Prober`] and a [`ProbeTarget`]. Every bad value is one line that names the flag.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use url::Url;

use crate::probe::{
    AddressPolicy, DEFAULT_BODY_CAP, DEFAULT_MAX_PAGES, Era, EraChoice, ProbeTarget, Prober,
    ProberConfig, TlsBase,
};

use super::CliError;
use crate::probe::oauth::{ClientAuth, ClientCredentials};

#[derive(Debug, Clone, Args)]
pub struct ProbeArgs {
    /// The MCP endpoint, e.g. https://example.com/mcp
    pub url: String,

    /// Extra request header 'Name: value' (repeatable), e.g. a probe credential. Values are
    /// never printed.
    #[arg(long = "header", short = 'H', value_name = "'NAME: VALUE'")]
    pub headers: Vec<String>,

    /// Total deadline of one probe (e.g. 10s, 500ms, 1m).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,

    /// Force one protocol era: stateless (2026), streamable_http (2025) or http_sse (2024).
    #[arg(long, value_parser = parse_era)]
    pub era: Option<Era>,

    /// Refuse private, loopback, link-local and other non-public targets (the daemon's rule).
    #[arg(long)]
    pub deny_private: bool,

    /// With --deny-private: allow this non-public range anyway (repeatable), e.g. 10.0.0.0/8.
    #[arg(long = "allow-cidr", value_name = "CIDR")]
    pub allow_cidrs: Vec<String>,

    /// A probe slower than this is `degraded` (e.g. 2s).
    #[arg(long, value_parser = parse_duration)]
    pub degraded_after: Option<Duration>,

    /// Follow 307/308 redirects on POST (each hop is still checked by the address policy).
    #[arg(long)]
    pub follow_redirects: bool,

    /// PEM file with extra CA certificates to trust (a private CA).
    #[arg(long, value_name = "FILE")]
    pub cacert: Option<PathBuf>,

    /// Resolve HOST to IP instead of asking DNS, like curl (repeatable): 'example.com:203.0.113.7'.
    #[arg(long, value_name = "HOST:IP")]
    pub resolve: Vec<String>,

    /// Cap on one response body in bytes (decoded; a whole SSE stream counts).
    #[arg(long, default_value_t = DEFAULT_BODY_CAP)]
    pub max_body: usize,

    /// Cap on tools/list pages.
    #[arg(long, default_value_t = DEFAULT_MAX_PAGES)]
    pub max_pages: u32,

    #[command(flatten)]
    pub oauth: OAuthArgs,
}

/// A probe identity by OAuth client credentials: the probe gets its own access token.
#[derive(Debug, Clone, Default, Args)]
pub struct OAuthArgs {
    /// OAuth client id of the probe identity (client-credentials grant).
    #[arg(long, value_name = "ID")]
    pub oauth_client_id: Option<String>,

    /// Name of the environment variable holding the client secret (never on the command line).
    #[arg(long, value_name = "VAR")]
    pub oauth_client_secret_env: Option<String>,

    /// PEM private key (RSA or EC P-256) for private_key_jwt instead of a secret.
    #[arg(long, value_name = "FILE")]
    pub oauth_private_key_file: Option<PathBuf>,

    /// client_secret_basic (default with a secret), client_secret_post or private_key_jwt.
    #[arg(long, value_name = "METHOD")]
    pub oauth_auth_method: Option<String>,

    /// The token endpoint; default: found through the server's OAuth discovery chain.
    #[arg(long, value_name = "URL")]
    pub oauth_token_endpoint: Option<String>,

    /// Scope to ask for.
    #[arg(long, value_name = "SCOPE")]
    pub oauth_scope: Option<String>,

    /// RFC 8707 resource to ask a token for (default: the server's URL).
    #[arg(long, value_name = "URI")]
    pub oauth_resource: Option<String>,
}

impl OAuthArgs {
    /// The identity, if one is given; what is wrong with it, otherwise.
    pub fn credentials(&self) -> Result<Option<ClientCredentials>, CliError> {
        let usage = |m: &str| Err(CliError::Usage(m.into()));
        let Some(client_id) = self.oauth_client_id.clone() else {
            if self.oauth_client_secret_env.is_some() || self.oauth_private_key_file.is_some() {
                return usage(
                    "--oauth-client-secret-env and --oauth-private-key-file need --oauth-client-id",
                );
            }
            return Ok(None);
        };
        let (secret, default_auth) = match (
            &self.oauth_client_secret_env,
            &self.oauth_private_key_file,
        ) {
            (Some(var), None) => match std::env::var(var) {
                Ok(v) if !v.is_empty() => (v, ClientAuth::ClientSecretBasic),
                _ => return usage(&format!("--oauth-client-secret-env: ${var} is not set")),
            },
            (None, Some(path)) => match std::fs::read_to_string(path) {
                Ok(pem) => (pem, ClientAuth::PrivateKeyJwt),
                Err(e) => {
                    return Err(CliError::File(format!(
                        "--oauth-private-key-file {}: {e}",
                        path.display()
                    )));
                }
            },
            _ => {
                return usage(
                    "--oauth-client-id needs one of --oauth-client-secret-env or --oauth-private-key-file",
                );
            }
        };
        let auth = match self.oauth_auth_method.as_deref() {
            None => default_auth,
            Some("client_secret_basic") => ClientAuth::ClientSecretBasic,
            Some("client_secret_post") => ClientAuth::ClientSecretPost,
            Some("private_key_jwt") => ClientAuth::PrivateKeyJwt,
            Some(other) => {
                return usage(&format!(
                    "--oauth-auth-method '{other}': one of client_secret_basic, client_secret_post, private_key_jwt"
                ));
            }
        };
        if (auth == ClientAuth::PrivateKeyJwt) != (default_auth == ClientAuth::PrivateKeyJwt) {
            return usage(
                "private_key_jwt goes with --oauth-private-key-file, the others with --oauth-client-secret-env",
            );
        }
        if let Some(e) = &self.oauth_token_endpoint {
            parse_target_url(e).map_err(|_| {
                CliError::Usage(format!(
                    "--oauth-token-endpoint '{e}' is not an http(s) URL"
                ))
            })?;
        }
        Ok(Some(ClientCredentials {
            token_endpoint: self.oauth_token_endpoint.clone(),
            client_id,
            auth,
            secret,
            scope: self.oauth_scope.clone(),
            resource: self.oauth_resource.clone(),
        }))
    }
}

impl ProbeArgs {
    /// Validate everything and build the prober and the target.
    pub fn build(&self) -> Result<(Prober, ProbeTarget), CliError> {
        let url = parse_target_url(&self.url)?;
        let mut target = ProbeTarget::new(url);
        target.headers = self
            .headers
            .iter()
            .map(|h| parse_header(h))
            .collect::<Result<_, _>>()?;
        if self.timeout.is_zero() {
            return Err(CliError::Usage(
                "--timeout must be greater than zero".into(),
            ));
        }
        target.timeout = self.timeout;
        target.era = self.era.map(EraChoice::Force).unwrap_or_default();
        target.degraded_after = self.degraded_after;
        target.follow_post_redirects = self.follow_redirects;
        if self.max_body == 0 || self.max_pages == 0 {
            return Err(CliError::Usage(
                "--max-body and --max-pages must be at least 1".into(),
            ));
        }
        target.body_cap = self.max_body;
        target.max_pages = self.max_pages;
        target.oauth = self.oauth.credentials()?.map(std::sync::Arc::new);

        let policy = if self.deny_private {
            AddressPolicy::parse_allow_list(&self.allow_cidrs.join(","))
                .map_err(|e| CliError::Usage(format!("--allow-cidr: {e}")))?
        } else {
            if !self.allow_cidrs.is_empty() {
                return Err(CliError::Usage(
                    "--allow-cidr only makes sense with --deny-private".into(),
                ));
            }
            AddressPolicy::allow_all()
        };
        let extra_roots = match &self.cacert {
            Some(path) => {
                TlsBase::load_pem(path).map_err(|e| CliError::Usage(format!("--cacert: {e}")))?
            }
            None => Vec::new(),
        };
        let mut hosts: HashMap<String, Vec<IpAddr>> = HashMap::new();
        for entry in &self.resolve {
            let (host, ip) = entry
                .rsplit_once(':')
                .and_then(|(h, ip)| Some((h, ip.trim_matches(['[', ']']).parse::<IpAddr>().ok()?)))
                .ok_or_else(|| {
                    CliError::Usage(format!(
                        "--resolve '{entry}': expected HOST:IP, e.g. example.com:203.0.113.7"
                    ))
                })?;
            hosts.entry(host.to_ascii_lowercase()).or_default().push(ip);
        }
        let prober = Prober::new(ProberConfig {
            policy,
            extra_roots,
            hosts,
        })
        .map_err(|e| CliError::Usage(e.to_string()))?;
        Ok((prober, target))
    }
}

/// An http(s) URL with a host.
pub fn parse_target_url(input: &str) -> Result<Url, CliError> {
    let url = Url::parse(input.trim())
        .map_err(|e| CliError::Usage(format!("URL '{input}' is not valid: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(CliError::Usage(format!(
            "URL scheme '{}' is not supported: use http or https",
            url.scheme()
        )));
    }
    if url.host().is_none() {
        return Err(CliError::Usage(format!("URL '{input}' has no host")));
    }
    Ok(url)
}

/// 'Name: value' → (name, value). The value never appears in the error.
pub fn parse_header(input: &str) -> Result<(String, String), CliError> {
    let (name, value) = input
        .split_once(':')
        .ok_or_else(|| CliError::Usage("--header needs the form 'Name: value'".into()))?;
    let name = name.trim();
    if !crate::probe::is_header_name(name) {
        return Err(CliError::Usage(format!(
            "--header name '{name}' is not a valid HTTP header name"
        )));
    }
    let value = value.trim();
    if value.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
        return Err(CliError::Usage(format!(
            "--header '{name}' has control characters in its value"
        )));
    }
    Ok((name.to_string(), value.to_string()))
}

/// `10s`, `500ms`, `2m`, `1h`, or a bare number of seconds.
pub fn parse_duration(input: &str) -> Result<Duration, String> {
    let s = input.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("'{input}' is not a duration (e.g. 10s, 500ms, 2m)"))?;
    let secs = match unit.trim() {
        "" | "s" | "sec" | "secs" => value,
        "ms" => value / 1000.0,
        "m" | "min" | "mins" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "unknown unit '{other}' in '{input}' (use ms, s, m or h)"
            ));
        }
    };
    if !secs.is_finite() || !(0.0..=86_400.0 * 7.0).contains(&secs) {
        return Err(format!("'{input}' is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn parse_era(input: &str) -> Result<Era, String> {
    input.parse::<Era>().map_err(|e| e.to_string())
}

/// `--fail-on`: a comma-separated list of `any`, `breaking`, `security`.
pub fn parse_fail_on(text: &str) -> Result<Vec<crate::schema::FailOn>, String> {
    let kinds: Vec<crate::schema::FailOn> =
        text.split(',').map(str::parse).collect::<Result<_, _>>()?;
    if kinds.is_empty() {
        return Err("name at least one of any, breaking, security".into());
    }
    Ok(kinds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert!(
            parse_duration("10 parsecs")
                .unwrap_err()
                .contains("unknown unit")
        );
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn headers_parse_and_errors_never_show_values() {
        assert_eq!(
            parse_header("Authorization: Bearer abc").unwrap(),
            ("Authorization".into(), "Bearer abc".into())
        );
        let e = parse_header("Bad Name: secret-value")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("secret-value"), "{e}");
        let e = parse_header("X-Key: sec\nret").unwrap_err().to_string();
        assert!(!e.contains("sec"), "{e}");
        assert!(parse_header("no-colon").is_err());
    }

    #[test]
    fn urls_must_be_http() {
        assert!(parse_target_url("https://example.com/mcp").is_ok());
        assert!(
            parse_target_url("ftp://example.com")
                .unwrap_err()
                .to_string()
                .contains("scheme 'ftp'")
        );
        assert!(parse_target_url("not a url").is_err());
    }
}
