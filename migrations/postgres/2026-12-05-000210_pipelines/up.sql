-- Pipelines: a graph of jobs whose steps start when the steps they depend
-- on end. The engine moves each step on with conditional updates, so one
-- node alone launches a step, even with several polling the same database.
CREATE TABLE pipelines (
    id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name TEXT,
    -- running, then done, failed or cancelled.
    status TEXT NOT NULL,
    -- The steps as the client sent them (JSON).
    definition TEXT NOT NULL,
    webhook_url TEXT,
    -- The key that made it: its steps' jobs run as that caller.
    key_id TEXT NOT NULL,
    key_label TEXT NOT NULL,
    role TEXT NOT NULL,
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMP NOT NULL,
    completed_at TIMESTAMP
);
CREATE INDEX pipelines_tenant_created ON pipelines (tenant_id, created_at);
CREATE INDEX pipelines_status ON pipelines (status);

CREATE TABLE pipeline_steps (
    pipeline_id TEXT NOT NULL REFERENCES pipelines(id) ON DELETE CASCADE,
    step_id TEXT NOT NULL,
    position BIGINT NOT NULL,
    -- waiting, launching, running, then done, failed, stopped or cancelled.
    state TEXT NOT NULL,
    reason TEXT,
    -- The step's units (JSON): one per job, several for a fan-out, each
    -- with its job id and session, or why it could not start.
    units TEXT NOT NULL,
    -- Units a fan-out has (NULL until its items are known).
    planned BIGINT,
    -- The instance launching it, and since when.
    claimed_by TEXT,
    claimed_at TIMESTAMP,
    started_at TIMESTAMP,
    completed_at TIMESTAMP,
    PRIMARY KEY (pipeline_id, step_id)
);
CREATE INDEX pipeline_steps_state ON pipeline_steps (state);
