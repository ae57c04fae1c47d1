-- Service level objectives (src/slo/, src/api/slos.rs): an availability objective over a
-- window, optionally a latency one, for one server or every server with a tag; and whether
-- its burn-rate alert is open (set and cleared with its event, once, by the leader).
CREATE TABLE slos (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,          -- the metrics' `slo` label
    server_id TEXT,                     -- one server, or
    tag TEXT,                           -- every server with this tag
    objective DOUBLE PRECISION NOT NULL,
    window_days BIGINT NOT NULL,
    latency_ms DOUBLE PRECISION,
    latency_objective DOUBLE PRECISION,
    burning_since BIGINT,
    burning_rule TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX slos_server ON slos (server_id);
