DROP TABLE tenant_egress_hosts;
