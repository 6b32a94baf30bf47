-- The hosts a tenant's agents may reach through the egress proxy
-- (AGENT_NETWORK=proxy): exact names and `*.example.com` wildcards, one row
-- each. A tenant without rows reaches nothing.
CREATE TABLE tenant_egress_hosts (
    tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    pattern TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (tenant_id, pattern)
);
