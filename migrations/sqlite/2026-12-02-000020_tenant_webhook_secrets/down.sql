DROP TABLE tenant_webhook_secrets;
