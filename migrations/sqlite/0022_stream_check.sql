-- The streaming check (issue 16 §4): what it saw on each probe (JSON, null: none asked for).
ALTER TABLE probe_results ADD COLUMN stream TEXT;
