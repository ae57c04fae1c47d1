-- The change feed: the scheduler reads servers written since its last look (not every server
-- every few seconds), and a notification wakes it as soon as one is written.
CREATE INDEX servers_updated_at ON servers (updated_at);

CREATE FUNCTION mcpwatch_servers_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('mcpwatch_servers', '');
    RETURN NULL;
END;
$$;

-- Inserts and deletes per statement (a bulk registration of 10,000 servers is one
-- notification); updates only when `updated_at` moves, so the ingest's era hints stay quiet.
CREATE TRIGGER servers_added_or_removed AFTER INSERT OR DELETE ON servers
    FOR EACH STATEMENT EXECUTE FUNCTION mcpwatch_servers_changed();
CREATE TRIGGER servers_edited AFTER UPDATE ON servers
    FOR EACH ROW WHEN (OLD.updated_at IS DISTINCT FROM NEW.updated_at)
    EXECUTE FUNCTION mcpwatch_servers_changed();
