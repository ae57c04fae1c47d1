-- The whole contract (issue 16 §1): whether probes list a server's resources, resource
-- templates and prompts; each result's counts and hashes; every list seen (per server, kind
-- and hash) and the one each server serves now, for drift per kind.
ALTER TABLE servers ADD COLUMN list_contract BOOLEAN NOT NULL DEFAULT 1;
ALTER TABLE probe_results ADD COLUMN contract TEXT;
CREATE TABLE contract_snapshots (
    server_id TEXT NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    hash TEXT NOT NULL,
    items TEXT NOT NULL,
    first_seen INTEGER NOT NULL,
    PRIMARY KEY (server_id, kind, hash)
);
CREATE TABLE contract_state (
    server_id TEXT NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    hash TEXT NOT NULL,
    since INTEGER NOT NULL,
    PRIMARY KEY (server_id, kind)
);
