-- A run started with a dedup key (a ticket id + event, an API client's idempotency key) is
-- started once: a second start with the same key returns the existing run.
ALTER TABLE runs ADD COLUMN dedup_key TEXT;
CREATE UNIQUE INDEX runs_dedup_key ON runs(dedup_key);
CREATE INDEX runs_created ON runs(created_at);
