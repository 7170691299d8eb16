-- A run started by a `runbook.call` step names the run, step and item that called it; the
-- caller is woken in the transaction that ends the called run.
ALTER TABLE runs ADD COLUMN parent_run TEXT;
ALTER TABLE runs ADD COLUMN parent_step TEXT;
ALTER TABLE runs ADD COLUMN parent_item BIGINT;
CREATE INDEX runs_parent ON runs(parent_run, parent_step, parent_item);
