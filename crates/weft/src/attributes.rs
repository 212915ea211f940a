//! `Attributes`: a span's attributes, up to four inline, more on the heap.
//!
//! Like `SmallVec<[KeyValue; 4]>`, with one difference that matters on the hot
//! path: the inline array is the *last* field and its layout is fixed
//! (`repr(C)`), so a finished span can be copied into its buffer slot by copying
//! only the bytes in use ([`Attributes::used_bytes`]). A span with no attributes
//! moves 150 bytes instead of 370; that is fewer cache lines written on the
//! producing core and read on the collecting one.

use std::fmt;
use std::mem::{offset_of, size_of, MaybeUninit};
use std::ops::{Deref, DerefMut};

use crate::value::KeyValue;

/// Attributes kept inline before spilling to the heap.
pub const INLINE_ATTRIBUTES: usize = 4;

/// A span's attributes. Derefs to `[KeyValue]`.
#[repr(C)]
pub struct Attributes {
    /// Attributes in use (inline), or the heap vector's length when spilled.
    len: usize,
    /// All attributes once more than [`INLINE_ATTRIBUTES`] were added; empty and
    /// unallocated before.
    heap: Vec<KeyValue>,
    /// The first `len` slots are initialised when not spilled.
    inline: [MaybeUninit<KeyValue>; INLINE_ATTRIBUTES],
}

// SAFETY (for the whole module): the first `len` inline slots are initialised
// whenever `heap.capacity() == 0`; otherwise `heap` holds everything and no inline
// slot is initialised.

impl Attributes {
    /// No attributes; allocates nothing.
    #[inline(always)]
    pub const fn new() -> Self {
        Attributes { len: 0, heap: Vec::new(), inline: [const { MaybeUninit::uninit() }; INLINE_ATTRIBUTES] }
    }

    /// Whether the attributes live on the heap.
    #[inline(always)]
    pub fn spilled(&self) -> bool {
        self.heap.capacity() != 0
    }

    /// Heap slots allocated (0 while inline).
    pub fn heap_capacity(&self) -> usize {
        self.heap.capacity()
    }

    /// Appends an attribute.
    #[inline]
    pub fn push(&mut self, kv: KeyValue) {
        if self.spilled() {
            self.heap.push(kv);
            self.len = self.heap.len();
        } else if self.len < INLINE_ATTRIBUTES {
            self.inline[self.len].write(kv);
            self.len += 1;
        } else {
            self.spill();
            self.heap.push(kv);
            self.len = self.heap.len();
        }
    }

    #[cold]
    fn spill(&mut self) {
        let mut v = Vec::with_capacity(INLINE_ATTRIBUTES * 2);
        for slot in &self.inline[..self.len] {
            // SAFETY: initialised (not spilled); moved out once, `len` reset below.
            v.push(unsafe { slot.assume_init_read() });
        }
        self.heap = v;
        self.len = self.heap.len();
    }

    /// The bytes of `Attributes` in use, counted from its start: the header, plus
    /// the initialised inline slots.
    #[inline(always)]
    pub(crate) fn used_bytes(&self) -> usize {
        offset_of!(Attributes, inline) + if self.spilled() { 0 } else { self.len * size_of::<KeyValue>() }
    }

    /// Moves the attributes out into a vector.
    pub fn into_vec(mut self) -> Vec<KeyValue> {
        if self.spilled() {
            self.len = 0;
            return std::mem::take(&mut self.heap);
        }
        let n = std::mem::replace(&mut self.len, 0);
        // SAFETY: the first `n` slots are initialised; `len` is 0 now so Drop
        // will not touch them again.
        self.inline[..n].iter().map(|s| unsafe { s.assume_init_read() }).collect()
    }
}

impl Default for Attributes {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Attributes {
    fn drop(&mut self) {
        if !self.spilled() {
            for slot in &mut self.inline[..self.len] {
                // SAFETY: initialised, dropped once.
                unsafe { slot.assume_init_drop() };
            }
        }
    }
}

impl Deref for Attributes {
    type Target = [KeyValue];
    #[inline(always)]
    fn deref(&self) -> &[KeyValue] {
        if self.spilled() {
            &self.heap
        } else {
            // SAFETY: the first `len` slots are initialised.
            unsafe { std::slice::from_raw_parts(self.inline.as_ptr() as *const KeyValue, self.len) }
        }
    }
}

impl DerefMut for Attributes {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut [KeyValue] {
        if self.spilled() {
            &mut self.heap
        } else {
            // SAFETY: as above.
            unsafe { std::slice::from_raw_parts_mut(self.inline.as_mut_ptr() as *mut KeyValue, self.len) }
        }
    }
}

impl Clone for Attributes {
    fn clone(&self) -> Self {
        self.iter().cloned().collect()
    }
}

impl PartialEq for Attributes {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl fmt::Debug for Attributes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl FromIterator<KeyValue> for Attributes {
    fn from_iter<I: IntoIterator<Item = KeyValue>>(iter: I) -> Self {
        let mut a = Attributes::new();
        a.extend(iter);
        a
    }
}

impl Extend<KeyValue> for Attributes {
    fn extend<I: IntoIterator<Item = KeyValue>>(&mut self, iter: I) {
        for kv in iter {
            self.push(kv);
        }
    }
}

impl IntoIterator for Attributes {
    type Item = KeyValue;
    type IntoIter = std::vec::IntoIter<KeyValue>;
    fn into_iter(self) -> Self::IntoIter {
        self.into_vec().into_iter()
    }
}

impl<'a> IntoIterator for &'a Attributes {
    type Item = &'a KeyValue;
    type IntoIter = std::slice::Iter<'a, KeyValue>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn behaves_like_a_vec(values in proptest::collection::vec(any::<i64>(), 0..20), owned in any::<bool>()) {
            let mut a = Attributes::new();
            let mut v = Vec::new();
            for (i, x) in values.iter().enumerate() {
                let kv = if owned { KeyValue::new(format!("k{i}"), format!("{x}")) } else { KeyValue::new("k", *x) };
                a.push(kv.clone());
                v.push(kv);
                prop_assert_eq!(&*a, &v[..]);
            }
            prop_assert_eq!(a.spilled(), values.len() > INLINE_ATTRIBUTES);
            let c = a.clone();
            prop_assert_eq!(&c, &a);
            prop_assert_eq!(a.into_vec(), v);
        }
    }

    #[test]
    fn used_bytes_counts_only_initialised_slots() {
        let mut a = Attributes::new();
        let header = offset_of!(Attributes, inline);
        assert_eq!(a.used_bytes(), header);
        a.push(KeyValue::new("a", 1));
        assert_eq!(a.used_bytes(), header + size_of::<KeyValue>());
        for _ in 0..4 {
            a.push(KeyValue::new("b", 2));
        }
        assert!(a.spilled());
        assert_eq!(a.used_bytes(), header);
    }
}
