//! A map whose stale entries are swept out now and then, at a cost that stays constant
//! per insert: a sweep runs only once the map has doubled since the last one, so it
//! never rescans a map full of live entries on every call.

use std::collections::HashMap;
use std::hash::Hash;

/// Entries below this count are never swept.
const MIN_SWEEP: usize = 4096;

/// A `HashMap` with amortised sweeping of stale entries.
#[derive(Debug)]
pub struct Expiring<K, V> {
    map: HashMap<K, V>,
    sweep_at: usize,
}

impl<K, V> Default for Expiring<K, V> {
    fn default() -> Self {
        Self {
            map: HashMap::new(),
            sweep_at: MIN_SWEEP,
        }
    }
}

impl<K: Hash + Eq, V> Expiring<K, V> {
    /// The entry of `key`, without sweeping.
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.get(key)
    }

    /// The map, after dropping the entries `live` says are stale if a sweep is due.
    pub fn swept(&mut self, live: impl FnMut(&K, &mut V) -> bool) -> &mut HashMap<K, V> {
        if self.map.len() >= self.sweep_at {
            self.map.retain(live);
            self.sweep_at = (self.map.len() * 2).max(MIN_SWEEP);
        }
        &mut self.map
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweeps_stale_entries_only_once_the_map_doubled() {
        let mut m: Expiring<u32, bool> = Expiring::default();
        let mut sweeps = 0;
        for i in 0..20_000u32 {
            // Every entry stays live: a sweep keeps all of them.
            m.swept(|_, _| {
                sweeps += 1;
                true
            })
            .insert(i, true);
        }
        // Sweeps at 4096, 8192 and 16384 entries: about 28k visits, not 20k × 20k / 2.
        assert!(sweeps < 40_000, "{sweeps} entries visited");
    }

    #[test]
    fn a_due_sweep_drops_the_stale_entries() {
        let mut m: Expiring<u32, bool> = Expiring::default();
        for i in 0..4096u32 {
            m.swept(|_, live| *live).insert(i, i % 2 == 0);
        }
        m.swept(|_, live| *live).insert(9999, true);
        assert_eq!(m.swept(|_, _| true).len(), 2049);
    }
}
