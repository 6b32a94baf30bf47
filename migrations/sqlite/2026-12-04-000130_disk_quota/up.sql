-- A tenant's own disk quota for its agents (workspaces and CLI state), in
-- MiB; NULL = the server's AGENT_DISK_MAX_MB.
ALTER TABLE tenants ADD COLUMN disk_max_mb BIGINT;
