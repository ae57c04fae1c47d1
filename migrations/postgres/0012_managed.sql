-- Monitors as code (src/monitors/): which monitors file an object came from. NULL: made
-- through the API. The API refuses to change or delete a managed object.
ALTER TABLE servers ADD COLUMN managed_by TEXT;
ALTER TABLE channels ADD COLUMN managed_by TEXT;
ALTER TABLE maintenance_windows ADD COLUMN managed_by TEXT;
