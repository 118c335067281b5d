//! The component's persistent key-value store: one file per key in a directory of the
//! data dir, each replaced atomically, or a map in memory for diagnostics that have no
//! data dir. Bounded in key length, value size and key count.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::atomic_file;

/// Longest file name the file systems of boards take (`NAME_MAX`).
const NAME_MAX: usize = 255;
/// Longest key, in bytes: a key is stored as `kv-<hex>` and first written as
/// `.kv-<hex>.tmp`, which must fit in [`NAME_MAX`].
pub const MAX_KEY_BYTES: usize = (NAME_MAX - ".kv-.tmp".len()) / 2;
/// Largest value, in bytes.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;
/// Most keys the store holds.
pub const MAX_KEYS: usize = 256;

/// Why a kv operation failed.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    /// The key is empty or too long.
    #[error("a key must be 1-{MAX_KEY_BYTES} bytes")]
    BadKey,
    /// The value is too large.
    #[error("a value may be at most {MAX_VALUE_BYTES} bytes")]
    ValueTooLarge,
    /// The store holds as many keys as it may.
    #[error("the store already holds {MAX_KEYS} keys")]
    Full,
    /// The file system failed.
    #[error("kv storage failed: {0}")]
    Io(#[from] io::Error),
}

#[derive(Debug)]
enum Backend {
    Memory(BTreeMap<String, Vec<u8>>),
    Dir(PathBuf),
}

/// A key-value store.
#[derive(Debug)]
pub struct Kv {
    backend: Backend,
}

impl Kv {
    /// A store that lives only as long as this value.
    pub fn in_memory() -> Self {
        Self {
            backend: Backend::Memory(BTreeMap::new()),
        }
    }

    /// The store kept in `dir`, created (mode 0700) if missing.
    pub fn open(dir: &Path) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        Ok(Self {
            backend: Backend::Dir(dir.to_path_buf()),
        })
    }

    /// The value under `key`.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        check_key(key)?;
        match &self.backend {
            Backend::Memory(map) => Ok(map.get(key).cloned()),
            Backend::Dir(dir) => match fs::read(file_for(dir, key)) {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e.into()),
            },
        }
    }

    /// Stores `value` under `key`, durably for a directory store.
    pub fn set(&mut self, key: &str, value: &[u8]) -> Result<(), KvError> {
        check_key(key)?;
        if value.len() > MAX_VALUE_BYTES {
            return Err(KvError::ValueTooLarge);
        }
        match &mut self.backend {
            Backend::Memory(map) => {
                if !map.contains_key(key) && map.len() >= MAX_KEYS {
                    return Err(KvError::Full);
                }
                map.insert(key.to_owned(), value.to_vec());
            }
            Backend::Dir(dir) => {
                let path = file_for(dir, key);
                if !path.exists() && count_keys(dir)? >= MAX_KEYS {
                    return Err(KvError::Full);
                }
                atomic_file::write(&path, value, 0o600)?;
            }
        }
        Ok(())
    }

    /// Removes `key`; a missing key is not an error.
    pub fn delete(&mut self, key: &str) -> Result<(), KvError> {
        check_key(key)?;
        match &mut self.backend {
            Backend::Memory(map) => {
                map.remove(key);
            }
            Backend::Dir(dir) => match fs::remove_file(file_for(dir, key)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            },
        }
        Ok(())
    }
}

fn check_key(key: &str) -> Result<(), KvError> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(KvError::BadKey);
    }
    Ok(())
}

/// Keys are hex-encoded into file names, so any key is a safe, distinct name.
fn file_for(dir: &Path, key: &str) -> PathBuf {
    let mut name = String::with_capacity(key.len() * 2 + 3);
    name.push_str("kv-");
    for b in key.bytes() {
        name.push_str(&format!("{b:02x}"));
    }
    dir.join(name)
}

fn count_keys(dir: &Path) -> io::Result<usize> {
    let mut n = 0;
    for entry in fs::read_dir(dir)? {
        if entry?.file_name().to_string_lossy().starts_with("kv-") {
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exercise(kv: &mut Kv) {
        assert_eq!(kv.get("creds").expect("readable"), None);
        kv.set("creds", b"one").expect("stored");
        kv.set("creds", b"two").expect("replaced");
        kv.set("../etc/passwd", b"x")
            .expect("any key is a safe file name");
        assert_eq!(kv.get("creds").expect("readable"), Some(b"two".to_vec()));
        kv.delete("creds").expect("deleted");
        kv.delete("creds").expect("deleting twice is fine");
        assert_eq!(kv.get("creds").expect("readable"), None);
        assert!(matches!(kv.set("", b"x"), Err(KvError::BadKey)));
        assert!(matches!(
            kv.set(&"k".repeat(129), b"x"),
            Err(KvError::BadKey)
        ));
        assert!(matches!(
            kv.set("big", &vec![0; MAX_VALUE_BYTES + 1]),
            Err(KvError::ValueTooLarge)
        ));
    }

    #[test]
    fn the_memory_store_behaves_like_the_directory_store() {
        exercise(&mut Kv::in_memory());
        let dir = tempfile::tempdir().expect("temp dir");
        exercise(&mut Kv::open(&dir.path().join("kv")).expect("opens"));
    }

    #[test]
    fn the_directory_store_survives_reopening() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("kv");
        Kv::open(&path)
            .expect("opens")
            .set("dp", b"{\"1\":true}")
            .expect("stored");
        let reopened = Kv::open(&path).expect("reopens");
        assert_eq!(
            reopened.get("dp").expect("readable"),
            Some(b"{\"1\":true}".to_vec())
        );
    }

    #[test]
    fn the_store_refuses_keys_beyond_its_bound() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut kv = Kv::open(dir.path()).expect("opens");
        for i in 0..MAX_KEYS {
            kv.set(&format!("k{i}"), b"").expect("room left");
        }
        assert!(matches!(kv.set("one-more", b""), Err(KvError::Full)));
        kv.set("k0", b"replacing is fine").expect("existing key");
    }

    #[test]
    fn every_key_the_bound_allows_is_stored_and_longer_ones_are_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut kv = Kv::open(dir.path()).expect("opens");
        let longest = "k".repeat(MAX_KEY_BYTES);
        kv.set(&longest, b"fits")
            .expect("the longest key is stored");
        assert_eq!(
            kv.get(&longest).expect("reads").as_deref(),
            Some(&b"fits"[..])
        );
        for len in MAX_KEY_BYTES + 1..=MAX_KEY_BYTES + 8 {
            assert!(matches!(
                kv.set(&"k".repeat(len), b""),
                Err(KvError::BadKey)
            ));
        }
        // Multi-byte characters count in bytes.
        let wide = "é".repeat(MAX_KEY_BYTES / 2);
        kv.set(&wide, b"wide").expect("fits in bytes");
        drop(kv);
        let kv = Kv::open(dir.path()).expect("reopens");
        assert_eq!(
            kv.get(&longest).expect("reads").as_deref(),
            Some(&b"fits"[..])
        );
    }
}
