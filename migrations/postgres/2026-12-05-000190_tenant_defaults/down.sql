DROP TABLE tenant_defaults;
