-- Folders a session delete could not remove at once (an agent's file
-- held open, a full disk): the session is gone, the folder is recorded
-- here and retried by every node's sweeper until it is gone too.
CREATE TABLE leftover_folders (
    path TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL,
    last_error TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    last_tried_at TIMESTAMP NOT NULL
);
