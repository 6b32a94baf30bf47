-- The people of a tenant: who signed in through the identity provider
-- (mapped by their groups) or accepted an admin's invitation, and their
-- role. `source` says which: `groups` (the provider's groups set the role
-- at each sign-in), `invitation` or `admin` (the role an admin set stays).
CREATE TABLE tenant_members (
    id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    subject TEXT NOT NULL,
    email TEXT,
    role TEXT NOT NULL,
    source TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    last_sign_in_at TIMESTAMP
);
CREATE UNIQUE INDEX tenant_members_person ON tenant_members (tenant_id, subject);
CREATE INDEX tenant_members_by_subject ON tenant_members (subject);

-- An admin's invitation of an email address to the tenant with a role;
-- taken by the first sign-in of a person whose verified email it is.
CREATE TABLE member_invitations (
    id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    email TEXT NOT NULL,
    role TEXT NOT NULL,
    invited_by TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX member_invitations_email ON member_invitations (tenant_id, email);
CREATE INDEX member_invitations_by_email ON member_invitations (email);
