DROP TABLE model_calls;
DROP TABLE tenant_model_credentials;
