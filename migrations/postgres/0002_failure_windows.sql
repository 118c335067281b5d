-- Failure limits that several service processes share (wrong passwords per account,
-- wrong secrets per pairing token): one fixed window per limit and key, in Unix seconds.
-- A service on SQLite is one process and keeps these windows in memory.
CREATE TABLE failure_windows (
    kind         TEXT    NOT NULL,
    key          TEXT    NOT NULL,
    window_start BIGINT  NOT NULL,
    failures     BIGINT  NOT NULL,
    PRIMARY KEY (kind, key)
);
CREATE INDEX failure_windows_start ON failure_windows (window_start);
