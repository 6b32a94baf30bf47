-- The CLI's transcript of each conversation, mirrored line by line from its
-- `transcript_mirror` frames, so a transcript file that is missing (purged,
-- lost, or written on another node) can be rebuilt before `--resume`.
-- `entry_key` is the entry's `uuid`, or the SHA-256 of its line when it has
-- none: an entry mirrored twice is stored once. `position` is the order in
-- which entries first appeared. Lines are stored whole, however large: a
-- transcript with a line missing cannot be resumed as it was.
CREATE TABLE transcript_entries (
    session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    cli_session_id TEXT NOT NULL,
    position BIGINT NOT NULL,
    entry_key TEXT NOT NULL,
    line TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (session_id, cli_session_id, entry_key)
);
CREATE INDEX transcript_entries_order
    ON transcript_entries (session_id, cli_session_id, position);
