-- Runs, with the pinned plan and the state machine's snapshot.
CREATE TABLE runs (
    id              TEXT PRIMARY KEY,
    runbook         TEXT NOT NULL,
    version         INTEGER NOT NULL,
    plan_hash       TEXT NOT NULL,
    plan            TEXT NOT NULL,
    context         TEXT NOT NULL,
    machine         TEXT NOT NULL,
    status          TEXT NOT NULL,
    concurrency_key TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX runs_status ON runs(status);
CREATE INDEX runs_concurrency ON runs(concurrency_key, status);

-- Claimable work derived from the machine's actions: prepare a step, attempt an instance,
-- fire a timer. A lease (owner, until) marks a claim; an expired lease makes it claimable.
CREATE TABLE tasks (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id      TEXT NOT NULL REFERENCES runs(id),
    step        TEXT NOT NULL,
    item        INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    due_at      INTEGER NOT NULL,
    lease_owner TEXT,
    lease_until INTEGER,
    UNIQUE (run_id, step, item, kind)
);
CREATE INDEX tasks_due ON tasks(due_at);

-- The journal: append-only, hash-chained per run.
CREATE TABLE events (
    run_id    TEXT NOT NULL,
    seq       INTEGER NOT NULL,
    at        TEXT NOT NULL,
    body      TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);

-- Step outputs, for templates of later steps.
CREATE TABLE outputs (
    run_id TEXT NOT NULL,
    step   TEXT NOT NULL,
    item   INTEGER NOT NULL,
    output TEXT NOT NULL,
    PRIMARY KEY (run_id, step, item)
);

-- Approval decisions.
CREATE TABLE decisions (
    run_id   TEXT NOT NULL,
    step     TEXT NOT NULL,
    approver TEXT NOT NULL,
    decision TEXT NOT NULL,
    at       INTEGER NOT NULL,
    PRIMARY KEY (run_id, step, approver)
);
