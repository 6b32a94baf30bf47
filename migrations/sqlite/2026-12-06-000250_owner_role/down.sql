UPDATE api_keys SET role = 'admin' WHERE role = 'owner';
UPDATE api_keys SET role = 'member' WHERE role = 'viewer';
