ALTER TABLE model_calls DROP COLUMN charged_micros;
