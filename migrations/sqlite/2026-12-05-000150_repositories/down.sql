DROP TABLE session_repos;
DROP TABLE repos;
