-- A member's own keys: `owner_subject` names the person (the provider's
-- `sub`) whose key it is, revoked with their membership; `expires_at`
-- ends a key by itself (personal keys always have one).
ALTER TABLE api_keys ADD COLUMN owner_subject TEXT;
ALTER TABLE api_keys ADD COLUMN expires_at TIMESTAMP;
CREATE INDEX api_keys_by_owner ON api_keys (tenant_id, owner_subject);
