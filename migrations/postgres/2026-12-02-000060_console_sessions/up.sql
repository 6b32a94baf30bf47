-- Web console sign-ins: the browser holds a random id in an HttpOnly
-- cookie; only its SHA-256 is stored. The row stands for the API key that
-- signed in (a revoked key ends it) until it expires or the user signs out.
CREATE TABLE console_sessions (
    id_hash TEXT PRIMARY KEY NOT NULL,
    key_id TEXT NOT NULL REFERENCES api_keys(id) ON DELETE CASCADE,
    tenant_id TEXT NOT NULL,
    csrf_token TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX console_sessions_expires ON console_sessions (expires_at);
