//! `Attributes`: a span's attributes, up to four inline, more on the heap.
//!
//! Like `SmallVec<[KeyValue; 4]>`, with one difference that matters on the hot
//! path: the inline array is the *last* field and its layout is fixed
//! (`repr(C)`), so a finished span can be copied into its buffer slot by copying
//! only the bytes in use ([`Attributes::inline_len`] slots after the header). A
//! span with no attributes moves 144 bytes instead of 368; that is fewer cache
//! lines written on the producing core and read on the collecting one.

use std::fmt;
use std::mem::{offset_of, MaybeUninit};
use std::ops::{Deref, DerefMut};

use crate::value::KeyValue;

/// Attributes kept inline before spilling to the heap.
pub const INLINE_ATTRIBUTES: usize = 4;

/// A span's attributes. Derefs to `[KeyValue]`.
#[repr(C)]
pub struct Attributes {
    /// Attributes in use (inline), or the heap vector's length when spilled.
    len: usize,
    /// All attributes once more than [`INLINE_ATTRIBUTES`] were added; `None`
    /// before. Boxed so that the header is 16 bytes, not 32: every span
    /// writes it when it starts and copies it when it ends, and few spill.
    // The box is the point (a thin pointer in the record), not an oversight.
    #[allow(clippy::box_collection)]
    heap: Option<Box<Vec<KeyValue>>>,
    /// The first `len` slots are initialised when not spilled.
    inline: [MaybeUninit<KeyValue>; INLINE_ATTRIBUTES],
}

/// Where [`Attributes::inline_slot`] puts an attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum InlineSlot {
    /// Inline slot `i` holds the same key: replace its value.
    Replace(usize),
    /// Inline slot `i` is the next free one: write the attribute there.
    Append(usize),
    /// Neither: the attributes are spilled, or appending would spill or pass
    /// the count limit.
    None,
}

// SAFETY (for the whole module): the first `len` inline slots are initialised
// whenever `heap` is `None`; otherwise `heap` holds everything and no inline
// slot is initialised.

impl Attributes {
    /// No attributes; allocates nothing.
    #[inline(always)]
    pub const fn new() -> Self {
        Attributes { len: 0, heap: None, inline: [const { MaybeUninit::uninit() }; INLINE_ATTRIBUTES] }
    }

    /// Whether the attributes live on the heap.
    #[inline(always)]
    pub fn spilled(&self) -> bool {
        self.heap.is_some()
    }

    /// Heap slots allocated (0 while inline).
    pub fn heap_capacity(&self) -> usize {
        self.heap.as_ref().map_or(0, |v| v.capacity())
    }

    /// Appends an attribute.
    #[inline]
    pub fn push(&mut self, kv: KeyValue) {
        if self.len < INLINE_ATTRIBUTES && !self.spilled() {
            self.inline[self.len].write(kv);
            self.len += 1;
            return;
        }
        let heap = match &mut self.heap {
            Some(h) => h,
            None => self.spill(),
        };
        heap.push(kv);
        self.len = heap.len();
    }

    /// Where an attribute with `key` goes without spilling: the inline slot
    /// holding that key (its value is replaced), the next free one if fewer
    /// than `max` are set, or none (the attributes are spilled, or appending
    /// would spill or pass `max`: the caller's general path handles those).
    ///
    /// The span hot path's attribute setter asks this first and then writes
    /// the key and value straight into the slot. Passing a whole `KeyValue`
    /// in (and back, for the general path) built it in a stack temporary
    /// with 8-byte stores and copied it with 16-byte loads, which the CPU
    /// cannot forward from those stores: each attribute waited for them to
    /// reach the cache. (And the general setter, testing for the heap vector
    /// at each step, cost ~55 instructions per attribute.)
    #[inline(always)]
    pub(crate) fn inline_slot(&self, key: &str, max: u32) -> InlineSlot {
        if self.spilled() {
            return InlineSlot::None;
        }
        let n = self.len;
        for (i, slot) in self.inline[..n].iter().enumerate() {
            // SAFETY: the first `len` slots are initialised (not spilled).
            if same_key(unsafe { &slot.assume_init_ref().key }, key) {
                return InlineSlot::Replace(i);
            }
        }
        if n < INLINE_ATTRIBUTES && n < max as usize {
            InlineSlot::Append(n)
        } else {
            InlineSlot::None
        }
    }

    /// Replaces the value of inline attribute `i`, a [`InlineSlot::Replace`].
    #[inline(always)]
    pub(crate) fn replace_inline(&mut self, i: usize, value: crate::value::Value) {
        assert!(i < self.len && !self.spilled());
        // SAFETY: below `len` and not spilled: initialised.
        unsafe { self.inline[i].assume_init_mut() }.value = value;
    }

    /// Writes `kv` into free inline slot `i`, an [`InlineSlot::Append`].
    #[inline(always)]
    pub(crate) fn append_inline(&mut self, i: usize, kv: KeyValue) {
        assert!(i == self.len && i < INLINE_ATTRIBUTES && !self.spilled());
        self.inline[i].write(kv);
        self.len = i + 1;
    }

    /// Moves the inline attributes to a new heap vector, and returns it.
    #[cold]
    fn spill(&mut self) -> &mut Vec<KeyValue> {
        let mut v = Vec::with_capacity(INLINE_ATTRIBUTES * 2);
        for slot in &self.inline[..self.len] {
            // SAFETY: initialised (not spilled); moved out once: `heap` is set
            // below, after which no inline slot counts as initialised.
            v.push(unsafe { slot.assume_init_read() });
        }
        self.len = v.len();
        self.heap.insert(Box::new(v))
    }

    /// Bytes of the header (length and heap vector) before the inline slots.
    pub(crate) const HEADER_BYTES: usize = offset_of!(Attributes, inline);

    /// Inline attributes in use (0 once spilled: the heap holds them all).
    #[inline(always)]
    pub(crate) fn inline_len(&self) -> usize {
        if self.spilled() {
            0
        } else {
            self.len
        }
    }

    /// Moves the attributes out into a vector.
    pub fn into_vec(mut self) -> Vec<KeyValue> {
        if let Some(heap) = self.heap.take() {
            self.len = 0;
            return *heap;
        }
        let n = std::mem::replace(&mut self.len, 0);
        // SAFETY: the first `n` slots are initialised; `len` is 0 now so Drop
        // will not touch them again.
        self.inline[..n].iter().map(|s| unsafe { s.assume_init_read() }).collect()
    }
}

/// Whether two keys are equal. Static keys are usually the same pointer:
/// compared before the bytes.
#[inline(always)]
pub(crate) fn same_key(a: &str, b: &str) -> bool {
    (a.as_ptr() == b.as_ptr() && a.len() == b.len()) || a == b
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
        if let Some(heap) = &self.heap {
            heap
        } else {
            // SAFETY: the first `len` slots are initialised.
            unsafe { std::slice::from_raw_parts(self.inline.as_ptr() as *const KeyValue, self.len) }
        }
    }
}

impl DerefMut for Attributes {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut [KeyValue] {
        if let Some(heap) = &mut self.heap {
            heap
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
    fn inline_len_counts_only_initialised_slots() {
        let mut a = Attributes::new();
        assert_eq!(a.inline_len(), 0);
        a.push(KeyValue::new("a", 1));
        assert_eq!(a.inline_len(), 1);
        for _ in 0..4 {
            a.push(KeyValue::new("b", 2));
        }
        assert!(a.spilled());
        assert_eq!(a.inline_len(), 0, "spilled attributes are all on the heap");
    }

    /// What the span's attribute setter does with [`Attributes::inline_slot`].
    fn set_inline(a: &mut Attributes, kv: KeyValue, max: u32) -> Result<(), KeyValue> {
        match a.inline_slot(&kv.key, max) {
            InlineSlot::Replace(i) => a.replace_inline(i, kv.value),
            InlineSlot::Append(i) => a.append_inline(i, kv),
            InlineSlot::None => return Err(kv),
        }
        Ok(())
    }

    #[test]
    fn inline_slots_replace_append_and_give_back_what_needs_the_heap() {
        let mut a = Attributes::new();
        assert!(set_inline(&mut a, KeyValue::new("k", 1), 128).is_ok());
        // Same key, another string with the same bytes: replaced.
        assert!(set_inline(&mut a, KeyValue::new(String::from("k"), 2), 128).is_ok());
        assert_eq!(&*a, &[KeyValue::new("k", 2)]);
        for i in 0..3 {
            assert!(set_inline(&mut a, KeyValue::new(format!("k{i}"), i), 128).is_ok());
        }
        assert_eq!(a.len(), INLINE_ATTRIBUTES);
        // A fifth would spill: given back untouched.
        let back = set_inline(&mut a, KeyValue::new("e", 5), 128).unwrap_err();
        assert_eq!(back, KeyValue::new("e", 5));
        assert!(!a.spilled());
        // A key already set is still replaced in place when the slots are full.
        assert!(set_inline(&mut a, KeyValue::new("k0", 9), 128).is_ok());
        assert_eq!(a[1], KeyValue::new("k0", 9));
        // The limit: nothing appended past it.
        let mut b = Attributes::new();
        assert!(set_inline(&mut b, KeyValue::new("x", 1), 1).is_ok());
        assert!(set_inline(&mut b, KeyValue::new("y", 1), 1).is_err());
        // Spilled: everything goes to the caller's general path.
        let mut c: Attributes = (0..5).map(|i| KeyValue::new(format!("s{i}"), i)).collect();
        assert!(c.spilled());
        assert!(set_inline(&mut c, KeyValue::new("s0", 7), 128).is_err());
    }
}
