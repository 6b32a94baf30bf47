DROP INDEX sessions_owner_instance;
ALTER TABLE sessions DROP COLUMN lease_until;
ALTER TABLE sessions DROP COLUMN owner_epoch;
ALTER TABLE sessions DROP COLUMN owner_instance;
ALTER TABLE server_instances DROP COLUMN workspace_shared;
ALTER TABLE server_instances DROP COLUMN draining;
ALTER TABLE server_instances DROP COLUMN advertise_url;
