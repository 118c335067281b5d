//! [`Kept`]: a bounded in-memory map from a string key to a value read from the
//! database, for values that do not change once written (licenses' authkeys) or whose
//! changing parts a later check re-reads (pairing tokens: the activation writer reads
//! their state again in its transaction). Only what exists is kept, so a flood of
//! made-up keys reads the database and fills nothing; at [`Kept::MAX`] entries it starts
//! over.

use std::collections::HashMap;
use std::sync::Mutex;

/// A bounded map of values read from the database.
#[derive(Debug)]
pub struct Kept<V> {
    map: Mutex<HashMap<String, V>>,
}

impl<V> Default for Kept<V> {
    fn default() -> Self {
        Self {
            map: Mutex::default(),
        }
    }
}

impl<V: Clone> Kept<V> {
    /// Most entries kept.
    pub const MAX: usize = 65_536;

    /// The value kept for `key`.
    pub fn get(&self, key: &str) -> Option<V> {
        self.lock().get(key).cloned()
    }

    /// Keeps `value` for `key`.
    pub fn keep(&self, key: &str, value: &V) {
        let mut map = self.lock();
        if map.len() >= Self::MAX {
            map.clear();
        }
        map.insert(key.to_owned(), value.clone());
    }

    /// The value kept for `key`, else what `load` finds (kept when found).
    pub async fn get_or_load<E>(
        &self,
        key: &str,
        load: impl Future<Output = Result<Option<V>, E>>,
    ) -> Result<Option<V>, E> {
        if let Some(value) = self.get(key) {
            return Ok(Some(value));
        }
        let found = load.await?;
        if let Some(value) = &found {
            self.keep(key, value);
        }
        Ok(found)
    }

    /// Forgets `key` (its value changed here).
    pub fn forget(&self, key: &str) {
        self.lock().remove(key);
    }

    /// How many entries are kept.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, V>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_keeps_forgets_and_starts_over_when_full() {
        let kept = Kept::<u32>::default();
        kept.keep("a", &1);
        assert_eq!(kept.get("a"), Some(1));
        kept.forget("a");
        assert_eq!(kept.get("a"), None);
        for i in 0..Kept::<u32>::MAX {
            kept.keep(&i.to_string(), &0);
        }
        assert_eq!(kept.len(), Kept::<u32>::MAX);
        kept.keep("one more", &2);
        assert_eq!(kept.len(), 1, "full: it started over");
        assert_eq!(kept.get("one more"), Some(2));
    }
}
