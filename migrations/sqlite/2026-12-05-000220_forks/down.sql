DROP TABLE session_forks;
DROP TABLE turn_snapshots;
