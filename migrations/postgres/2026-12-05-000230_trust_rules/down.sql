DROP TABLE trust_rules;
