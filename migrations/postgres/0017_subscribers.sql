-- Readers subscribed to a status page (src/web/subscribe.rs) and the notices they are sent
-- (src/alert/notice.rs). An address is personal data: sealed, found by a keyed digest.
CREATE TABLE subscribers (
    id TEXT PRIMARY KEY,
    page_id TEXT NOT NULL,              -- a pages.id, or 'default'
    kind TEXT NOT NULL,                 -- email | webhook
    address_enc TEXT NOT NULL,          -- sealed address or URL
    address_mac TEXT NOT NULL,          -- keyed digest of the normalised address
    base_url TEXT NOT NULL,             -- the origin of the links they are sent
    confirmed_at BIGINT,                -- NULL until the reader confirms (double opt-in)
    confirm_sent_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (page_id, kind, address_mac)
);
CREATE INDEX subscribers_mac ON subscribers (address_mac);

-- The notices' outbox: the same life as `outbox` (pending, sending under a lease, delivered
-- or dead), one row per (post update, subscriber) or confirmation request.
CREATE TABLE notices (
    id TEXT PRIMARY KEY,
    subscriber_id TEXT NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,                 -- confirm | post
    post_id TEXT,
    update_id TEXT NOT NULL,            -- the post update ('' for a confirmation)
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_until BIGINT,
    last_status BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    delivered_at BIGINT
);
CREATE INDEX notices_due ON notices (status, next_attempt_at);
CREATE INDEX notices_subscriber ON notices (subscriber_id);
