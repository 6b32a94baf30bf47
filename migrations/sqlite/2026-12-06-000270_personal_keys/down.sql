DROP INDEX api_keys_by_owner;
ALTER TABLE api_keys DROP COLUMN expires_at;
ALTER TABLE api_keys DROP COLUMN owner_subject;
