-- Results for another replica's servers (Postgres only: SQLite is a single node that owns
-- every server, so this stays empty; the table keeps one write path for both backends).
CREATE TABLE handoff (
    id TEXT PRIMARY KEY,
    bucket INTEGER NOT NULL,
    server_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
