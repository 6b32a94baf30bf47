-- Each start of a server is an instance; it heartbeats while it runs. What
-- an instance holds (budget reservations, idempotency claims) is released
-- once it is gone: at the next start of the same node, or by any instance
-- that finds its heartbeat stale.
CREATE TABLE server_instances (
    id TEXT PRIMARY KEY NOT NULL,
    node_id TEXT NOT NULL,
    started_at TIMESTAMP NOT NULL,
    heartbeat_at TIMESTAMP NOT NULL
);

-- One row per running turn of a budgeted tenant; tenants.reserved_micros
-- is their sum, moved in the same transactions.
CREATE TABLE budget_reservations (
    id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    session_id TEXT,
    amount_micros BIGINT NOT NULL,
    owner TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX budget_reservations_owner ON budget_reservations (owner);

-- The instance running a claimed request, until it is answered.
ALTER TABLE idempotency_keys ADD COLUMN owner TEXT;

-- Reservations made before rows existed belonged to processes that are gone
-- (the server is starting to run this migration).
UPDATE tenants SET reserved_micros = 0;
