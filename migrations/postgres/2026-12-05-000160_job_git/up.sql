-- What a job's git step did (commit, push, pull request), as JSON.
ALTER TABLE jobs ADD COLUMN git TEXT;
