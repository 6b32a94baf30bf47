-- Recurring or one-shot jobs. A schedule runs as its tenant, in the name of
-- the key that made it (key_id, key_label, role: for the audit log).
CREATE TABLE schedules (
    id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL,
    name TEXT NOT NULL,
    key_id TEXT NOT NULL,
    key_label TEXT NOT NULL,
    role TEXT NOT NULL,
    -- Exactly one of cron, every_seconds and run_at.
    cron TEXT,
    every_seconds BIGINT,
    run_at TIMESTAMP,
    timezone TEXT NOT NULL,
    -- The job of each run (a JobPlan, JSON).
    job TEXT NOT NULL,
    overlap TEXT NOT NULL,
    catch_up TEXT NOT NULL,
    start_deadline_seconds BIGINT,
    paused BOOLEAN NOT NULL,
    pause_note TEXT,
    -- The next due time; NULL once a one-shot has run.
    next_run_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX schedules_tenant_name ON schedules (tenant_id, name);
CREATE INDEX schedules_due ON schedules (next_run_at);

-- Every run of a schedule, started or not: claimed with its due time in
-- the same transaction that moves the schedule's next_run_at on.
CREATE TABLE schedule_runs (
    id TEXT PRIMARY KEY NOT NULL,
    schedule_id TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    -- schedule, catch_up or manual.
    origin TEXT NOT NULL,
    due_at TIMESTAMP NOT NULL,
    -- claimed, waiting, started, skipped or error.
    status TEXT NOT NULL,
    reason TEXT,
    -- Chosen when the run is claimed, so a run interrupted by a crash is
    -- found (or started) under the same id, never twice.
    job_id TEXT NOT NULL,
    session_name TEXT,
    started_at TIMESTAMP,
    -- When it was last claimed to be started: a run left claimed long
    -- after this lost its node and is taken over.
    claimed_at TIMESTAMP NOT NULL
);
-- A due time of a schedule is run at most once, whichever node claims it.
CREATE UNIQUE INDEX schedule_runs_once ON schedule_runs (schedule_id, due_at) WHERE origin <> 'manual';
CREATE INDEX schedule_runs_by_schedule ON schedule_runs (schedule_id, id);
CREATE INDEX schedule_runs_unstarted ON schedule_runs (status, claimed_at);
CREATE INDEX schedule_runs_by_tenant ON schedule_runs (tenant_id, started_at);
