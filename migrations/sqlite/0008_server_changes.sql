-- The change feed: the scheduler reads servers written since its last look (not every server
-- every few seconds).
CREATE INDEX servers_updated_at ON servers (updated_at);
