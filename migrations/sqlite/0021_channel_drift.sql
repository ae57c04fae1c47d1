-- Which schema changes a channel is sent (issue 16 §2): any of `breaking`, `security`,
-- `compatible` (JSON list); empty: every schema change.
ALTER TABLE channels ADD COLUMN drift TEXT NOT NULL DEFAULT '[]';
