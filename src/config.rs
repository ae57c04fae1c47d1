//! Settings of `mcpwatch serve`, validated before anything listens.
//!
//! Sources, later ones winning: defaults, the TOML file (`--config` or `MCPWATCH_CONFIG`), the
//! environment (`MCPWATCH_*`, `DATABASE_URL`), then flags. Every key is documented with its
//! default in `config/mcpwatch.example.toml`. A bad value stops start-up with one line naming
//! the variable and what is expected.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::Deserialize;

use crate::probe::AddressPolicy;

/// Shortest probe interval the daemon accepts.
pub const MIN_INTERVAL_SECONDS: u32 = 10;

/// A setting with a bad value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// One setting is invalid; `name` is the environment variable (or TOML key).
    #[error("{name}: {message}")]
    Invalid { name: &'static str, message: String },
    /// The TOML file or the environment could not be read at all.
    #[error("configuration: {0}")]
    Source(String),
}

/// Whether an SMTP URL would send its password without TLS: `smtp://` with a password and
/// without `tls=required` (opportunistic STARTTLS can be stripped by anyone on the path).
pub(crate) fn smtp_password_in_clear(smtp_url: &str) -> bool {
    let Ok(u) = url::Url::parse(smtp_url) else {
        return false;
    };
    let tls_required = u.query_pairs().any(|(k, v)| k == "tls" && v == "required");
    u.scheme() == "smtp" && u.password().is_some() && !tls_required
}

/// Comma-separated CIDRs (a bare address is a /32 or /128); the first bad one on error.
fn parse_cidrs(text: &str) -> Result<Vec<ipnet::IpNet>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            t.parse::<ipnet::IpNet>()
                .or_else(|_| t.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| t.to_string())
        })
        .collect()
}

/// Where the daemon listens and keeps its data: (listen, data dir, database).
fn storage(raw: &Raw) -> Result<(SocketAddr, PathBuf, DatabaseUrl), ConfigError> {
    let listen = raw.listen.as_deref().unwrap_or("127.0.0.1:8080");
    let listen: SocketAddr = listen.parse().map_err(|_| {
        invalid(
            "MCPWATCH_LISTEN",
            format!("'{listen}' is not an address:port like 127.0.0.1:8080"),
        )
    })?;
    let data_dir = PathBuf::from(raw.data_dir.as_deref().unwrap_or("./data"));
    let database = match raw
        .database_url
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        None => DatabaseUrl::Sqlite(data_dir.join("mcpwatch.db")),
        Some(url) => parse_database_url(url)?,
    };
    Ok((listen, data_dir, database))
}

/// Who this node is: (region, admin token).
fn identity(raw: &mut Raw) -> Result<(String, Option<String>), ConfigError> {
    let region = raw.region.take().unwrap_or_else(|| "local".to_string());
    refuse(
        !is_region_name(&region),
        "MCPWATCH_REGION",
        format!("'{region}' must be 1-64 characters of letters, digits, - or _"),
    )?;
    let admin_token = raw.admin_token.take().filter(|t| !t.is_empty());
    refuse(
        admin_token.as_ref().is_some_and(|t| t.len() < 24),
        "MCPWATCH_ADMIN_TOKEN",
        "must be at least 24 characters (the value is not shown)",
    )?;
    Ok((region, admin_token))
}

/// The key that seals credentials at rest, when one is given.
fn sealing_key(raw: &mut Raw) -> Result<Option<[u8; 32]>, ConfigError> {
    match raw.secret_key.take().filter(|k| !k.is_empty()) {
        None => Ok(None),
        Some(k) => Ok(Some(
            parse_secret_key(&k).map_err(|m| invalid("MCPWATCH_SECRET_KEY", m))?,
        )),
    }
}

/// The probe budget: (concurrent probes, shutdown drain time, default interval).
fn probing(raw: &Raw) -> Result<(usize, Duration, u32), ConfigError> {
    let max_concurrent_probes = raw.max_concurrent_probes.unwrap_or(256);
    refuse(
        max_concurrent_probes == 0,
        "MCPWATCH_MAX_CONCURRENT_PROBES",
        "must be at least 1",
    )?;
    let drain = raw.drain_timeout.unwrap_or(15);
    refuse(
        drain > 3600,
        "MCPWATCH_DRAIN_TIMEOUT",
        "must be at most 3600 seconds",
    )?;
    let default_interval = raw.default_interval.unwrap_or(60);
    refuse(
        default_interval < MIN_INTERVAL_SECONDS,
        "MCPWATCH_DEFAULT_INTERVAL",
        format!(
            "{default_interval} is below the minimum interval of {MIN_INTERVAL_SECONDS} seconds"
        ),
    )?;
    Ok((
        max_concurrent_probes as usize,
        Duration::from_secs(drain),
        default_interval,
    ))
}

/// Serving requests: (database connections, how long drift shows, trusted proxies).
fn serving(raw: &Raw) -> Result<(u32, Duration, Vec<ipnet::IpNet>), ConfigError> {
    let db_max_connections = raw.db_max_connections.unwrap_or(10);
    refuse(
        db_max_connections == 0,
        "MCPWATCH_DB_MAX_CONNECTIONS",
        "must be at least 1",
    )?;
    let drift_shown_days = raw.drift_shown_days.unwrap_or(7);
    refuse(
        drift_shown_days > 400,
        "MCPWATCH_DRIFT_SHOWN_DAYS",
        format!("{drift_shown_days} is more than the 400 days rollups are kept"),
    )?;
    let trusted_proxies =
        parse_cidrs(raw.trusted_proxies.as_deref().unwrap_or("")).map_err(|bad| {
            invalid(
                "MCPWATCH_TRUSTED_PROXIES",
                format!("'{bad}' is not a CIDR like 10.0.0.0/8 or ::1/128"),
            )
        })?;
    let drift_shown = Duration::from_secs(u64::from(drift_shown_days) * 86_400);
    Ok((db_max_connections, drift_shown, trusted_proxies))
}

/// Results and alerts in flight: (ingest queue length, spill bytes, delivery lease).
fn queues(raw: &Raw) -> Result<(usize, u64, Duration), ConfigError> {
    let ingest_buffer = raw.ingest_buffer.unwrap_or(100_000);
    refuse(
        ingest_buffer < 100,
        "MCPWATCH_INGEST_BUFFER",
        "must be at least 100 results",
    )?;
    let ingest_spill_mb = raw.ingest_spill_mb.unwrap_or(2048);
    refuse(
        ingest_spill_mb < 16,
        "MCPWATCH_INGEST_SPILL_MB",
        "must be at least 16 (MiB)",
    )?;
    let lease = raw.delivery_lease.unwrap_or(30);
    refuse(
        !(11..=3600).contains(&lease),
        "MCPWATCH_DELIVERY_LEASE",
        "must be between 11 and 3600 seconds (longer than the 10 s webhook timeout)",
    )?;
    Ok((
        ingest_buffer,
        ingest_spill_mb << 20,
        Duration::from_secs(lease),
    ))
}

/// How long history is kept, and when a quiet region is silent: (raw results, rollups,
/// silence).
fn retention(raw: &Raw) -> Result<(Duration, Duration, Duration), ConfigError> {
    let days = |d: u32| Duration::from_secs(u64::from(d) * 86_400);
    let retention_raw = raw.retention_raw.unwrap_or(30);
    refuse(
        retention_raw == 0,
        "MCPWATCH_RETENTION_RAW",
        "must be at least 1 day",
    )?;
    let retention_rollup = raw.retention_rollup.unwrap_or(400);
    refuse(
        retention_rollup < 90,
        "MCPWATCH_RETENTION_ROLLUP",
        format!("{retention_rollup} days is less than the 90 days the status page shows"),
    )?;
    let region_silent_after = raw.region_silent_after.unwrap_or(180);
    refuse(
        !(5..=86_400).contains(&region_silent_after),
        "MCPWATCH_REGION_SILENT_AFTER",
        "must be between 5 and 86400 seconds",
    )?;
    Ok((
        days(retention_raw),
        days(retention_rollup),
        Duration::from_secs(region_silent_after),
    ))
}

/// The credential watchdog's lead times (`7d,1d` unless set).
fn credential_warn(text: Option<String>) -> Result<Vec<Duration>, ConfigError> {
    match text {
        None => Ok(crate::credentials::DEFAULT_LEADS.to_vec()),
        Some(t) => {
            crate::credentials::parse_leads(&t).map_err(|m| invalid("MCPWATCH_CREDENTIAL_WARN", m))
        }
    }
}

/// An error naming `name` when `bad`.
fn refuse(bad: bool, name: &'static str, message: impl Into<String>) -> Result<(), ConfigError> {
    if bad {
        Err(invalid(name, message))
    } else {
        Ok(())
    }
}

fn invalid(name: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        name,
        message: message.into(),
    }
}

/// A region name: 1-64 letters, digits, `-` or `_` (it appears in metric labels and URLs).
pub fn is_region_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Raw values as they come from the file and the environment (TOML keys are the variable
/// names without `MCPWATCH_`, lower-case).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    listen: Option<String>,
    database_url: Option<String>,
    data_dir: Option<String>,
    region: Option<String>,
    admin_token: Option<String>,
    secret_key: Option<String>,
    allow_private_cidrs: Option<String>,
    max_concurrent_probes: Option<u32>,
    drain_timeout: Option<u64>,
    default_interval: Option<u32>,
    log_format: Option<String>,
    rate_limit_per_minute: Option<u32>,
    trusted_proxies: Option<String>,
    drift_shown_days: Option<u32>,
    ingest_buffer: Option<usize>,
    ingest_spill_mb: Option<u64>,
    db_max_connections: Option<u32>,
    public_url: Option<String>,
    delivery_lease: Option<u64>,
    smtp_url: Option<String>,
    smtp_from: Option<String>,
    smtp_plaintext_auth: Option<bool>,
    metrics_token: Option<String>,
    retention_raw: Option<u32>,
    retention_rollup: Option<u32>,
    probe_locally: Option<bool>,
    subscriptions: Option<bool>,
    credential_warn: Option<String>,
    region_silent_after: Option<u64>,
    monitors_file: Option<String>,
    registry_url: Option<String>,
    registry_sync: Option<u64>,
}

/// The registry sync's period: off (0 or unset), or 5 minutes to a week.
fn registry_sync(seconds: Option<u64>) -> Result<Option<Duration>, ConfigError> {
    match seconds {
        None | Some(0) => Ok(None),
        Some(s) if (300..=7 * 86_400).contains(&s) => Ok(Some(Duration::from_secs(s))),
        Some(_) => Err(invalid(
            "MCPWATCH_REGISTRY_SYNC",
            "must be 0 (off) or 300-604800 seconds",
        )),
    }
}

/// A monitors file that exists (its content is checked when it is applied).
fn monitors_file(given: Option<String>) -> Result<Option<PathBuf>, ConfigError> {
    let Some(path) = given.filter(|p| !p.trim().is_empty()).map(PathBuf::from) else {
        return Ok(None);
    };
    if !path.is_file() {
        return Err(invalid(
            "MCPWATCH_MONITORS_FILE",
            format!("monitors file {} does not exist", path.display()),
        ));
    }
    Ok(Some(path))
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
    /// JSON unless stderr is a terminal.
    Auto,
}

/// Which database, parsed from `DATABASE_URL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Postgres(String),
    Sqlite(PathBuf),
}

/// Validated settings.
#[derive(Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub database: DatabaseUrl,
    pub data_dir: PathBuf,
    pub region: String,
    pub admin_token: Option<String>,
    /// 32 bytes, from `MCPWATCH_SECRET_KEY` (base64); `None`: generated into the data dir.
    pub secret_key: Option<[u8; 32]>,
    pub policy: AddressPolicy,
    pub max_concurrent_probes: usize,
    pub drain_timeout: Duration,
    pub default_interval: u32,
    pub log_format: LogFormat,
    pub rate_limit_per_minute: u32,
    /// Reverse proxies whose `X-Forwarded-For` names the client (`MCPWATCH_TRUSTED_PROXIES`,
    /// CIDRs). Empty: the peer address is the client, and the header is ignored.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// How long a change of a server's tool list shows on `/` and in `/status.json`
    /// (`MCPWATCH_DRIFT_SHOWN_DAYS`, default 7; 0 hides it).
    pub drift_shown: Duration,
    pub ingest_buffer: usize,
    /// Bytes of results the ingest may spill to `<data_dir>/spill` past its queue
    /// (`MCPWATCH_INGEST_SPILL_MB`, default 2048 MiB).
    pub ingest_spill_bytes: u64,
    pub db_max_connections: u32,
    pub public_url: Option<String>,
    /// How long a dispatcher holds a claimed delivery before another may take it over.
    pub delivery_lease: Duration,
    /// SMTP for email channels: `smtp://`, `smtps://` or `smtp://…?tls=required` (STARTTLS),
    /// with optional user:password. Never logged.
    pub smtp_url: Option<String>,
    pub smtp_from: Option<String>,
    /// `MCPWATCH_SMTP_PLAINTEXT_AUTH=true`: the operator accepts sending the SMTP password
    /// without TLS (a relay on a trusted network); warned about at every start.
    pub smtp_plaintext_auth: bool,
    /// When set, `/metrics` needs `Authorization: Bearer <token>`.
    pub metrics_token: Option<String>,
    /// How long raw probe results are kept (the rollups keep the history).
    pub retention_raw: Duration,
    /// How long hourly and daily rollups are kept.
    pub retention_rollup: Duration,
    /// Whether this node probes from its own region (`MCPWATCH_REGION`) besides taking agents'
    /// results. Off for a central that only coordinates agents.
    pub probe_locally: bool,
    /// Whether readers can subscribe to the status pages (needs `public_url`, or a page with
    /// a host of its own; email needs SMTP).
    pub subscriptions: bool,
    /// Lead times before a probe credential expires at which `credential.expiring` goes out,
    /// longest first (`MCPWATCH_CREDENTIAL_WARN`, default `7d,1d`).
    pub credential_warn: Vec<Duration>,
    /// A region (agent) not heard from for this long raises `region.silent`.
    pub region_silent_after: Duration,
    /// A monitors file applied at start, on SIGHUP and when it changes (`--monitors`,
    /// `MCPWATCH_MONITORS_FILE`).
    pub monitors_file: Option<PathBuf>,
    /// The MCP registry `registry import` and the sync read (`MCPWATCH_REGISTRY_URL`; `None`:
    /// the official one).
    pub registry_url: Option<String>,
    /// Import from the registry this often (`MCPWATCH_REGISTRY_SYNC`, seconds; `None`: never).
    pub registry_sync: Option<Duration>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("listen", &self.listen)
            .field("region", &self.region)
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

/// Flags that override everything else.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub listen: Option<String>,
    pub database_url: Option<String>,
    pub data_dir: Option<String>,
    /// Local mode (`serve --local`): targets on loopback are allowed, besides the ranges of
    /// `MCPWATCH_ALLOW_PRIVATE_CIDRS`.
    pub local: bool,
    /// `serve --monitors FILE`.
    pub monitors_file: Option<PathBuf>,
}

/// `MCPWATCH_*` variables that belong to other commands (the config file's path, the CLI
/// client's daemon and key, the agent's settings): a shell that sets them for those must not
/// keep `serve` from starting.
const OTHER_COMMANDS_VARIABLES: &[&str] = &[
    "config",
    "url",
    "token",
    "agent_token",
    "agent_region",
    "agent_buffer",
    "agent_canary",
    "central_url",
];

/// The ranges local mode allows.
pub const LOOPBACK_CIDRS: &str = "127.0.0.0/8,::1/128";

impl Settings {
    /// Load from the real environment and an optional file.
    pub fn load(overrides: &Overrides) -> Result<Self, ConfigError> {
        let env_file = std::env::var("MCPWATCH_CONFIG").ok().map(PathBuf::from);
        let file = overrides.config_file.clone().or(env_file);
        let mut figment = Figment::new();
        if let Some(path) = &file {
            if !path.exists() {
                return Err(invalid(
                    "MCPWATCH_CONFIG",
                    format!("config file {} does not exist", path.display()),
                ));
            }
            figment = figment.merge(Toml::file(path));
        }
        figment = figment
            .merge(Env::prefixed("MCPWATCH_").ignore(OTHER_COMMANDS_VARIABLES))
            .merge(
                Env::raw()
                    .only(&["DATABASE_URL"])
                    .map(|_| "database_url".into()),
            );
        let mut raw: Raw = figment
            .extract()
            .map_err(|e| ConfigError::Source(e.to_string()))?;
        if overrides.listen.is_some() {
            raw.listen = overrides.listen.clone();
        }
        if overrides.database_url.is_some() {
            raw.database_url = overrides.database_url.clone();
        }
        if overrides.data_dir.is_some() {
            raw.data_dir = overrides.data_dir.clone();
        }
        if let Some(f) = &overrides.monitors_file {
            raw.monitors_file = Some(f.display().to_string());
        }
        if overrides.local {
            raw.allow_private_cidrs = Some(match raw.allow_private_cidrs.take() {
                Some(given) if !given.trim().is_empty() => format!("{given},{LOOPBACK_CIDRS}"),
                _ => LOOPBACK_CIDRS.to_string(),
            });
        }
        Self::validate(raw)
    }

    fn validate(mut raw: Raw) -> Result<Self, ConfigError> {
        let (listen, data_dir, database) = storage(&raw)?;
        let (region, admin_token) = identity(&mut raw)?;
        let secret_key = sealing_key(&mut raw)?;
        let policy =
            AddressPolicy::parse_allow_list(raw.allow_private_cidrs.as_deref().unwrap_or(""))
                .map_err(|e| invalid("MCPWATCH_ALLOW_PRIVATE_CIDRS", e.to_string()))?;
        let (max_concurrent_probes, drain_timeout, default_interval) = probing(&raw)?;
        let log_format = log_format(raw.log_format.as_deref())?;
        let public_url = public_url(raw.public_url.take())?;
        let (db_max_connections, drift_shown, trusted_proxies) = serving(&raw)?;
        let (smtp_url, smtp_from, smtp_plaintext_auth) = smtp(
            raw.smtp_url.take(),
            raw.smtp_from.take(),
            raw.smtp_plaintext_auth,
        )?;
        let (ingest_buffer, ingest_spill_bytes, delivery_lease) = queues(&raw)?;
        let (retention_raw, retention_rollup, region_silent_after) = retention(&raw)?;
        Ok(Settings {
            listen,
            database,
            data_dir,
            region,
            admin_token,
            secret_key,
            policy,
            max_concurrent_probes,
            drain_timeout,
            default_interval,
            log_format,
            rate_limit_per_minute: raw.rate_limit_per_minute.unwrap_or(600).max(1),
            trusted_proxies,
            drift_shown,
            ingest_buffer,
            ingest_spill_bytes,
            db_max_connections,
            public_url,
            delivery_lease,
            smtp_url,
            smtp_from,
            smtp_plaintext_auth,
            metrics_token: raw.metrics_token.filter(|t| !t.is_empty()),
            retention_raw,
            retention_rollup,
            probe_locally: raw.probe_locally.unwrap_or(true),
            subscriptions: raw.subscriptions.unwrap_or(true),
            credential_warn: credential_warn(raw.credential_warn.take())?,
            region_silent_after,
            monitors_file: monitors_file(raw.monitors_file.take())?,
            registry_url: raw.registry_url.take().filter(|u| !u.trim().is_empty()),
            registry_sync: registry_sync(raw.registry_sync)?,
        })
    }

    /// Settings for tests: SQLite in `data_dir`, port 0, loopback allowed.
    pub fn for_tests(data_dir: &Path) -> Self {
        let mut raw = Raw {
            listen: Some("127.0.0.1:0".into()),
            data_dir: Some(data_dir.display().to_string()),
            allow_private_cidrs: Some("127.0.0.0/8".into()),
            ..Raw::default()
        };
        raw.log_format = Some("text".into());
        Self::validate(raw).expect("test settings are valid")
    }
}

fn parse_database_url(url: &str) -> Result<DatabaseUrl, ConfigError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(DatabaseUrl::Postgres(url.to_string()));
    }
    if let Some(rest) = url.strip_prefix("sqlite:") {
        let path = rest.trim_start_matches("//");
        let path = path.split('?').next().unwrap_or(path);
        if path.is_empty() {
            return Err(invalid(
                "DATABASE_URL",
                "sqlite: URL has no file path (e.g. sqlite:./data/mcpwatch.db)",
            ));
        }
        return Ok(DatabaseUrl::Sqlite(PathBuf::from(path)));
    }
    let scheme = url.split(':').next().unwrap_or("");
    Err(invalid(
        "DATABASE_URL",
        format!(
            "scheme '{scheme}' is not supported: use postgres://… or sqlite:…, or leave it unset for SQLite in the data dir"
        ),
    ))
}

/// 32 bytes as base64 (standard or URL-safe) or 64 hex characters.
pub fn parse_secret_key(text: &str) -> Result<[u8; 32], String> {
    use base64::Engine;
    let text = text.trim();
    let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        (0..32)
            .map(|i| u8::from_str_radix(&text[i * 2..i * 2 + 2], 16).unwrap_or(0))
            .collect()
    } else {
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(text))
            .map_err(|_| {
                "must be 32 bytes as base64 or 64 hex characters (the value is not shown)"
                    .to_string()
            })?
    };
    bytes
        .try_into()
        .map_err(|_| "must decode to exactly 32 bytes (the value is not shown)".to_string())
}

/// `MCPWATCH_LOG_FORMAT`: json, text or auto (the default).
fn log_format(raw: Option<&str>) -> Result<LogFormat, ConfigError> {
    match raw.unwrap_or("auto") {
        "json" => Ok(LogFormat::Json),
        "text" => Ok(LogFormat::Text),
        "auto" => Ok(LogFormat::Auto),
        other => Err(invalid(
            "MCPWATCH_LOG_FORMAT",
            format!("'{other}': expected json, text or auto"),
        )),
    }
}

/// `MCPWATCH_PUBLIC_URL`: an http(s) URL, without a trailing slash.
fn public_url(raw: Option<String>) -> Result<Option<String>, ConfigError> {
    let Some(u) = raw.filter(|u| !u.is_empty()) else {
        return Ok(None);
    };
    let parsed = url::Url::parse(&u)
        .map_err(|e| invalid("MCPWATCH_PUBLIC_URL", format!("'{u}' is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid(
            "MCPWATCH_PUBLIC_URL",
            "must be an http or https URL",
        ));
    }
    Ok(Some(u.trim_end_matches('/').to_string()))
}

/// `MCPWATCH_SMTP_URL`, `MCPWATCH_SMTP_FROM` (both or neither) and
/// `MCPWATCH_SMTP_PLAINTEXT_AUTH`; a password never crosses the network in clear unasked.
fn smtp(
    url: Option<String>,
    from: Option<String>,
    plaintext_auth: Option<bool>,
) -> Result<(Option<String>, Option<String>, bool), ConfigError> {
    let smtp_url = url.filter(|u| !u.is_empty());
    if let Some(u) = &smtp_url {
        let ok = url::Url::parse(u)
            .is_ok_and(|p| matches!(p.scheme(), "smtp" | "smtps") && p.host().is_some());
        if !ok {
            return Err(invalid(
                "MCPWATCH_SMTP_URL",
                "expected smtp://host:port, smtps://host:port or smtp://host:port?tls=required, with optional user:password (the value is not shown)",
            ));
        }
    }
    let smtp_plaintext_auth = plaintext_auth.unwrap_or(false);
    if let Some(u) = &smtp_url
        && smtp_password_in_clear(u)
        && !smtp_plaintext_auth
    {
        return Err(invalid(
            "MCPWATCH_SMTP_URL",
            "has a password but no TLS, so it would cross the network in clear: use smtps:// or \
             add ?tls=required (STARTTLS), or set MCPWATCH_SMTP_PLAINTEXT_AUTH=true for a \
             relay on a trusted network (the value is not shown)",
        ));
    }
    let smtp_from = from.filter(|f| !f.is_empty());
    if let Some(f) = &smtp_from
        && f.parse::<lettre::message::Mailbox>().is_err()
    {
        return Err(invalid(
            "MCPWATCH_SMTP_FROM",
            format!("'{f}' is not an email address like mcpwatch@example.com"),
        ));
    }
    if smtp_url.is_some() != smtp_from.is_some() {
        return Err(invalid(
            "MCPWATCH_SMTP_FROM",
            "MCPWATCH_SMTP_URL and MCPWATCH_SMTP_FROM go together",
        ));
    }
    Ok((smtp_url, smtp_from, smtp_plaintext_auth))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw() -> Raw {
        Raw::default()
    }

    #[test]
    fn defaults_are_the_embedded_sqlite_setup() {
        let s = Settings::validate(raw()).unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(
            s.database,
            DatabaseUrl::Sqlite(PathBuf::from("./data/mcpwatch.db"))
        );
        assert_eq!(s.region, "local");
        assert_eq!(s.default_interval, 60);
        assert_eq!(s.drain_timeout, Duration::from_secs(15));
        assert!(
            !s.policy.permits("127.0.0.1".parse().unwrap()),
            "the daemon refuses private targets by default"
        );
    }

    #[test]
    fn an_smtp_password_never_crosses_the_network_in_clear_unless_allowed() {
        let with = |url: &str, allow: Option<bool>| {
            Settings::validate(Raw {
                smtp_url: Some(url.into()),
                smtp_from: Some("alerts@example.com".into()),
                smtp_plaintext_auth: allow,
                ..raw()
            })
        };
        let err = with("smtp://u:hunter22@mail.example.com:25", None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("MCPWATCH_SMTP_URL")
                && err.contains("tls=required")
                && err.contains("MCPWATCH_SMTP_PLAINTEXT_AUTH")
                && !err.contains("hunter22"),
            "{err}"
        );
        let opportunistic = "smtp://u:p@mail.example.com:587?tls=opportunistic";
        assert!(with(opportunistic, None).is_err());
        for ok in [
            "smtps://u:p@mail.example.com:465",
            "smtp://u:p@mail.example.com:587?tls=required",
            "smtp://mail.example.com:25",
        ] {
            assert!(with(ok, None).is_ok(), "{ok}");
        }
        let allowed = with("smtp://u:p@relay.internal:25", Some(true)).unwrap();
        assert!(allowed.smtp_plaintext_auth);
    }

    #[test_case::test_case(Raw { database_url: Some("mysql://x".into()), ..raw() }, "DATABASE_URL: scheme 'mysql'" ; "database_url")]
    #[test_case::test_case(Raw { listen: Some("8080".into()), ..raw() }, "MCPWATCH_LISTEN" ; "listen")]
    #[test_case::test_case(Raw { default_interval: Some(5), ..raw() }, "MCPWATCH_DEFAULT_INTERVAL: 5 is below the minimum" ; "default_interval")]
    #[test_case::test_case(Raw { allow_private_cidrs: Some("10.0.0.0/40".into()), ..raw() }, "MCPWATCH_ALLOW_PRIVATE_CIDRS" ; "allow_private_cidrs")]
    #[test_case::test_case(Raw { region: Some("eu west".into()), ..raw() }, "MCPWATCH_REGION" ; "region")]
    #[test_case::test_case(Raw { secret_key: Some("short".into()), ..raw() }, "MCPWATCH_SECRET_KEY" ; "secret_key")]
    #[test_case::test_case(Raw { admin_token: Some("tiny".into()), ..raw() }, "MCPWATCH_ADMIN_TOKEN" ; "admin_token")]
    #[test_case::test_case(Raw { log_format: Some("xml".into()), ..raw() }, "MCPWATCH_LOG_FORMAT" ; "log_format")]
    #[test_case::test_case(Raw { retention_raw: Some(0), ..raw() }, "MCPWATCH_RETENTION_RAW" ; "retention_raw")]
    #[test_case::test_case(Raw { retention_rollup: Some(30), ..raw() }, "MCPWATCH_RETENTION_ROLLUP: 30 days is less than the 90" ; "retention_rollup")]
    fn each_bad_value_names_its_variable(r: Raw, expected: &str) {
        let err = Settings::validate(r).unwrap_err().to_string();
        assert!(err.starts_with(expected), "{err}");
        assert!(
            !err.contains("short") && !err.contains("tiny"),
            "secrets never echoed: {err}"
        );
    }

    #[test]
    fn database_urls_pick_the_backend() {
        assert_eq!(
            parse_database_url("postgres://u@h/db").unwrap(),
            DatabaseUrl::Postgres("postgres://u@h/db".into())
        );
        assert_eq!(
            parse_database_url("sqlite:///tmp/x.db").unwrap(),
            DatabaseUrl::Sqlite(PathBuf::from("/tmp/x.db"))
        );
        assert_eq!(
            parse_database_url("sqlite:data/x.db?mode=rwc").unwrap(),
            DatabaseUrl::Sqlite(PathBuf::from("data/x.db"))
        );
    }

    #[test]
    fn the_example_file_parses_and_documents_every_key() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/config/mcpwatch.example.toml"
        ))
        .unwrap();
        let raw: Raw = Figment::new()
            .merge(Toml::string(&text))
            .extract()
            .expect("example parses with deny_unknown_fields");
        Settings::validate(raw).expect("example values are valid");
        for key in [
            "listen",
            "database_url",
            "data_dir",
            "region",
            "admin_token",
            "secret_key",
            "allow_private_cidrs",
            "max_concurrent_probes",
            "drain_timeout",
            "default_interval",
            "log_format",
            "rate_limit_per_minute",
            "trusted_proxies",
            "drift_shown_days",
            "ingest_buffer",
            "ingest_spill_mb",
            "db_max_connections",
            "public_url",
            "retention_raw",
            "retention_rollup",
            "probe_locally",
            "subscriptions",
            "credential_warn",
            "region_silent_after",
        ] {
            assert!(
                text.contains(&format!("{key} =")),
                "config/mcpwatch.example.toml does not document '{key}'"
            );
        }
    }

    #[test]
    fn secret_keys_parse_from_hex_or_base64() {
        assert_eq!(parse_secret_key(&"ab".repeat(32)).unwrap(), [0xab; 32]);
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        assert_eq!(parse_secret_key(&b64).unwrap(), [7; 32]);
        assert!(parse_secret_key("aGVsbG8=").is_err());
    }
}
