ALTER TABLE audit_log DROP COLUMN content;
ALTER TABLE audit_log DROP COLUMN role;
ALTER TABLE audit_log DROP COLUMN session_name;
