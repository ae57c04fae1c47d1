//! DNS for the probe, and the hook that applies the address policy to resolved addresses
//! before reqwest connects to any of them.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use hickory_resolver::TokioResolver;

use super::policy::{AddressPolicy, BlockedAddress};
use super::recorder::Recorder;

/// Errors our hooks put into reqwest's error chain, recovered when net.rs classifies a failed request.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HookError {
    #[error("{0}")]
    Dns(String),
    #[error("{0}")]
    Blocked(BlockedAddress),
}

/// DNS for the probe: static overrides, RFC 6761 special names, then the system's resolvers.
#[derive(Clone)]
pub struct Dns {
    resolver: Option<Arc<TokioResolver>>,
    hosts: Arc<HashMap<String, Vec<IpAddr>>>,
}

impl std::fmt::Debug for Dns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dns").field("hosts", &self.hosts).finish()
    }
}

impl Dns {
    /// The system resolver configuration (`/etc/resolv.conf`, `/etc/hosts`), with `hosts`
    /// taking precedence (like curl's `--resolve`). Without a usable system configuration the
    /// platform resolver (getaddrinfo) is used instead.
    pub fn system(hosts: HashMap<String, Vec<IpAddr>>) -> Self {
        let resolver = TokioResolver::builder_tokio()
            .and_then(|b| b.build())
            .ok()
            .map(Arc::new);
        Dns {
            resolver,
            hosts: Arc::new(hosts),
        }
    }

    async fn lookup(&self, host: &str) -> Result<Vec<IpAddr>, String> {
        let name = host.trim_end_matches('.').to_ascii_lowercase();
        if let Some(ips) = self.hosts.get(&name) {
            return Ok(ips.clone());
        }
        if name == "localhost" || name.ends_with(".localhost") {
            return Ok(vec![
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::LOCALHOST),
            ]);
        }
        if name == "invalid" || name.ends_with(".invalid") {
            return Err(format!(
                "{name} does not exist (NXDOMAIN: .invalid never resolves)"
            ));
        }
        let ips: Vec<IpAddr> = match &self.resolver {
            Some(r) => r
                .lookup_ip(name.as_str())
                .await
                .map_err(|e| format!("cannot resolve {name}: {e}"))?
                .iter()
                .collect(),
            None => tokio::net::lookup_host((name.as_str(), 0))
                .await
                .map_err(|e| format!("cannot resolve {name}: {e}"))?
                .map(|sa| sa.ip())
                .collect(),
        };
        if ips.is_empty() {
            return Err(format!("{name} has no A or AAAA records"));
        }
        Ok(ips)
    }
}

/// reqwest's resolver hook: timed lookup, then the address policy.
#[derive(Clone)]
pub(crate) struct PolicyResolver {
    pub(crate) dns: Dns,
    pub(crate) policy: Arc<AddressPolicy>,
    pub(crate) recorder: Arc<Recorder>,
}

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let this = self.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            this.recorder.dns_started();
            let found = this.dns.lookup(&host).await;
            this.recorder.dns_finished();
            let ips = found.map_err(|e| {
                this.recorder.dns_failed(e.clone());
                Box::new(HookError::Dns(e)) as Box<dyn std::error::Error + Send + Sync>
            })?;
            let mut refused = None;
            let allowed: Vec<SocketAddr> = ips
                .into_iter()
                .filter(|ip| match this.policy.check(*ip) {
                    Ok(()) => true,
                    Err(b) => {
                        refused.get_or_insert(b);
                        false
                    }
                })
                .map(|ip| SocketAddr::new(ip, 0))
                .collect();
            if allowed.is_empty() {
                let blocked = refused.unwrap_or(BlockedAddress {
                    ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                    range: "unknown",
                });
                this.recorder.blocked(blocked);
                return Err(Box::new(HookError::Blocked(blocked)) as _);
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn special_names_resolve_without_the_network() {
        let dns = Dns::system(HashMap::from([(
            "api.test".to_string(),
            vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))],
        )]));
        assert_eq!(
            dns.lookup("API.test.").await.unwrap(),
            vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))]
        );
        assert!(
            dns.lookup("localhost")
                .await
                .unwrap()
                .contains(&IpAddr::V4(Ipv4Addr::LOCALHOST))
        );
        let err = dns.lookup("nope.invalid").await.unwrap_err();
        assert!(err.contains("NXDOMAIN"), "{err}");
    }
}
