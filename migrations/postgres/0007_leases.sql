-- Leadership by lease row instead of a session advisory lock: a holder, a term that grows with
-- every change of holder (a fencing token), and an expiry on database time. A leader that
-- cannot reach the database keeps its work (nobody can take the lease without the database
-- either); it works through PgBouncer in transaction mode (no session state).
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    term BIGINT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
