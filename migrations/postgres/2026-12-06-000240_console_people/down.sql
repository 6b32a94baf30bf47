DROP TABLE oidc_logins;
DROP TABLE console_people;
