-- A revoked license activates no device again (Unix seconds of the revocation).
ALTER TABLE licenses ADD COLUMN revoked_at BIGINT;
