DROP INDEX events_created;
ALTER TABLE messages DROP COLUMN interrupted;
DROP TABLE approvals;
