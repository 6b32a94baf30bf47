-- Audit entries name their session and say what was asked: the prompt of a
-- chat or job (role `user`), else a one-line description (role `system`).
ALTER TABLE audit_log ADD COLUMN session_name TEXT;
ALTER TABLE audit_log ADD COLUMN role TEXT NOT NULL DEFAULT 'system';
ALTER TABLE audit_log ADD COLUMN content TEXT NOT NULL DEFAULT '';
-- Older entries kept no prompt: they read as their action and target.
UPDATE audit_log SET content = action || ' ' || target;
