//! `mcpwatch agent` settings: flags or `MCPWATCH_*` variables, validated before anything
//! starts (a bad value stops the agent with one line naming it). The token is never printed.

use std::path::PathBuf;
use std::time::Duration;

use crate::probe::AddressPolicy;

/// `mcpwatch agent` flags.
#[derive(clap::Args, Debug, Clone)]
pub struct AgentArgs {
    /// The region this agent probes from; must match its key's region.
    #[arg(long, env = "MCPWATCH_AGENT_REGION", value_name = "NAME")]
    pub region: String,
    /// The central's base URL, e.g. https://mcpwatch.example.com (plain http only to loopback).
    #[arg(long, env = "MCPWATCH_CENTRAL_URL", value_name = "URL")]
    pub central: String,
    /// The agent key (`POST /api/v1/keys` with scopes ["agent"]). Prefer the variable: flags
    /// show in `ps`.
    #[arg(
        long,
        env = "MCPWATCH_AGENT_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: String,
    /// Folder of the on-disk result buffer.
    #[arg(
        long,
        env = "MCPWATCH_DATA_DIR",
        default_value = "./agent-data",
        value_name = "DIR"
    )]
    pub data_dir: PathBuf,
    /// Most results buffered while the central is unreachable; the oldest go first.
    #[arg(long, env = "MCPWATCH_AGENT_BUFFER", default_value_t = 100_000)]
    pub buffer: usize,
    /// A known-good MCP endpoint probed as a canary, besides the central's /healthz.
    #[arg(long, env = "MCPWATCH_AGENT_CANARY", value_name = "URL")]
    pub canary: Option<String>,
    /// CIDRs probes may reach although private (comma-separated), as for `serve`.
    #[arg(long, env = "MCPWATCH_ALLOW_PRIVATE_CIDRS", default_value = "")]
    pub allow_private_cidrs: String,
    /// Probes running at once.
    #[arg(long, env = "MCPWATCH_MAX_CONCURRENT_PROBES", default_value_t = 256)]
    pub max_concurrent_probes: usize,
    /// Seconds to let probes finish and push results on SIGTERM.
    #[arg(long, env = "MCPWATCH_DRAIN_TIMEOUT", default_value_t = 15)]
    pub drain_timeout: u64,
}

/// Validated agent settings.
#[derive(Clone)]
pub struct AgentSettings {
    pub region: String,
    pub central: url::Url,
    pub token: String,
    pub data_dir: PathBuf,
    pub buffer: usize,
    pub canary: Option<url::Url>,
    pub policy: AddressPolicy,
    pub max_concurrent_probes: usize,
    pub drain_timeout: Duration,
    /// How often the canaries are checked.
    pub canary_every: Duration,
    /// Longest wait of one config long poll.
    pub config_wait: Duration,
}

impl std::fmt::Debug for AgentSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentSettings")
            .field("region", &self.region)
            .field("central", &self.central.as_str())
            .finish_non_exhaustive()
    }
}

/// A setting that does not validate: which one, and why.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentConfigError {
    /// A flag or variable has an unusable value.
    #[error("{name}: {message}")]
    Invalid { name: &'static str, message: String },
}

fn invalid(name: &'static str, message: impl Into<String>) -> AgentConfigError {
    AgentConfigError::Invalid {
        name,
        message: message.into(),
    }
}

impl AgentArgs {
    pub fn validate(&self) -> Result<AgentSettings, AgentConfigError> {
        if !crate::config::is_region_name(&self.region) {
            return Err(invalid(
                "MCPWATCH_AGENT_REGION",
                format!("'{}' must be 1-64 letters, digits, - or _", self.region),
            ));
        }
        let central = url::Url::parse(self.central.trim_end_matches('/')).map_err(|e| {
            invalid(
                "MCPWATCH_CENTRAL_URL",
                format!("'{}' is not a URL: {e}", self.central),
            )
        })?;
        let loopback = match central.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(d)) => d == "localhost",
            None => false,
        };
        match central.scheme() {
            "https" => {}
            "http" if loopback => {}
            _ => {
                return Err(invalid(
                    "MCPWATCH_CENTRAL_URL",
                    "must be https:// (the config carries probe credentials); http:// only to loopback",
                ));
            }
        }
        if self.token.trim().len() < 24 {
            return Err(invalid(
                "MCPWATCH_AGENT_TOKEN",
                "must be an agent API key (the value is not shown)",
            ));
        }
        let canary = match &self.canary {
            None => None,
            Some(c) => Some(url::Url::parse(c).map_err(|e| {
                invalid("MCPWATCH_AGENT_CANARY", format!("'{c}' is not a URL: {e}"))
            })?),
        };
        let policy = AddressPolicy::parse_allow_list(&self.allow_private_cidrs)
            .map_err(|e| invalid("MCPWATCH_ALLOW_PRIVATE_CIDRS", e.to_string()))?;
        if self.max_concurrent_probes == 0 {
            return Err(invalid(
                "MCPWATCH_MAX_CONCURRENT_PROBES",
                "must be at least 1",
            ));
        }
        if self.buffer < 100 {
            return Err(invalid(
                "MCPWATCH_AGENT_BUFFER",
                "must be at least 100 results",
            ));
        }
        Ok(AgentSettings {
            region: self.region.clone(),
            central,
            token: self.token.trim().to_string(),
            data_dir: self.data_dir.clone(),
            buffer: self.buffer,
            canary,
            policy,
            max_concurrent_probes: self.max_concurrent_probes,
            drain_timeout: Duration::from_secs(self.drain_timeout.min(3600)),
            canary_every: Duration::from_secs(10),
            config_wait: Duration::from_secs(25),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> AgentArgs {
        AgentArgs {
            region: "eu-west".into(),
            central: "https://central.example".into(),
            token: "mcpw_0123456789abcdefghijklmnop".into(),
            data_dir: "./agent-data".into(),
            buffer: 1000,
            canary: None,
            allow_private_cidrs: String::new(),
            max_concurrent_probes: 8,
            drain_timeout: 15,
        }
    }

    #[test]
    fn bad_values_name_their_variable_and_never_echo_the_token() {
        assert!(args().validate().is_ok());
        let cases = [
            (
                AgentArgs {
                    region: "eu west".into(),
                    ..args()
                },
                "MCPWATCH_AGENT_REGION",
            ),
            (
                AgentArgs {
                    central: "http://central.example".into(),
                    ..args()
                },
                "MCPWATCH_CENTRAL_URL",
            ),
            (
                AgentArgs {
                    token: "short-secret".into(),
                    ..args()
                },
                "MCPWATCH_AGENT_TOKEN",
            ),
            (
                AgentArgs {
                    canary: Some("::".into()),
                    ..args()
                },
                "MCPWATCH_AGENT_CANARY",
            ),
        ];
        for (a, name) in cases {
            let e = a.validate().unwrap_err().to_string();
            assert!(e.starts_with(name), "{e}");
            assert!(!e.contains("short-secret"), "{e}");
        }
        let local = AgentArgs {
            central: "http://127.0.0.1:8080".into(),
            ..args()
        };
        assert!(local.validate().is_ok(), "plain http to loopback is fine");
    }
}
