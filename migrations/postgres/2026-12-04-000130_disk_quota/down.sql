ALTER TABLE tenants DROP COLUMN disk_max_mb;
