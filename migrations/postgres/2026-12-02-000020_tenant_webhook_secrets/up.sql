-- Each tenant's webhook signing secret. After a rotation the previous one
-- also signs until `previous_expires_at`, so receivers can switch over.
CREATE TABLE tenant_webhook_secrets (
    tenant_id TEXT PRIMARY KEY NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    secret TEXT NOT NULL,
    previous_secret TEXT,
    previous_expires_at TIMESTAMP,
    updated_at TIMESTAMP NOT NULL
);
