ALTER TABLE idempotency_keys DROP COLUMN owner;
DROP TABLE budget_reservations;
DROP TABLE server_instances;
