-- Platforms: what code each device's host runs (its Tether-Platform header at activation)
-- and, per module, one bundle per platform: the portable component (target, engine and
-- runtime empty) for hosts with the compiler, and code precompiled for a target, engine
-- and Wasmtime for hosts without it. modules.sha256 is now the portable component's
-- hash, which every bundle of the module shares; the bundles live in module_bundles.

ALTER TABLE devices ADD COLUMN platform TEXT;

CREATE TABLE module_bundles (
    module_id  INTEGER NOT NULL REFERENCES modules (id) ON DELETE CASCADE,
    target     TEXT    NOT NULL,
    engine     TEXT    NOT NULL,
    runtime    TEXT    NOT NULL,
    sha256     TEXT    NOT NULL,
    size       INTEGER NOT NULL,
    bundle     BLOB    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (module_id, target, engine, runtime)
);

INSERT INTO module_bundles (module_id, target, engine, runtime, sha256, size, bundle, created_at)
SELECT id, '', '', '', sha256, size, bundle, created_at FROM modules;
UPDATE modules SET bundle = x'';
