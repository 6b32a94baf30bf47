-- A private session is seen by the one who made it (`person:<sub>` for a
-- person, whether signed in or through a personal key; a key's id
-- otherwise) and by its tenant's admins. NULL: shared with the tenant.
ALTER TABLE sessions ADD COLUMN private_to TEXT;
