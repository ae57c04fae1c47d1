-- Rollups: what the status page, badges and uptime figures read (never raw results).
-- Updated in the same transaction as the results they count, so a retried or replayed batch
-- is never counted twice. `latency_hist` is a sparse log-bucket histogram of successful
-- probes' durations (JSON [[bucket, count], …]; buckets are 2^(1/8) wide, about ±4.4 %), which
-- lets two rollups merge exactly; p50/p95 are read off it.

CREATE TABLE rollup_hourly (
    server_id TEXT NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    region TEXT NOT NULL,
    hour_start BIGINT NOT NULL,
    probes BIGINT NOT NULL,
    successes BIGINT NOT NULL,
    failures TEXT NOT NULL DEFAULT '{}',   -- JSON {failure kind: count}
    latency_hist TEXT NOT NULL DEFAULT '[]',
    latency_p50_ms DOUBLE PRECISION,
    latency_p95_ms DOUBLE PRECISION,
    latency_max_ms DOUBLE PRECISION,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (server_id, region, hour_start)
);
CREATE INDEX rollup_hourly_hour ON rollup_hourly (hour_start);

CREATE TABLE rollup_daily (
    server_id TEXT NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    day_start BIGINT NOT NULL,             -- midnight UTC
    probes BIGINT NOT NULL,
    successes BIGINT NOT NULL,
    failures TEXT NOT NULL DEFAULT '{}',
    latency_hist TEXT NOT NULL DEFAULT '[]',
    latency_p50_ms DOUBLE PRECISION,
    latency_p95_ms DOUBLE PRECISION,
    latency_max_ms DOUBLE PRECISION,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (server_id, day_start)
);
CREATE INDEX rollup_daily_day ON rollup_daily (day_start);

-- Retention prunes raw results by age alone.
CREATE INDEX probe_results_started ON probe_results (started_at);
