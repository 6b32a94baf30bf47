-- Who made each session and job: the key's id (or `person:<sub>` for a
-- person's console sign-in) and its label (a person's email; a personal
-- key's label names its person). Empty for rows made before.
ALTER TABLE sessions ADD COLUMN created_by TEXT;
ALTER TABLE sessions ADD COLUMN created_by_label TEXT;
ALTER TABLE jobs ADD COLUMN created_by TEXT;
ALTER TABLE jobs ADD COLUMN created_by_label TEXT;
