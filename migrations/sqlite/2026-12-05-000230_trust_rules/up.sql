-- Trust rules: bearer tokens of `issuer` whose `aud` holds `audience` and
-- whose claims equal every value of `claims` (a JSON object of claim name
-- to value; a value ending in `*` matches by prefix) act as `role` of
-- `tenant_id`. Names are unique on the server: the first matching rule by
-- name decides.
CREATE TABLE trust_rules (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL UNIQUE,
    issuer TEXT NOT NULL,
    audience TEXT NOT NULL,
    claims TEXT NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    role TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX trust_rules_by_issuer ON trust_rules (issuer, name);
CREATE INDEX trust_rules_by_tenant ON trust_rules (tenant_id);
