-- Multi-region probing: agent keys are bound to one region; servers can be restricted to some
-- regions with their own quorum; results from an agent whose canaries failed are kept but
-- marked, and do not count; each region's last contact is tracked for region.silent.

ALTER TABLE api_keys ADD COLUMN region TEXT;              -- set for `agent` keys only
ALTER TABLE servers ADD COLUMN regions TEXT NOT NULL DEFAULT '[]'; -- JSON; empty: every region
ALTER TABLE servers ADD COLUMN quorum BIGINT;             -- NULL: a majority of its regions
ALTER TABLE probe_results ADD COLUMN vantage_unhealthy BOOLEAN NOT NULL DEFAULT FALSE;

CREATE TABLE regions (
    name TEXT PRIMARY KEY,
    last_seen_at BIGINT NOT NULL,
    silent_since BIGINT,                                  -- set when region.silent went out
    agent_version TEXT
);

-- The status page keeps rollups in memory and reads only the rows changed since its last read.
CREATE INDEX rollup_hourly_updated ON rollup_hourly (updated_at);
CREATE INDEX rollup_daily_updated ON rollup_daily (updated_at);

-- What each region last saw, beside its state, so the status page reads no raw results.
ALTER TABLE region_state ADD COLUMN last_failure_kind TEXT;
ALTER TABLE region_state ADD COLUMN last_failure_phase TEXT;
ALTER TABLE region_state ADD COLUMN last_http_status BIGINT;
ALTER TABLE region_state ADD COLUMN last_jsonrpc_code BIGINT;
ALTER TABLE region_state ADD COLUMN last_duration_ms DOUBLE PRECISION;
ALTER TABLE region_state ADD COLUMN last_tool_count BIGINT;
