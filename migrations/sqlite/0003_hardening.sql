-- Nonces of signed device requests, kept for their timestamp window so that a request
-- captured before a restart cannot be replayed after it.
CREATE TABLE device_nonces (
    signer     TEXT    NOT NULL,             -- "uuid:<uuid>" or "dev_id:<dev_id>"
    nonce      TEXT    NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (signer, nonce)
) WITHOUT ROWID;
CREATE INDEX device_nonces_expiry ON device_nonces (expires_at);

-- How secret_hash was made: 'sha256' (tokens created before this migration) or
-- 'hmac-sha256' (keyed with the data dir's token-hash key, so a dump alone is not enough
-- to guess the 4-character secret).
ALTER TABLE pairing_tokens ADD COLUMN hash_scheme TEXT NOT NULL DEFAULT 'sha256';
