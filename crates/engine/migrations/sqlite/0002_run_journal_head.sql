-- The head of each run's journal (last sequence number and hash), kept on the run row so a
-- transition chains its events without reading the journal back.
ALTER TABLE runs ADD COLUMN last_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN last_hash TEXT NOT NULL DEFAULT '';
UPDATE runs SET
    last_seq = COALESCE((SELECT MAX(seq) FROM events WHERE events.run_id = runs.id), 0),
    last_hash = COALESCE((SELECT hash FROM events WHERE events.run_id = runs.id ORDER BY seq DESC LIMIT 1), '');
