-- The workspace a session created (and deletes with it), kept apart from
-- `workspace`, the directory the session currently works in, which
-- `POST /sessions/{name}/repo` may point elsewhere. NULL: the session created
-- none, so deleting it removes no directory.
ALTER TABLE sessions ADD COLUMN created_workspace TEXT;
UPDATE sessions SET created_workspace = workspace WHERE owns_workspace;
