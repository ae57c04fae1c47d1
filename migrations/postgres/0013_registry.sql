-- The MCP Registry as a source of monitors (src/registry.rs, src/api/registry.rs): where an
-- imported server came from (JSON: registry, name, title, version, website, transport,
-- status), and why a server is paused when mcpwatch paused it ("registry: needs
-- configuration: …"); NULL when an operator paused it or it is not paused.
ALTER TABLE servers ADD COLUMN registry TEXT;
ALTER TABLE servers ADD COLUMN paused_reason TEXT;
