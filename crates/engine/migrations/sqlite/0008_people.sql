-- People sync (`tenure-people`): durable links between a source's person and a tenant's
-- account, the record of each sync, and each (source, tenant)'s read cursor.

-- A person of a source linked to an account of a tenant; `account_id` is NULL while the run
-- `run_id` is creating the account (a pending link).
CREATE TABLE people_links (
    tenant              TEXT NOT NULL,
    source              TEXT NOT NULL,
    person_key          TEXT NOT NULL,
    account_id          TEXT,
    user_principal_name TEXT,
    via                 TEXT NOT NULL,
    run_id              TEXT,
    created_ms          INTEGER NOT NULL,
    updated_ms          INTEGER NOT NULL,
    PRIMARY KEY (tenant, source, person_key)
);
-- One account is linked to at most one person per tenant, whatever the source: concurrent
-- link calls cannot both win.
CREATE UNIQUE INDEX people_links_account ON people_links(tenant, account_id)
    WHERE account_id IS NOT NULL;

-- One sync: its plan and outcome as JSON text, newest first per source.
CREATE TABLE people_syncs (
    id          TEXT PRIMARY KEY,
    source      TEXT NOT NULL,
    tenant      TEXT NOT NULL,
    started_ms  INTEGER NOT NULL,
    finished_ms INTEGER,
    mode        TEXT NOT NULL,
    status      TEXT NOT NULL,
    summary     TEXT NOT NULL,
    plan        TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    requests    INTEGER NOT NULL
);
CREATE INDEX people_syncs_started ON people_syncs(started_ms, id);
CREATE INDEX people_syncs_source ON people_syncs(source, started_ms, id);

-- The last tenant snapshot a (source, tenant) read, with its Graph delta link (JSON text).
CREATE TABLE people_cursors (
    source     TEXT NOT NULL,
    tenant     TEXT NOT NULL,
    cursor     TEXT NOT NULL,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (source, tenant)
);
