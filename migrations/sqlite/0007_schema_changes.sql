-- Every change of a server's served tool list, including a return to an earlier one
-- (A -> B -> A is three rows), as the `schema.changed` events tell it. `schema_snapshots`
-- keeps one row per distinct list; this is the history. Backfilled from the snapshots (one
-- change per snapshot, in the order first seen: returns before this migration are unknown).
CREATE TABLE schema_changes (
    server_id TEXT NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    at BIGINT NOT NULL,
    from_hash TEXT,
    to_hash TEXT NOT NULL,
    -- `breaking` / `compatible` and one line of what changed; NULL for a first list.
    class TEXT,
    summary TEXT,
    PRIMARY KEY (server_id, at, to_hash)
);
CREATE INDEX schema_changes_at ON schema_changes (at);

INSERT INTO schema_changes (server_id, at, from_hash, to_hash)
SELECT server_id, first_seen,
       LAG(hash) OVER (PARTITION BY server_id ORDER BY first_seen, hash),
       hash
FROM schema_snapshots;
