-- The `template` webhook format (src/alert/template.rs): the body template an operator wrote.
ALTER TABLE channels ADD COLUMN template TEXT;
