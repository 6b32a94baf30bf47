-- One agent user per tenant: when the server runs as root, a tenant's
-- agents run as uid/gid `AGENT_UID + slot` / `AGENT_GID + slot`, so file
-- modes and the kernel's ptrace rules keep tenants apart even if something
-- else fails. Slots are never reused (a deleted tenant's files may remain).
CREATE TABLE agent_users (
    tenant_id TEXT PRIMARY KEY NOT NULL,
    slot BIGINT NOT NULL UNIQUE
);
