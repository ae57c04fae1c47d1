-- mcpwatch schema, Postgres. Times are Unix milliseconds (BIGINT); ids are UUID text; JSON is
-- TEXT. The SQLite migration has the same tables and columns.

CREATE TABLE servers (
    id TEXT PRIMARY KEY,
    slug TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    url TEXT NOT NULL,
    headers_enc TEXT,                      -- AES-256-GCM sealed JSON of probe headers
    header_names TEXT NOT NULL DEFAULT '[]', -- JSON array of header names (shown, values never)
    interval_seconds BIGINT NOT NULL,
    timeout_seconds BIGINT NOT NULL,
    tags TEXT NOT NULL DEFAULT '[]',
    public BOOLEAN NOT NULL DEFAULT FALSE,
    paused BOOLEAN NOT NULL DEFAULT FALSE,
    failures_to_down BIGINT NOT NULL,
    successes_to_up BIGINT NOT NULL,
    degraded_latency_ms BIGINT,
    expect_auth BOOLEAN NOT NULL DEFAULT FALSE,
    era_hint TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE probe_results (
    id TEXT PRIMARY KEY,
    server_id TEXT NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    region TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    duration_ms DOUBLE PRECISION NOT NULL,
    dns_ms DOUBLE PRECISION,
    connect_ms DOUBLE PRECISION,
    tls_ms DOUBLE PRECISION,
    handshake_ms DOUBLE PRECISION,
    tools_list_ms DOUBLE PRECISION,
    verdict TEXT NOT NULL,
    failure_kind TEXT,
    failure_phase TEXT,
    failure_message TEXT,
    http_status BIGINT,
    jsonrpc_code BIGINT,
    era TEXT,
    protocol_version TEXT,
    server_name TEXT,
    server_version TEXT,
    tool_count BIGINT NOT NULL,
    schema_hash TEXT,
    tls_not_after BIGINT
);
CREATE INDEX probe_results_server_time ON probe_results (server_id, started_at);

CREATE TABLE schema_snapshots (
    server_id TEXT NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    hash TEXT NOT NULL,
    interface_hash TEXT NOT NULL,
    tools TEXT NOT NULL,
    first_seen BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    PRIMARY KEY (server_id, hash)
);

CREATE TABLE region_state (
    server_id TEXT NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    region TEXT NOT NULL,
    state TEXT NOT NULL,
    consecutive_failures BIGINT NOT NULL,
    consecutive_successes BIGINT NOT NULL,
    last_result_at BIGINT,
    last_verdict TEXT,
    last_schema_hash TEXT,
    PRIMARY KEY (server_id, region)
);

CREATE TABLE server_state (
    server_id TEXT PRIMARY KEY REFERENCES servers(id) ON DELETE CASCADE,
    state TEXT NOT NULL,
    since BIGINT NOT NULL,
    schema_hash TEXT,
    server_version TEXT,
    protocol_version TEXT,
    last_result_at BIGINT,
    open_incident_id TEXT
);

CREATE TABLE incidents (
    id TEXT PRIMARY KEY,
    server_id TEXT NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    cause TEXT NOT NULL,
    opened_at BIGINT NOT NULL,
    closed_at BIGINT
);
CREATE INDEX incidents_server ON incidents (server_id, opened_at);

CREATE TABLE events (
    id TEXT PRIMARY KEY,
    server_id TEXT REFERENCES servers(id) ON DELETE SET NULL,
    type TEXT NOT NULL,
    at BIGINT NOT NULL,
    payload TEXT NOT NULL
);
CREATE INDEX events_at ON events (at, id);

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    prefix TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    scopes TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT
);
