-- Alert channels, the durable outbox (one row per event × channel; its id is the
-- idempotency key sent as webhook-id), and the log of every delivery attempt.

CREATE TABLE channels (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,                 -- webhook | email
    url TEXT,                           -- webhook URL
    format TEXT,                        -- standard | slack | discord
    headers_enc TEXT,                   -- sealed extra headers
    header_names TEXT NOT NULL DEFAULT '[]',
    secret_enc TEXT,                    -- sealed whsec_ secret (standard format)
    recipients TEXT NOT NULL DEFAULT '[]',
    server_ids TEXT NOT NULL DEFAULT '[]', -- empty with empty tags: every server
    tags TEXT NOT NULL DEFAULT '[]',
    events TEXT NOT NULL,               -- subscribed event types
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    disabled_reason TEXT,
    failing_since BIGINT,              -- set after 5 failed attempts in a row, cleared on success
    reminder_interval_seconds BIGINT,  -- server.still_down every so often while down; NULL: off
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE outbox (
    id TEXT PRIMARY KEY,
    event_id TEXT NOT NULL,
    channel_id TEXT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    status TEXT NOT NULL,               -- pending | sending | delivered | dead
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_until BIGINT,
    last_status BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    delivered_at BIGINT,
    UNIQUE (event_id, channel_id)
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);

CREATE TABLE delivery_attempts (
    id TEXT PRIMARY KEY,
    delivery_id TEXT NOT NULL REFERENCES outbox(id) ON DELETE CASCADE,
    at BIGINT NOT NULL,
    http_status BIGINT,
    error TEXT,
    duration_ms DOUBLE PRECISION NOT NULL
);
CREATE INDEX delivery_attempts_delivery ON delivery_attempts (delivery_id, at);

-- The last server.still_down reminder per channel and incident.
CREATE TABLE reminders (
    channel_id TEXT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    incident_id TEXT NOT NULL,
    last_sent_at BIGINT NOT NULL,
    PRIMARY KEY (channel_id, incident_id)
);
