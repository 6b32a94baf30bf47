DROP TABLE server_secrets;
DROP TABLE webhook_attempts;
DROP TABLE webhook_deliveries;
DROP TABLE idempotency_keys;
DROP TABLE jobs;
