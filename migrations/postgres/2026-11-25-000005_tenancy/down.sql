DROP TABLE audit_log;
ALTER TABLE sessions DROP COLUMN budget_micros;
ALTER TABLE tenants DROP COLUMN rate_limit_window_seconds;
ALTER TABLE tenants DROP COLUMN rate_limit_requests;
ALTER TABLE tenants DROP COLUMN max_running_turns;
ALTER TABLE tenants DROP COLUMN max_sessions;
ALTER TABLE tenants DROP COLUMN reserved_micros;
ALTER TABLE tenants DROP COLUMN spent_micros;
ALTER TABLE tenants DROP COLUMN budget_micros;
