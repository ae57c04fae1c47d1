-- Maintenance windows, and the servers whose alerts a window held (with their state before
-- the window), so one summary can go out when it ends.

CREATE TABLE maintenance_windows (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    server_ids TEXT NOT NULL DEFAULT '[]',
    tags TEXT NOT NULL DEFAULT '[]',
    starts_at BIGINT,                 -- one-off
    ends_at BIGINT,
    cron TEXT,                        -- recurring
    duration_seconds BIGINT,
    timezone TEXT,
    created_at BIGINT NOT NULL
);

CREATE TABLE maintenance_held (
    window_id TEXT NOT NULL REFERENCES maintenance_windows(id) ON DELETE CASCADE,
    occurrence_start BIGINT NOT NULL,
    occurrence_end BIGINT NOT NULL,
    server_id TEXT NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    state_before TEXT NOT NULL,
    held_events BIGINT NOT NULL DEFAULT 1,
    summarized BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (window_id, occurrence_start, server_id)
);
CREATE INDEX maintenance_held_due ON maintenance_held (summarized, occurrence_end);
