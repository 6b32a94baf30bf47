ALTER TABLE sessions DROP COLUMN private_to;
