UPDATE api_keys SET role = 'admin' WHERE role = 'owner';
UPDATE schedules SET role = 'admin' WHERE role = 'owner';
UPDATE pipelines SET role = 'admin' WHERE role = 'owner';
-- Viewers had no equivalent: their keys are revoked rather than widened.
UPDATE api_keys SET revoked_at = created_at WHERE role = 'viewer' AND revoked_at IS NULL;
