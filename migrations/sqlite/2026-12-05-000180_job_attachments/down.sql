ALTER TABLE jobs DROP COLUMN attachments;
