-- A tenant's own model credential: the gateway uses it instead of the
-- server's for that tenant's CLI processes. Never returned by the API.
CREATE TABLE tenant_model_credentials (
    tenant_id TEXT PRIMARY KEY NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    secret TEXT NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

-- Every model call that went through the gateway, with the usage the model
-- reported: exact accounting per tenant and session, even for turns cut short.
CREATE TABLE model_calls (
    id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL,
    session_id TEXT,
    model TEXT,
    status INTEGER NOT NULL,
    input_tokens BIGINT NOT NULL DEFAULT 0,
    output_tokens BIGINT NOT NULL DEFAULT 0,
    cache_creation_input_tokens BIGINT NOT NULL DEFAULT 0,
    cache_read_input_tokens BIGINT NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX model_calls_tenant ON model_calls (tenant_id, created_at);
CREATE INDEX model_calls_session ON model_calls (session_id);
