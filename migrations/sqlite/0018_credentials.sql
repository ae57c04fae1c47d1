-- A probe identity by OAuth client credentials (src/probe/oauth.rs) and the credential-expiry
-- watchdog (src/credentials/): the identity as shown (JSON, no secret) and sealed (with it);
-- the `exp` of a static bearer JWT read when the headers are written; and which warnings the
-- watchdog has sent, once each per credential, expiry and lead time.
ALTER TABLE servers ADD COLUMN oauth TEXT;
ALTER TABLE servers ADD COLUMN oauth_enc TEXT;
ALTER TABLE servers ADD COLUMN bearer_expires_at BIGINT;
CREATE TABLE credential_warnings (
    server_id TEXT NOT NULL,
    credential TEXT NOT NULL,           -- `bearer` or `oauth_client`
    expires_at BIGINT NOT NULL,         -- the expiry warned about (a renewed credential warns again)
    stage TEXT NOT NULL,                -- `expiring:<lead seconds>` or `expired`
    sent_at BIGINT NOT NULL,
    PRIMARY KEY (server_id, credential, expires_at, stage)
);
