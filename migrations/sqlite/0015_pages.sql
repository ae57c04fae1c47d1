-- Status pages (src/api/pages.rs, src/web/): branding, and which servers a page shows, chosen
-- by the Host a reader asks for. `host` NULL: the default page's branding.
CREATE TABLE pages (
    id TEXT PRIMARY KEY,
    host TEXT UNIQUE,
    title TEXT NOT NULL,
    description TEXT,
    logo_url TEXT,
    accent TEXT,
    footer TEXT,
    links TEXT NOT NULL,
    tags TEXT NOT NULL,
    server_ids TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
