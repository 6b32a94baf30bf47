-- A tenant's named secrets, sealed with SECRETS_KEY; write-only through the
-- API, used by name wherever a credential is needed ({"secret": NAME}).
CREATE TABLE tenant_secrets (
    tenant_id TEXT NOT NULL,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP,
    PRIMARY KEY (tenant_id, name)
);
-- A repository whose credential is a tenant secret, by name (resolved at
-- each use, so a rotated secret applies at once).
ALTER TABLE repos ADD COLUMN credential_secret TEXT;
