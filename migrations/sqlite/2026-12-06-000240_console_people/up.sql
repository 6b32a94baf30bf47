-- Console sign-ins of people through the OpenID Connect provider: like
-- `console_sessions` (the browser holds a random id, only its SHA-256 is
-- stored) but standing for a person, mapped by their groups to a tenant
-- and role, rather than for an API key. The ID token is kept for the
-- provider's logout (`id_token_hint`).
CREATE TABLE console_people (
    id_hash TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    role TEXT NOT NULL,
    subject TEXT NOT NULL,
    email TEXT,
    id_token TEXT NOT NULL,
    csrf_token TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX console_people_expires ON console_people (expires_at);
CREATE INDEX console_people_by_tenant ON console_people (tenant_id);

-- Sign-ins under way: the browser that started one holds a random id in a
-- short-lived cookie (only its SHA-256 is stored); the row holds the
-- `state`, `nonce` and PKCE verifier its callback must match. Used once.
CREATE TABLE oidc_logins (
    id_hash TEXT PRIMARY KEY NOT NULL,
    state TEXT NOT NULL,
    nonce TEXT NOT NULL,
    verifier TEXT NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX oidc_logins_expires ON oidc_logins (expires_at);
