ALTER TABLE tenants DROP COLUMN allowed_permission_modes;
