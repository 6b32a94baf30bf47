-- What the gateway charged a tenant directly for a model call made outside
-- any turn (between turns, by a background process of the agent, or the
-- part of a call still streaming when its turn ended), in micro-USD. The
-- rest of a call's price was paid by the turn it belonged to.
ALTER TABLE model_calls ADD COLUMN charged_micros BIGINT NOT NULL DEFAULT 0;
