-- Tenants get budgets and quotas (NULL = the server default), keys keep
-- their label for audit, and an audit log of who did what.
ALTER TABLE tenants ADD COLUMN budget_micros BIGINT;
ALTER TABLE tenants ADD COLUMN spent_micros BIGINT NOT NULL DEFAULT 0;
-- Held by turns that are running, settled when they end.
ALTER TABLE tenants ADD COLUMN reserved_micros BIGINT NOT NULL DEFAULT 0;
ALTER TABLE tenants ADD COLUMN max_sessions BIGINT;
ALTER TABLE tenants ADD COLUMN max_running_turns BIGINT;
ALTER TABLE tenants ADD COLUMN rate_limit_requests BIGINT;
ALTER TABLE tenants ADD COLUMN rate_limit_window_seconds BIGINT;

ALTER TABLE sessions ADD COLUMN budget_micros BIGINT;

CREATE TABLE audit_log (
    id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL,
    key_id TEXT NOT NULL,
    key_label TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    client_addr TEXT,
    request_id TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX audit_log_tenant_created ON audit_log (tenant_id, created_at);
