-- A job's images and documents (JSON, base64), sent with its prompt each time it runs.
ALTER TABLE jobs ADD COLUMN attachments TEXT;
