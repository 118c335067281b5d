-- Hot update: signed component bundles, rollouts of them, and each targeted device's state.

CREATE TABLE modules (
    id               INTEGER PRIMARY KEY,
    version          TEXT    NOT NULL,
    sequence         INTEGER NOT NULL,
    world            TEXT    NOT NULL,
    sha256           TEXT    NOT NULL,
    size             INTEGER NOT NULL,
    min_host_version TEXT    NOT NULL,
    signing_key      TEXT    NOT NULL,
    bundle           BLOB    NOT NULL,
    created_at       INTEGER NOT NULL,
    UNIQUE (signing_key, sequence)
);

-- A rollout targets a product (every device of it, including later ones) or a list of
-- devices (product_key NULL).
CREATE TABLE rollouts (
    id          INTEGER PRIMARY KEY,
    module_id   INTEGER NOT NULL REFERENCES modules (id) ON DELETE CASCADE,
    product_key TEXT,
    created_at  INTEGER NOT NULL
);

-- state: pending (notice due), notified, applied, refused, rolled_back.
CREATE TABLE rollout_devices (
    rollout_id INTEGER NOT NULL REFERENCES rollouts (id) ON DELETE CASCADE,
    dev_id     TEXT    NOT NULL,
    state      TEXT    NOT NULL,
    reason     TEXT,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (rollout_id, dev_id)
);
CREATE INDEX rollout_devices_dev ON rollout_devices (dev_id);

-- The last update outcome each device reported (JSON: version, sequence, result, reason).
ALTER TABLE devices ADD COLUMN module_outcome TEXT;
