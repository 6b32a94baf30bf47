-- Admin keys administered every tenant; that is now the owner's role, and
-- an admin administers its own tenant only.
UPDATE api_keys SET role = 'owner' WHERE role = 'admin';
-- What those keys made runs with the role they had.
UPDATE schedules SET role = 'owner' WHERE role = 'admin';
UPDATE pipelines SET role = 'owner' WHERE role = 'admin';
