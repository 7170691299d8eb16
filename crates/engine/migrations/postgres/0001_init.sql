-- Runs, with the pinned plan and the state machine's snapshot.
CREATE TABLE runs (
    id              TEXT PRIMARY KEY,
    runbook         TEXT NOT NULL,
    version         BIGINT NOT NULL,
    plan_hash       TEXT NOT NULL,
    plan            TEXT NOT NULL,
    context         TEXT NOT NULL,
    machine         TEXT NOT NULL,
    status          TEXT NOT NULL,
    concurrency_key TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    -- The head of the run's journal, so a transition chains events without reading it back.
    last_seq        BIGINT NOT NULL DEFAULT 0,
    last_hash       TEXT NOT NULL DEFAULT ''
);
CREATE INDEX runs_status ON runs(status);
CREATE INDEX runs_concurrency ON runs(concurrency_key, status);
CREATE INDEX runs_created ON runs(created_at);

-- Claimable work derived from the machine's actions: prepare a step, attempt an instance,
-- fire a timer. A lease (owner, until) marks a claim; an expired lease makes it claimable.
-- Workers claim with FOR UPDATE SKIP LOCKED. (No foreign key to runs: its KEY SHARE lock
-- would make task inserts wait on a run row another worker holds.)
CREATE TABLE tasks (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id      TEXT NOT NULL,
    step        TEXT NOT NULL,
    item        BIGINT NOT NULL,
    kind        TEXT NOT NULL,
    due_at      BIGINT NOT NULL,
    lease_owner TEXT,
    lease_until BIGINT,
    UNIQUE (run_id, step, item, kind)
);
CREATE INDEX tasks_due ON tasks(due_at, id);

-- The journal: append-only, hash-chained per run.
CREATE TABLE events (
    run_id    TEXT NOT NULL,
    seq       BIGINT NOT NULL,
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
    item   BIGINT NOT NULL,
    output TEXT NOT NULL,
    PRIMARY KEY (run_id, step, item)
);

-- Approval decisions.
CREATE TABLE decisions (
    run_id   TEXT NOT NULL,
    step     TEXT NOT NULL,
    approver TEXT NOT NULL,
    decision TEXT NOT NULL,
    at       BIGINT NOT NULL,
    PRIMARY KEY (run_id, step, approver)
);
