DROP TABLE agent_users;
