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
    tenant = c #>> '{tenant,id}',
    trigger_source = c #>> '{trigger,source}',
    trigger_by = NULLIF(CASE WHEN c #>> '{trigger,by}' LIKE 'enc:v1:%' THEN NULL ELSE c #>> '{trigger,by}' END, ''),
    ticket = (SELECT v FROM (VALUES (1, c #>> '{inputs,ticket}', jsonb_typeof(c #> '{inputs,ticket}')),
                                    (2, c #>> '{inputs,ticket_id}', jsonb_typeof(c #> '{inputs,ticket_id}'))) AS t(n, v, ty)
              WHERE ty IN ('string', 'number') AND v NOT LIKE 'enc:v1:%' AND v <> ''
              ORDER BY n LIMIT 1)
FROM (SELECT id AS cid, context::jsonb AS c FROM runs) AS parsed
WHERE parsed.cid = runs.id;
UPDATE runs SET search = lower(id || ' ' || coalesce(person, '') || ' ' || coalesce(ticket, '') || ' ' || runbook);
-- The list's order (newest first, keyset paged by (created_at, id)) alone and under each
-- equality filter it offers. `runs_search` serves the plain order too and holds the searched
-- text, so a search scans the index instead of the wide rows (plan, context, machine); it
-- replaces the index on `created_at` alone.
DROP INDEX IF EXISTS runs_created;
CREATE INDEX runs_search ON runs(created_at, id, search);
CREATE INDEX runs_status_created ON runs(status, created_at, id);
DROP INDEX IF EXISTS runs_runbook;
CREATE INDEX runs_runbook_created ON runs(runbook, created_at, id);
CREATE INDEX runs_tenant_created ON runs(lower(tenant), created_at, id);
