-- The permission modes a tenant's sessions and turns may use (comma-separated);
-- NULL: every mode the server allows.
ALTER TABLE tenants ADD COLUMN allowed_permission_modes TEXT;
