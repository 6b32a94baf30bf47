-- Each tenant's spend and counts per UTC day, added to in the transaction
-- that stores each turn: usage outlives the sessions that ran it.
CREATE TABLE usage_daily (
    tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    day DATE NOT NULL,
    turns BIGINT NOT NULL DEFAULT 0,
    cost_micros BIGINT NOT NULL DEFAULT 0,
    input_tokens BIGINT NOT NULL DEFAULT 0,
    output_tokens BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, day)
);

-- What the stored history of existing sessions says.
INSERT INTO usage_daily (tenant_id, day, turns, cost_micros, input_tokens, output_tokens)
SELECT s.tenant_id,
       m.created_at::date,
       COUNT(*),
       SUM(m.cost_micros),
       SUM(COALESCE((NULLIF(m.usage, '')::json ->> 'input_tokens')::bigint, 0)
           + COALESCE((NULLIF(m.usage, '')::json ->> 'cache_creation_input_tokens')::bigint, 0)
           + COALESCE((NULLIF(m.usage, '')::json ->> 'cache_read_input_tokens')::bigint, 0)),
       SUM(COALESCE((NULLIF(m.usage, '')::json ->> 'output_tokens')::bigint, 0))
FROM messages m JOIN sessions s ON s.id = m.session_id
WHERE m.role = 'assistant'
GROUP BY s.tenant_id, m.created_at::date;
