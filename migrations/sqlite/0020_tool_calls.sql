-- Synthetic tool calls (issue 16 §3): the calls a server is checked with (JSON, null: none),
-- and what each call did on each probe (JSON, null: no calls were asked for).
ALTER TABLE servers ADD COLUMN calls TEXT;
ALTER TABLE probe_results ADD COLUMN calls TEXT;
