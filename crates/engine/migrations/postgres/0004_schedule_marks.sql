-- The last tick each schedule trigger handled (unix ms), per runbook and trigger index, with
-- the schedule it was recorded for (cron, timezone): advanced by compare-and-set, so two
-- schedulers on one database cannot both move it.
CREATE TABLE schedule_marks (
    runbook TEXT NOT NULL,
    trigger_index BIGINT NOT NULL,
    spec TEXT NOT NULL,
    last_tick BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (runbook, trigger_index)
);
