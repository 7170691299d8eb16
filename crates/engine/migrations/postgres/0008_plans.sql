-- Pinned plans, once per distinct plan, by hash, apart from the runs that use them: a run's
-- row is rewritten on every transition and its plan never changes, so the plan (a few KB)
-- made every such write longer (past a page, onto overflow pages). Existing runs' plans move
-- here; runs read theirs by `plan_hash`.
CREATE TABLE plans (
    hash TEXT PRIMARY KEY,
    plan TEXT NOT NULL
);
INSERT INTO plans (hash, plan) SELECT plan_hash, plan FROM runs
    ON CONFLICT (hash) DO NOTHING;
ALTER TABLE runs DROP COLUMN plan;
