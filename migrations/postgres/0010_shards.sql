-- Sharding across replicas (src/shard.rs, src/cluster/): each live replica has a heartbeat
-- row, renewed on database time; buckets are held as `bucket:N` rows of `leases`.
CREATE TABLE replicas (
    holder TEXT PRIMARY KEY,
    started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at TIMESTAMPTZ NOT NULL
);

-- Results taken by a replica that does not own their server (an agent's push, a check made
-- through it, a probe that finished after its bucket moved) wait here for the owner.
CREATE TABLE handoff (
    id TEXT PRIMARY KEY,
    bucket INTEGER NOT NULL,
    server_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX handoff_by_bucket ON handoff (bucket, created_at);
