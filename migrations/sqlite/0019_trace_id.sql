-- The W3C trace id the probe sent (issue 16 §5): find mcpwatch's probes in a server's traces.
ALTER TABLE probe_results ADD COLUMN trace_id TEXT;
