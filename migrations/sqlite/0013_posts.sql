-- Incident posts and announced maintenance (src/api/posts.rs, the status page): what an
-- operator tells readers, with timestamped updates.
CREATE TABLE posts (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    title TEXT NOT NULL,
    status TEXT NOT NULL,
    impact TEXT NOT NULL,
    server_ids TEXT NOT NULL,
    window_id TEXT,
    incident_id TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    resolved_at BIGINT
);
CREATE INDEX posts_created ON posts (created_at);
CREATE TABLE post_updates (
    id TEXT PRIMARY KEY,
    post_id TEXT NOT NULL REFERENCES posts (id),
    status TEXT NOT NULL,
    message TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX post_updates_post ON post_updates (post_id, at);
