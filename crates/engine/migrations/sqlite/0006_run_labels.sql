-- Small labels a runs list shows and searches without reading a run's plan, context or
-- machine: whom the run acts on (`person`, e.g. a UPN), its tenant id, the PSA ticket, and
-- how it was started. Derived when a run is created (`labels.rs`), from its plan and
-- rendered context; never a secret.
ALTER TABLE runs ADD COLUMN person TEXT;
ALTER TABLE runs ADD COLUMN tenant TEXT;
ALTER TABLE runs ADD COLUMN ticket TEXT;
ALTER TABLE runs ADD COLUMN trigger_source TEXT;
ALTER TABLE runs ADD COLUMN trigger_by TEXT;
-- What the list's free text is matched against: id, person, ticket and runbook in lower case.
ALTER TABLE runs ADD COLUMN search TEXT;
-- Existing runs: what the stored context holds as it is (the tenant, the trigger, a
-- `ticket`/`ticket_id` input). A sealed (secret) value is never copied. The person needs the
-- step catalogue, so only runs created from now on have one.
UPDATE runs SET
    tenant = json_extract(context, '$.tenant.id'),
    trigger_source = json_extract(context, '$.trigger.source'),
    trigger_by = CASE WHEN json_extract(context, '$.trigger.by') LIKE 'enc:v1:%' THEN NULL
                      ELSE json_extract(context, '$.trigger.by') END,
    ticket = CASE
        WHEN json_type(context, '$.inputs.ticket') IN ('text', 'integer')
             AND CAST(json_extract(context, '$.inputs.ticket') AS TEXT) NOT LIKE 'enc:v1:%'
             AND CAST(json_extract(context, '$.inputs.ticket') AS TEXT) <> ''
            THEN CAST(json_extract(context, '$.inputs.ticket') AS TEXT)
        WHEN json_type(context, '$.inputs.ticket_id') IN ('text', 'integer')
             AND CAST(json_extract(context, '$.inputs.ticket_id') AS TEXT) NOT LIKE 'enc:v1:%'
             AND CAST(json_extract(context, '$.inputs.ticket_id') AS TEXT) <> ''
            THEN CAST(json_extract(context, '$.inputs.ticket_id') AS TEXT)
    END
WHERE json_valid(context);
UPDATE runs SET search = lower(id || ' ' || coalesce(person, '') || ' ' || coalesce(ticket, '') || ' ' || runbook);
-- The list's order (newest first, keyset paged by (created_at, id)) alone and under each
-- equality filter it offers. `runs_search` serves the plain order too and holds the searched
-- text, so a search reads the index and only the matching rows (the wide rows hold the plan,
-- context and machine); it replaces the index on `created_at` alone.
DROP INDEX IF EXISTS runs_created;
CREATE INDEX runs_search ON runs(created_at, id, search);
CREATE INDEX runs_status_created ON runs(status, created_at, id);
CREATE INDEX runs_runbook_created ON runs(runbook, created_at, id);
CREATE INDEX runs_tenant_created ON runs(lower(tenant), created_at, id);
