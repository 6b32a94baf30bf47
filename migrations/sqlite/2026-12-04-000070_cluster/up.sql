-- Many servers on one database. Each instance says where the others reach
-- it, whether it is draining, and whether it sees the shared workspace root.
ALTER TABLE server_instances ADD COLUMN advertise_url TEXT;
ALTER TABLE server_instances ADD COLUMN draining BOOLEAN NOT NULL DEFAULT 0;
ALTER TABLE server_instances ADD COLUMN workspace_shared BOOLEAN NOT NULL DEFAULT 1;

-- A session runs on one instance at a time: the lease's holder, until
-- lease_until. Each change of holder raises the epoch, and every write of a
-- session's actor checks the epoch it holds.
ALTER TABLE sessions ADD COLUMN owner_instance TEXT;
ALTER TABLE sessions ADD COLUMN owner_epoch BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN lease_until TIMESTAMP;
CREATE INDEX sessions_owner_instance ON sessions (owner_instance);
