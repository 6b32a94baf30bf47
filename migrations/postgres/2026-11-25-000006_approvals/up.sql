-- Tool approvals: each `can_use_tool` request of a session's CLI that the
-- server's policy does not settle itself waits here for a client's decision.
CREATE TABLE approvals (
    id TEXT PRIMARY KEY NOT NULL,
    session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    -- The job whose turn asked, when it was a job.
    job_id TEXT,
    tool TEXT NOT NULL,
    -- JSON: the tool's input and the CLI's permission suggestions.
    input TEXT NOT NULL,
    suggestions TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    -- pending | allowed | denied | expired | cancelled
    status TEXT NOT NULL,
    -- JSON: what was answered (behavior, message, updated input), once decided.
    decision TEXT,
    decided_at TIMESTAMP
);
CREATE INDEX approvals_session_status ON approvals (session_id, status);

-- An assistant answer cut short by `POST /sessions/{name}/interrupt`.
ALTER TABLE messages ADD COLUMN interrupted BOOLEAN NOT NULL DEFAULT FALSE;
-- Retention purge scans by age.
CREATE INDEX events_created ON events (created_at);
