-- What a tenant's new sessions start from, under their template and their
-- own choices (a session spec, JSON); set by admins.
CREATE TABLE tenant_defaults (
    tenant_id TEXT PRIMARY KEY NOT NULL,
    spec TEXT NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
