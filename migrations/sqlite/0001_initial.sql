-- Tether's schema. Times are Unix seconds.

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    username      TEXT    NOT NULL UNIQUE,
    password_hash TEXT    NOT NULL,          -- argon2id PHC string
    role          TEXT    NOT NULL CHECK (role IN ('admin', 'user')),
    created_at    INTEGER NOT NULL
);

CREATE TABLE products (
    product_key TEXT    PRIMARY KEY,
    created_at  INTEGER NOT NULL
);

-- Device identities issued to manufacturers. The authkey is kept so the service can
-- verify the device's HMAC signatures.
CREATE TABLE licenses (
    uuid        TEXT    PRIMARY KEY,
    authkey     TEXT    NOT NULL,
    product_key TEXT    NOT NULL REFERENCES products (product_key),
    created_at  INTEGER NOT NULL
);

-- Only a hash of token||secret is stored; public_id is region||token.
CREATE TABLE pairing_tokens (
    public_id   TEXT    PRIMARY KEY,
    secret_hash BLOB    NOT NULL,
    owner_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    region      TEXT    NOT NULL,
    max_devices INTEGER NOT NULL,
    used        INTEGER NOT NULL DEFAULT 0,
    expires_at  INTEGER NOT NULL,
    revoked     INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL
);
CREATE INDEX pairing_tokens_owner ON pairing_tokens (owner_id);

-- A bound device. `generation` changes on every activation and unbind; MQTT JWTs carry
-- the generation they were issued for, so older ones stop working.
CREATE TABLE devices (
    dev_id           TEXT    PRIMARY KEY,
    uuid             TEXT    NOT NULL UNIQUE REFERENCES licenses (uuid),
    owner_id         INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    product_key      TEXT    NOT NULL,
    dev_secret       TEXT    NOT NULL,
    generation       INTEGER NOT NULL,
    sw_ver           TEXT    NOT NULL,
    module_version   TEXT    NOT NULL,
    activated_at     INTEGER NOT NULL,
    online           INTEGER NOT NULL DEFAULT 0,
    last_seen        INTEGER,
    last_report      TEXT
);
CREATE INDEX devices_owner ON devices (owner_id);

-- One row per successful activation, so a token's devices and a device's activation
-- count survive re-activation with other tokens.
CREATE TABLE activations (
    id           INTEGER PRIMARY KEY,
    token_id     TEXT    NOT NULL REFERENCES pairing_tokens (public_id) ON DELETE CASCADE,
    uuid         TEXT    NOT NULL,
    dev_id       TEXT    NOT NULL,
    activated_at INTEGER NOT NULL,
    UNIQUE (token_id, uuid)
);
CREATE INDEX activations_uuid ON activations (uuid);

-- Failures and timings that devices report for a token.
CREATE TABLE pairing_reports (
    id         INTEGER PRIMARY KEY,
    token_id   TEXT    NOT NULL REFERENCES pairing_tokens (public_id) ON DELETE CASCADE,
    uuid       TEXT    NOT NULL,
    outcome    TEXT    NOT NULL,
    code       TEXT,
    phase      TEXT,
    message    TEXT,
    timings    TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX pairing_reports_token ON pairing_reports (token_id);
