ALTER TABLE jobs DROP COLUMN created_by_label;
ALTER TABLE jobs DROP COLUMN created_by;
ALTER TABLE sessions DROP COLUMN created_by_label;
ALTER TABLE sessions DROP COLUMN created_by;
