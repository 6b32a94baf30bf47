-- The end of each turn of a session, as a fork at that turn needs it: the
-- last conversation entry of the turn (the transcript is cut after it), the
-- conversation it belongs to, and whether the workspace was snapshotted
-- then (`snapshot`: stored, over_limit, failed, expired) with why not and
-- its size. The files themselves are in the server's snapshot store.
CREATE TABLE turn_snapshots (
    session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    turn BIGINT NOT NULL,
    cli_session_id TEXT NOT NULL,
    entry_uuid TEXT,
    snapshot TEXT NOT NULL,
    reason TEXT,
    files BIGINT NOT NULL,
    bytes BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (session_id, turn)
);

-- Which session a session was forked from, at which turn. The parent's name
-- is kept: the link outlives the parent's deletion.
CREATE TABLE session_forks (
    session_id TEXT PRIMARY KEY NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    tenant_id TEXT NOT NULL,
    parent_session_id TEXT NOT NULL,
    parent_name TEXT NOT NULL,
    at_turn BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX session_forks_by_parent ON session_forks (tenant_id, parent_session_id, created_at);
