DROP TABLE tenant_secrets;
ALTER TABLE repos DROP COLUMN credential_secret;
