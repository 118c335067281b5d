-- An owner's offer to hand a device to another account, until that account accepts,
-- declines or the offer expires (Unix seconds). One offer per device.
CREATE TABLE device_transfers (
    dev_id      TEXT    PRIMARY KEY REFERENCES devices (dev_id) ON DELETE CASCADE,
    from_owner  BIGINT  NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    to_owner    BIGINT  NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at  BIGINT  NOT NULL
);
CREATE INDEX device_transfers_to ON device_transfers (to_owner);
