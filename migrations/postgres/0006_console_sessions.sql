-- Web console sessions: the cookie carries a random id, the table only its SHA-256, so a
-- copy of the database cannot be replayed as a cookie. Logging out deletes the row.
CREATE TABLE console_sessions (
    id_hash     TEXT    PRIMARY KEY,
    user_id     BIGINT  NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  BIGINT  NOT NULL,
    expires_at  BIGINT  NOT NULL
);
CREATE INDEX console_sessions_expiry ON console_sessions (expires_at);
