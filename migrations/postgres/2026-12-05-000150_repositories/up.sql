-- A tenant's git remotes. The credential is sealed with SECRETS_KEY
-- (write-only through the API); the server's bare mirror of each lives in
-- DATA_DIR/git/<tenant>/<id>.git.
CREATE TABLE repos (
    id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL,
    name TEXT NOT NULL,
    url TEXT NOT NULL,
    provider TEXT,
    api_url TEXT,
    default_branch TEXT NOT NULL,
    credential TEXT,
    credential_kind TEXT,
    author_name TEXT,
    author_email TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (tenant_id, name)
);
-- The repository a session was made from: its branch and where it began.
-- No foreign key to repos: a repository deleted while a session uses it
-- leaves the session and its worktree working (it can no longer push).
CREATE TABLE session_repos (
    session_id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL,
    repo_id TEXT NOT NULL,
    branch TEXT NOT NULL,
    base_ref TEXT NOT NULL,
    base_commit TEXT NOT NULL,
    pushed_commit TEXT,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX session_repos_repo ON session_repos (repo_id);
