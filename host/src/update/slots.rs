//! The update slots on disk, in `DATA_DIR/modules/`: each installed bundle as
//! `<sha256>.bundle`, and `state.json` naming the active one, the previous one, the one
//! on probation, the highest sequence accepted and the last outcome. Every file is
//! replaced atomically, so a crash leaves either the old or the new state.

use std::path::{Path, PathBuf};

use crate::atomic_file;

/// The slots' types are wire types too (`ctl module-status` shows them), so they live in
/// `tether_proto::module`; this module keeps them on disk.
pub use tether_proto::module::{
    InstalledModule as Installed, UpdateOutcome as Outcome, UpdateSlots as Slots,
};

/// `state.json` and the bundle files of the update slots.
pub trait SlotsFile: Sized {
    /// Reads the state in `dir` (empty when there is none yet).
    fn load(dir: &Path) -> anyhow::Result<Self>;
    /// Writes the state into `dir` atomically.
    fn save(&self, dir: &Path) -> std::io::Result<()>;
    /// Where the bundle with component hash `sha256` is kept.
    fn bundle_path(dir: &Path, sha256: &str) -> PathBuf;
    /// Keeps a bundle's bytes in `dir` atomically.
    fn store_bundle(dir: &Path, sha256: &str, bytes: &[u8]) -> std::io::Result<()>;
    /// Removes bundle files no slot names.
    fn prune(&self, dir: &Path);
}

impl SlotsFile for Slots {
    /// Reads the state in `dir` (empty when there is none yet).
    fn load(dir: &Path) -> anyhow::Result<Self> {
        match std::fs::read(dir.join("state.json")) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| anyhow::anyhow!("{}/state.json is not readable: {e}", dir.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(anyhow::anyhow!(
                "cannot read {}/state.json: {e}",
                dir.display()
            )),
        }
    }

    /// Writes the state into `dir` atomically.
    fn save(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let bytes = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        atomic_file::write(&dir.join("state.json"), &bytes, 0o600)
    }

    /// Where the bundle with component hash `sha256` is kept.
    fn bundle_path(dir: &Path, sha256: &str) -> PathBuf {
        dir.join(format!("{sha256}.bundle"))
    }

    /// Keeps a bundle's bytes in `dir` atomically.
    fn store_bundle(dir: &Path, sha256: &str, bytes: &[u8]) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        atomic_file::write(&Self::bundle_path(dir, sha256), bytes, 0o600)
    }

    /// Removes bundle files that no slot names any more.
    fn prune(&self, dir: &Path) {
        let keep: Vec<&str> = [&self.active, &self.previous, &self.probation]
            .into_iter()
            .flatten()
            .map(|i| i.sha256.as_str())
            .collect();
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if let Some(sha) = name.strip_suffix(".bundle")
                && !keep.contains(&sha)
            {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_round_trips_and_prune_keeps_only_named_bundles() {
        let dir = tempfile::tempdir().expect("dir");
        assert_eq!(Slots::load(dir.path()).expect("empty"), Slots::default());
        let one = Installed {
            version: "0.2.0".into(),
            sequence: 2,
            sha256: "aa".into(),
        };
        let slots = Slots {
            active: Some(one),
            last_sequence: 2,
            ..Slots::default()
        };
        slots.save(dir.path()).expect("saved");
        assert_eq!(Slots::load(dir.path()).expect("loads"), slots);
        Slots::store_bundle(dir.path(), "aa", b"a").expect("stored");
        Slots::store_bundle(dir.path(), "bb", b"b").expect("stored");
        slots.prune(dir.path());
        assert!(Slots::bundle_path(dir.path(), "aa").exists());
        assert!(!Slots::bundle_path(dir.path(), "bb").exists());
        std::fs::write(dir.path().join("state.json"), b"{").expect("written");
        assert!(Slots::load(dir.path()).is_err());
    }
}
