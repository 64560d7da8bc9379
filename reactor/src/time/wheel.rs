//! The hierarchical hashed timing wheel: buckets, placement, cascading and expiry.
//!
//! See the [module documentation](super) for the design; this file holds [`Wheel`].

use std::fmt;
use std::time::Instant;

use super::Clock;
use super::entry::{Key, NIL, NO_BUCKET, Slab};

/// Bits of the tick each level consumes (256 slots per level).
const LEVEL_BITS: u32 = 8;

/// Slots in each level of the wheel.
pub const SLOTS_PER_LEVEL: usize = 1 << LEVEL_BITS;

/// Levels in the wheel. Level `l` has slots `256^l` ticks wide.
pub const LEVELS: usize = 5;

/// Ticks spanned by one full turn of the top level: `256^5 = 2^40` µs, about 12.7 days.
///
/// A deadline further out than the current turn of the top level waits on the overflow list
/// and is re-inserted when the top level wraps.
pub const RANGE: u64 = 1 << (LEVEL_BITS * LEVELS as u32);

const SLOT_MASK: u64 = SLOTS_PER_LEVEL as u64 - 1;
const RANGE_BITS: u32 = LEVEL_BITS * LEVELS as u32;

/// Bucket index of the pending list: timers already due (deadline <= `elapsed`).
const PENDING: usize = LEVELS * SLOTS_PER_LEVEL;
/// Bucket index of the overflow list: timers beyond the current turn of the top level.
const OVERFLOW: usize = PENDING + 1;
/// Total bucket count: the wheel slots, then `PENDING`, then `OVERFLOW`.
const BUCKETS: usize = OVERFLOW + 1;

/// Per level, the 64-bit words of its occupancy mask.
const WORDS_PER_LEVEL: usize = SLOTS_PER_LEVEL.div_ceil(64);
/// The words of every level's occupancy mask, level by level.
const OCCUPIED_WORDS: usize = LEVELS * WORDS_PER_LEVEL;
const _: () = assert!(SLOTS_PER_LEVEL % 64 == 0, "a level's mask is whole words");

// Entries record their bucket in a `u16`, with `u16::MAX` reserved for "none".
const _: () = assert!(BUCKETS < u16::MAX as usize);

/// One list head of the wheel.
#[derive(Clone, Copy)]
struct Bucket {
    /// First entry on the list, or `NIL`.
    head: u32,
    /// A lower bound on the deadlines on the list: the minimum deadline linked since the list
    /// was last empty. Exact unless an entry holding the minimum was since unlinked.
    /// `u64::MAX` while empty.
    min: u64,
}

const EMPTY_BUCKET: Bucket = Bucket {
    head: NIL,
    min: u64::MAX,
};

/// A hierarchical hashed timing wheel of 1 µs ticks holding timers with payload `T`.
///
/// Time is a `u64` count of ticks (microseconds) since the wheel's [`Clock`] start; the wheel
/// itself never reads the system clock, the caller passes "now" to
/// [`poll_expired`](Wheel::poll_expired). Insert, cancel and reset are O(1); a poll costs
/// O(1) per bucket it passes plus O(1) per timer it moves or fires, and each timer is moved
/// down at most once per level over its life.
///
/// | operation | what it does |
/// |---|---|
/// | [`insert`](Wheel::insert)`(deadline, value) -> Key` | adds a timer due at tick `deadline` |
/// | [`cancel`](Wheel::cancel)`(key) -> Option<T>` | removes a pending timer, returns its payload |
/// | [`reset`](Wheel::reset)`(key, deadline) -> bool` | moves a pending timer to a new deadline |
/// | [`poll_expired`](Wheel::poll_expired)`(now, f) -> usize` | fires every timer with `deadline <= now` |
/// | [`next_deadline`](Wheel::next_deadline)`() -> Option<u64>` | when to poll next (the park timeout) |
/// | [`elapsed`](Wheel::elapsed)`() -> u64` | the tick the wheel has been advanced to |
/// | [`len`](Wheel::len) / [`is_empty`](Wheel::is_empty) | number of pending timers |
///
/// # Examples
///
/// ```
/// use weft_reactor::time::Wheel;
///
/// let mut wheel = Wheel::new();
/// let a = wheel.insert(10, "a");
/// let b = wheel.insert(5_000, "b");
/// assert_eq!(wheel.next_deadline(), Some(10));
///
/// let mut fired = Vec::new();
/// wheel.poll_expired(9, |_, v| fired.push(v));
/// assert!(fired.is_empty()); // never early
/// wheel.poll_expired(10, |_, v| fired.push(v));
/// assert_eq!(fired, ["a"]);
///
/// assert_eq!(wheel.cancel(a), None); // already fired: harmless
/// assert_eq!(wheel.cancel(b), Some("b"));
/// assert!(wheel.is_empty());
/// ```
pub struct Wheel<T> {
    slab: Slab<T>,
    /// `BUCKETS` list heads: `level * SLOTS_PER_LEVEL + slot`, then `PENDING`, `OVERFLOW`.
    buckets: Box<[Bucket]>,
    /// Per level, [`WORDS_PER_LEVEL`] words: bit `s` set iff slot `s` of that level is
    /// non-empty.
    occupied: [u64; OCCUPIED_WORDS],
    /// The tick the wheel has been advanced to.
    elapsed: u64,
    clock: Clock,
}

impl<T> Wheel<T> {
    /// An empty wheel whose tick 0 is now ([`Clock::new`]).
    pub fn new() -> Self {
        Self::with_clock(Clock::new())
    }

    /// An empty wheel whose tick 0 is `clock`'s start.
    pub fn with_clock(clock: Clock) -> Self {
        Wheel {
            slab: Slab::with_capacity(0),
            buckets: vec![EMPTY_BUCKET; BUCKETS].into_boxed_slice(),
            occupied: [0; OCCUPIED_WORDS],
            elapsed: 0,
            clock,
        }
    }

    /// An empty wheel (tick 0 is now) with room for `capacity` timers before reallocating.
    pub fn with_capacity(capacity: usize) -> Self {
        let mut wheel = Self::new();
        wheel.reserve(capacity);
        wheel
    }

    /// Makes room for at least `additional` more timers without reallocating.
    pub fn reserve(&mut self, additional: usize) {
        self.slab.reserve(additional);
    }

    /// The number of timers the wheel can hold without reallocating its slab.
    pub fn capacity(&self) -> usize {
        self.slab.capacity()
    }

    /// The clock mapping [`Instant`]s to this wheel's ticks.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The tick for a deadline given as an [`Instant`], rounded up so the timer never fires
    /// early. Shorthand for [`Clock::deadline_to_tick`].
    pub fn deadline_to_tick(&self, deadline: Instant) -> u64 {
        self.clock.deadline_to_tick(deadline)
    }

    /// The tick for "now" given as an [`Instant`], rounded down so nothing fires early.
    /// Shorthand for [`Clock::now_tick`].
    pub fn now_tick(&self, now: Instant) -> u64 {
        self.clock.now_tick(now)
    }

    /// The tick the wheel has been advanced to by [`poll_expired`](Wheel::poll_expired).
    pub fn elapsed(&self) -> u64 {
        self.elapsed
    }

    /// The number of timers that have neither fired nor been cancelled.
    pub fn len(&self) -> usize {
        self.slab.len()
    }

    /// Whether no timer is pending.
    pub fn is_empty(&self) -> bool {
        self.slab.len() == 0
    }

    /// Adds a timer due at tick `deadline` carrying `value`, and returns its key. O(1).
    ///
    /// A deadline at or before [`elapsed`](Wheel::elapsed) fires on the next
    /// [`poll_expired`](Wheel::poll_expired). Any deadline up to `u64::MAX` is accepted.
    ///
    /// # Panics
    ///
    /// If about 2³² timers are live at once.
    pub fn insert(&mut self, deadline: u64, value: T) -> Key {
        let key = self.slab.alloc(deadline, value);
        let bucket = self.bucket_for(deadline);
        self.link(key.index(), bucket, deadline);
        key
    }

    /// Removes the timer `key` names and returns its payload, or `None` if it has already
    /// fired or been cancelled (including when its slot now holds another timer). O(1).
    pub fn cancel(&mut self, key: Key) -> Option<T> {
        let index = self.slab.lookup(key)?;
        self.unlink(index);
        Some(self.slab.release(index))
    }

    /// Moves the pending timer `key` to fire at `deadline` instead, keeping its key and
    /// payload. Returns `false` (and does nothing) if it has already fired or been cancelled.
    /// O(1).
    pub fn reset(&mut self, key: Key, deadline: u64) -> bool {
        let Some(index) = self.slab.lookup(key) else {
            return false;
        };
        self.unlink(index);
        self.slab.entry_mut(index).deadline = deadline;
        let bucket = self.bucket_for(deadline);
        self.link(index, bucket, deadline);
        true
    }

    /// Whether the timer `key` names is still pending.
    pub fn contains(&self, key: Key) -> bool {
        self.slab.lookup(key).is_some()
    }

    /// The deadline of the pending timer `key` names.
    pub fn deadline(&self, key: Key) -> Option<u64> {
        let index = self.slab.lookup(key)?;
        Some(self.slab.entry(index).deadline)
    }

    /// The payload of the pending timer `key` names.
    pub fn get(&self, key: Key) -> Option<&T> {
        let index = self.slab.lookup(key)?;
        self.slab.entry(index).value.as_ref()
    }

    /// The payload of the pending timer `key` names, mutably (e.g. to replace a stored
    /// `Waker` with a newer one).
    pub fn get_mut(&mut self, key: Key) -> Option<&mut T> {
        let index = self.slab.lookup(key)?;
        self.slab.entry_mut(index).value.as_mut()
    }

    /// Advances the wheel to tick `now` and fires every timer whose deadline is `<= now`,
    /// calling `fire(key, value)` for each (in no particular order). Returns how many fired.
    ///
    /// No timer with a deadline after `now` is ever fired. Timers in higher levels whose slot
    /// `now` has reached are cascaded down to finer levels on the way. Jumping far ahead
    /// is cheap: only non-empty buckets are visited. A `now` before
    /// [`elapsed`](Wheel::elapsed) is treated as `elapsed` (time does not go backwards), so
    /// only already-due timers fire.
    ///
    /// Each timer is unlinked and freed before `fire` sees it, so its key is already stale
    /// inside `fire`, and a panic in `fire` leaves the wheel consistent: the timers not yet
    /// handed out fire on the next poll. `fire` may be a closure or `&mut` to one.
    pub fn poll_expired(&mut self, now: u64, mut fire: impl FnMut(Key, T)) -> usize {
        let pending = self.take_bucket(PENDING);
        let mut fired = self.fire_chain(pending, u64::MAX, &mut fire);
        if now > self.elapsed {
            fired += self.advance(now, &mut fire);
        }
        fired
    }

    /// Walks a chain taken off a bucket ([`take_bucket`](Wheel::take_bucket)) once: each
    /// timer due by `now` fires (freed first, so its key is stale inside `fire`), the rest
    /// are re-filed relative to `elapsed` (for a slot the wheel stands at, always a finer
    /// level). Should `fire` panic, the rest of the chain is re-filed on the way out (the
    /// due ones to `PENDING`), so the wheel stays consistent and they fire on the next poll.
    fn fire_chain(&mut self, chain: u32, now: u64, fire: &mut impl FnMut(Key, T)) -> usize {
        let mut rest = Refile {
            wheel: self,
            rest: chain,
            now,
        };
        let mut fired = 0;
        while rest.rest != NIL {
            let wheel = &mut *rest.wheel;
            let index = rest.rest;
            let entry = wheel.slab.entry_mut(index);
            let (next, deadline) = (entry.next, entry.deadline);
            rest.rest = next;
            if deadline <= now {
                entry.bucket = NO_BUCKET;
                let key = wheel.slab.key_of(index);
                let value = wheel.slab.release(index);
                fired += 1;
                fire(key, value);
            } else {
                let target = wheel.bucket_for(deadline);
                wheel.link(index, target, deadline);
            }
        }
        fired
    }

    /// A tick at which to poll next, or `None` if no timer is pending. O(levels).
    ///
    /// The result is never later than the earliest pending deadline, so it is safe as a park
    /// timeout. It is *exact* (equal to the earliest deadline) unless the earliest timer of a
    /// coarse slot (level ≥ 1) was cancelled or reset since that slot last emptied; then it
    /// is a lower bound that is still at or after the slot's start, so polling at it cascades
    /// that slot and the next answer is exact for what remains. If a timer is already due the
    /// result is at or before [`elapsed`](Wheel::elapsed) (park with a zero timeout);
    /// otherwise it is after it.
    pub fn next_deadline(&self) -> Option<u64> {
        let pending = &self.buckets[PENDING];
        if pending.head != NIL {
            return Some(pending.min);
        }
        let (bucket, start) = self.next_bucket()?;
        Some(start.max(self.buckets[bucket].min))
    }

    /// The bucket a timer due at `deadline` belongs in, relative to `elapsed`.
    ///
    /// Due timers go to `PENDING`. Otherwise the level is the one holding the highest bit in
    /// which `deadline` differs from `elapsed`: every coarser digit of the two is equal, so the
    /// deadline lies in the current turn of that level, in a slot strictly after the one
    /// `elapsed` is in. Differing above the top level means beyond the current turn of the
    /// whole wheel: `OVERFLOW`.
    fn bucket_for(&self, deadline: u64) -> usize {
        if deadline <= self.elapsed {
            return PENDING;
        }
        let highest_bit = 63 - (self.elapsed ^ deadline).leading_zeros();
        let level = (highest_bit / LEVEL_BITS) as usize;
        if level >= LEVELS {
            return OVERFLOW;
        }
        let slot = (deadline >> (level as u32 * LEVEL_BITS)) & SLOT_MASK;
        level * SLOTS_PER_LEVEL + slot as usize
    }

    /// Links entry `index` (due at `deadline`) into `bucket`.
    fn link(&mut self, index: u32, bucket: usize, deadline: u64) {
        let b = &mut self.buckets[bucket];
        // `bucket < BUCKETS < u16::MAX`, checked at compile time above.
        self.slab.push_front(&mut b.head, bucket as u16, index);
        b.min = b.min.min(deadline);
        if bucket < PENDING {
            self.occupied[bucket / 64] |= 1 << (bucket % 64);
        }
    }

    /// Unlinks entry `index` from whatever bucket it is in.
    fn unlink(&mut self, index: u32) {
        let bucket = usize::from(self.slab.entry(index).bucket);
        let b = &mut self.buckets[bucket];
        self.slab.unlink(&mut b.head, index);
        if b.head == NIL {
            b.min = u64::MAX;
            if bucket < PENDING {
                self.occupied[bucket / 64] &= !(1 << (bucket % 64));
            }
        }
    }

    /// Empties `bucket` and returns the head of its former chain. The chained entries still
    /// carry stale links to each other and must each be re-linked by the caller.
    fn take_bucket(&mut self, bucket: usize) -> u32 {
        let b = std::mem::replace(&mut self.buckets[bucket], EMPTY_BUCKET);
        if bucket < PENDING {
            self.occupied[bucket / 64] &= !(1 << (bucket % 64));
        }
        b.head
    }

    /// The earliest non-empty wheel bucket (a slot or the overflow list) and the first tick it
    /// covers, which is always after `elapsed`.
    ///
    /// Every coarser level's occupied slots lie after the whole current turn of each finer
    /// level, so the first occupied slot of the lowest non-empty level is the earliest.
    fn next_bucket(&self) -> Option<(usize, u64)> {
        for (word, &occupied) in self.occupied.iter().enumerate() {
            if occupied != 0 {
                let level = word / WORDS_PER_LEVEL;
                let slot =
                    ((word % WORDS_PER_LEVEL) * 64) as u64 + u64::from(occupied.trailing_zeros());
                let shift = level as u32 * LEVEL_BITS;
                // Start of the current turn of this level, plus the slot's offset in it.
                let turn = self.elapsed >> (shift + LEVEL_BITS) << (shift + LEVEL_BITS);
                let start = turn + (slot << shift);
                debug_assert!(start > self.elapsed, "occupied slot at or before elapsed");
                return Some((level * SLOTS_PER_LEVEL + slot as usize, start));
            }
        }
        if self.buckets[OVERFLOW].head != NIL {
            // Every overflow timer lies in a later turn of the top level than `elapsed`; jump
            // straight to the start of the turn holding the earliest of them (a bound on it).
            let min = self.buckets[OVERFLOW].min;
            let start = min >> RANGE_BITS << RANGE_BITS;
            debug_assert!(start > self.elapsed, "overflow timer in the current turn");
            return Some((OVERFLOW, start));
        }
        None
    }

    /// Moves `elapsed` forward to `now` (> `elapsed`), emptying every bucket whose start has
    /// been reached in one pass each: its due timers fire straight from it (no stop on the
    /// pending list), the rest go to their bucket relative to the bucket's start, which is
    /// always a finer level (or `OVERFLOW` again, for a timer still beyond the new turn).
    /// Returns how many fired.
    fn advance(&mut self, now: u64, fire: &mut impl FnMut(Key, T)) -> usize {
        let mut fired = 0;
        while let Some((bucket, start)) = self.next_bucket() {
            if start > now {
                break;
            }
            // Every bucket before `start` is empty, so the wheel may stand at `start`.
            self.elapsed = start;
            let chain = self.take_bucket(bucket);
            fired += self.fire_chain(chain, now, fire);
        }
        // Nothing left in the wheel starts at or before `now`, so no timer's bucket changes.
        self.elapsed = now;
        fired
    }
}

/// The part of a chain [`Wheel::fire_chain`] has not reached, re-filed if its `fire`
/// panicked: due entries to `PENDING`, the rest by deadline. Empty on the normal way out.
struct Refile<'a, T> {
    wheel: &'a mut Wheel<T>,
    rest: u32,
    now: u64,
}

impl<T> Drop for Refile<'_, T> {
    fn drop(&mut self) {
        let wheel = &mut *self.wheel;
        while self.rest != NIL {
            let index = self.rest;
            let entry = wheel.slab.entry(index);
            let (next, deadline) = (entry.next, entry.deadline);
            self.rest = next;
            let target = if deadline <= self.now {
                PENDING
            } else {
                wheel.bucket_for(deadline)
            };
            wheel.link(index, target, deadline);
        }
    }
}

impl<T> Default for Wheel<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> fmt::Debug for Wheel<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let occupied_slots: [u32; LEVELS] = std::array::from_fn(|l| {
            self.occupied[l * WORDS_PER_LEVEL..(l + 1) * WORDS_PER_LEVEL]
                .iter()
                .map(|w| w.count_ones())
                .sum()
        });
        f.debug_struct("Wheel")
            .field("elapsed", &self.elapsed)
            .field("len", &self.len())
            .field("next_deadline", &self.next_deadline())
            .field("occupied_slots", &occupied_slots)
            .field("pending", &(self.buckets[PENDING].head != NIL))
            .field("overflow", &(self.buckets[OVERFLOW].head != NIL))
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};
    use std::time::Instant;

    use super::*;

    /// xorshift64*: tiny, deterministic, good enough to drive the model tests.
    struct XorShift(u64);

    impl XorShift {
        fn new(seed: u64) -> Self {
            // splitmix64 of the seed, so small seeds still start well mixed (and never 0).
            let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            XorShift((z ^ (z >> 31)) | 1)
        }

        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            self.0 = x;
            x.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        /// Uniform-ish in `0..n` (`n > 0`).
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    fn fired_at<T>(wheel: &mut Wheel<T>, now: u64) -> Vec<T> {
        let mut out = Vec::new();
        wheel.poll_expired(now, |_, v| out.push(v));
        out
    }

    /// The model of a wheel: what should be pending, and which keys are live or dead.
    #[derive(Default)]
    struct Model {
        /// (deadline, seq) -> key; the payload of each timer is its seq.
        pending: BTreeMap<(u64, u64), Key>,
        /// Live timers, for picking one at random: (key, seq, deadline).
        live: Vec<(Key, u64, u64)>,
        /// seq -> position in `live`.
        position: HashMap<u64, usize>,
        /// Keys of fired or cancelled timers (the most recent ones), for stale operations.
        dead: Vec<Key>,
    }

    impl Model {
        fn insert(&mut self, key: Key, seq: u64, deadline: u64) {
            self.pending.insert((deadline, seq), key);
            self.position.insert(seq, self.live.len());
            self.live.push((key, seq, deadline));
        }

        /// Forgets timer `seq`, which must be live, and returns its key and deadline.
        fn remove(&mut self, seq: u64) -> (Key, u64) {
            let i = self.position.remove(&seq).expect("timer is not live");
            let (key, s, deadline) = self.live.swap_remove(i);
            assert_eq!(s, seq);
            if let Some(&(_, moved, _)) = self.live.get(i) {
                self.position.insert(moved, i);
            }
            assert_eq!(self.pending.remove(&(deadline, seq)), Some(key));
            if self.dead.len() == 4096 {
                self.dead.swap_remove(seq as usize % 4096);
            }
            self.dead.push(key);
            (key, deadline)
        }
    }

    /// Runs `ops` random operations against a `BTreeMap` model and checks, after every one,
    /// that exactly the due timers have fired (none early, none late), `len` agrees and
    /// `next_deadline` is a lower bound, exact when `mutate` is off (no cancels or resets).
    fn run_model(seed: u64, ops: usize, mutate: bool) {
        let mut rng = XorShift::new(seed);
        let mut wheel: Wheel<u64> = Wheel::new();
        let mut model = Model::default();
        let mut now = 0u64;
        let mut seq = 0u64;
        let (mut fired_total, mut cancelled, mut stale, mut resets) = (0, 0, 0, 0);
        let (mut exact, mut checks, mut max_len) = (0, 0, 0);

        for _ in 0..ops {
            match rng.below(100) {
                0..=49 => {
                    let deadline = match rng.below(100) {
                        0..=2 => now.saturating_sub(rng.below(1000)), // due, or in the past
                        3..=4 => now + RANGE - 2 + rng.below(4 * RANGE), // past the top level
                        _ => now + rng.below(1 << 20),
                    };
                    let key = wheel.insert(deadline, seq);
                    assert_eq!(wheel.deadline(key), Some(deadline));
                    model.insert(key, seq, deadline);
                    seq += 1;
                }
                50..=69 if mutate => {
                    if rng.below(4) > 0 && !model.live.is_empty() {
                        let i = rng.below(model.live.len() as u64) as usize;
                        let (key, s, _) = model.live[i];
                        assert_eq!(wheel.cancel(key), Some(s));
                        model.remove(s);
                        cancelled += 1;
                        assert_eq!(wheel.cancel(key), None, "double cancel");
                    } else if !model.dead.is_empty() {
                        // A fired or cancelled timer, whose slot may since have been reused.
                        let key = model.dead[rng.below(model.dead.len() as u64) as usize];
                        assert_eq!(wheel.cancel(key), None, "stale cancel");
                        assert!(!wheel.reset(key, now + 1), "stale reset");
                        stale += 1;
                    }
                }
                70..=74 if mutate && !model.live.is_empty() => {
                    let i = rng.below(model.live.len() as u64) as usize;
                    let (key, s, _) = model.live[i];
                    let deadline = now.saturating_sub(5) + rng.below(1 << 16);
                    assert!(wheel.reset(key, deadline));
                    model.remove(s);
                    model.dead.pop(); // still live: not a stale key
                    model.insert(key, s, deadline);
                    resets += 1;
                }
                _ => {
                    let before = wheel.next_deadline();
                    let to_next = rng.below(100) < 5;
                    let step = match rng.below(1000) {
                        _ if to_next => before.map_or(0, |t| t.saturating_sub(now)),
                        0..=799 => rng.below(64),
                        800..=979 => rng.below(1 << 10),
                        980..=994 => rng.below(1 << 14),
                        995..=998 => rng.below(1 << 20),
                        _ => rng.below(3 * RANGE),
                    };
                    now += step;
                    let mut fired = Vec::new();
                    let n = wheel.poll_expired(now, |k, v| fired.push((k, v)));
                    assert_eq!(n, fired.len());
                    for (k, s) in fired {
                        assert!(model.position.contains_key(&s), "{s} fired twice");
                        let (key, d) = model.remove(s);
                        assert!(d <= now, "timer due at {d} fired early at {now}");
                        assert_eq!(k, key, "fired with the wrong key");
                        assert!(!wheel.contains(k));
                        fired_total += 1;
                    }
                    if let Some((&(d, _), _)) = model.pending.first_key_value() {
                        assert!(d > now, "timer due at {d} not fired by {now}");
                    }
                    assert_eq!(wheel.elapsed(), now);
                    if let Some(t) = before.filter(|&t| to_next && t >= now) {
                        // Polling at next_deadline makes progress: something fires, or the
                        // answer moves on.
                        let after = wheel.next_deadline();
                        assert!(n > 0 || after.is_none_or(|a| a > t), "{t} -> {after:?}");
                    }
                }
            }

            assert_eq!(wheel.len(), model.pending.len());
            assert_eq!(wheel.is_empty(), model.pending.is_empty());
            max_len = max_len.max(wheel.len());
            let next = wheel.next_deadline();
            match model.pending.first_key_value() {
                None => assert_eq!(next, None),
                Some((&(min, _), _)) => {
                    let next = next.expect("next_deadline is None with timers pending");
                    assert!(next <= min, "next_deadline {next} after earliest {min}");
                    if min > wheel.elapsed() {
                        assert!(next > wheel.elapsed(), "nothing due, yet {next} <= elapsed");
                    }
                    if !mutate {
                        assert_eq!(next, min, "next_deadline not exact without cancels");
                    }
                    checks += 1;
                    exact += usize::from(next == min);
                }
            }
        }
        eprintln!(
            "model seed={seed} ops={ops}: {seq} inserted, {fired_total} fired, {cancelled} \
             cancelled, {resets} reset, {stale} stale cancels; up to {max_len} pending, \
             {} left at tick {now}; next_deadline exact {exact}/{checks}",
            model.pending.len()
        );
    }

    #[test]
    fn model_random_ops_with_cancels() {
        run_model(1, 200_000, true);
    }

    #[test]
    fn model_random_ops_more_seeds() {
        for seed in 2..6 {
            run_model(seed, 20_000, true);
        }
    }

    /// A longer soak: `cargo test -p weft-reactor --release -- --ignored model_soak`.
    #[test]
    #[ignore = "slow; run explicitly"]
    fn model_soak() {
        for seed in 100..132 {
            run_model(seed, 1_000_000, seed % 4 != 0);
        }
    }

    #[test]
    fn model_random_ops_next_deadline_exact_without_cancels() {
        run_model(7, 100_000, false);
    }

    #[test]
    fn never_early_at_level_boundaries() {
        let deltas = [
            0,
            1,
            2,
            62,
            63,
            64,
            65,
            127,
            128,
            129,
            255,
            256,
            257,
            4095,
            4096,
            4097,
            65_535,
            65_536,
            65_537,
            (1 << 18) - 1,
            1 << 18,
            (1 << 18) + 1,
            (1 << 24) - 1,
            1 << 24,
            (1 << 24) + 1,
            (1 << 30) + 1,
            (1 << 32) - 1,
            1 << 32,
            (1 << 32) + 1,
            RANGE - 1,
            RANGE,
            RANGE + 1,
            3 * RANGE + 7,
        ];
        let starts = [
            0,
            1,
            37,
            63,
            64,
            255,
            256,
            4095,
            4096,
            65_536,
            100_003,
            RANGE - 1,
            RANGE + 5,
        ];
        for &start in &starts {
            for &delta in &deltas {
                let mut wheel = Wheel::new();
                assert!(fired_at(&mut wheel, start).is_empty());
                let deadline = start + delta;
                let key = wheel.insert(deadline, delta);
                assert_eq!(wheel.next_deadline(), Some(deadline));
                if delta <= 5000 {
                    // Step every tick.
                    for t in start..deadline {
                        assert!(fired_at(&mut wheel, t).is_empty(), "{start}+{delta} at {t}");
                        assert_eq!(wheel.next_deadline(), Some(deadline));
                    }
                } else {
                    // Approach through a series of jumps that stop just short.
                    let mut probes = vec![
                        start + delta / 2,
                        deadline - 4097,
                        deadline - 4096,
                        deadline - 65,
                        deadline - 64,
                        deadline - 2,
                        deadline - 1,
                    ];
                    probes.sort_unstable();
                    for t in probes.into_iter().filter(|&t| t >= start && t < deadline) {
                        assert!(fired_at(&mut wheel, t).is_empty(), "{start}+{delta} at {t}");
                        assert_eq!(wheel.next_deadline(), Some(deadline), "{start}+{delta}");
                    }
                }
                assert_eq!(fired_at(&mut wheel, deadline), [delta], "{start}+{delta}");
                assert!(!wheel.contains(key));
                assert!(wheel.is_empty());
                assert_eq!(wheel.next_deadline(), None);
            }
        }
    }

    #[test]
    fn every_tick_fires_exactly_its_timers() {
        // Timers at every tick of the first 70_000 (crossing levels 0, 1 and 2), several
        // per tick, from an unaligned start; stepping one tick at a time must fire exactly
        // the ones due at that tick.
        let start = 3;
        let mut wheel = Wheel::new();
        wheel.poll_expired(start, |_, _| unreachable!());
        for d in (start + 1..start + 70_000).rev() {
            for _ in 0..(d % 3) + 1 {
                wheel.insert(d, d);
            }
        }
        for now in start + 1..start + 70_000 {
            let fired = fired_at(&mut wheel, now);
            assert_eq!(fired.len() as u64, (now % 3) + 1, "at {now}");
            assert!(fired.iter().all(|&d| d == now), "at {now}: {fired:?}");
        }
        assert!(wheel.is_empty());
    }

    #[test]
    fn past_and_present_deadlines_fire_on_next_poll() {
        let mut wheel = Wheel::new();
        wheel.poll_expired(1000, |_, _| unreachable!());
        wheel.insert(3, 3);
        wheel.insert(1000, 1000);
        wheel.insert(0, 0);
        assert_eq!(wheel.next_deadline(), Some(0));
        let mut fired = fired_at(&mut wheel, 1000);
        fired.sort_unstable();
        assert_eq!(fired, [0, 3, 1000]);
        // A `now` behind `elapsed` does not move time backwards but still fires due timers.
        wheel.insert(900, 900);
        wheel.insert(1001, 1001);
        assert_eq!(fired_at(&mut wheel, 10), [900]);
        assert_eq!(wheel.elapsed(), 1000);
        assert_eq!(fired_at(&mut wheel, 1001), [1001]);
    }

    #[test]
    fn overflow_beyond_top_level_is_reinserted() {
        let mut wheel = Wheel::new();
        let far = 5 * RANGE + 12_345;
        let near = RANGE - 1;
        wheel.insert(far, "far");
        wheel.insert(near, "near");
        assert_eq!(wheel.next_deadline(), Some(near));
        assert_eq!(fired_at(&mut wheel, near), ["near"]);
        assert_eq!(wheel.next_deadline(), Some(far));
        for t in [RANGE, 2 * RANGE + 1, 5 * RANGE, far - 1] {
            assert!(fired_at(&mut wheel, t).is_empty(), "at {t}");
            assert_eq!(wheel.next_deadline(), Some(far));
        }
        assert_eq!(fired_at(&mut wheel, far), ["far"]);
        assert!(wheel.is_empty());
    }

    #[test]
    fn huge_jump_with_many_distant_timers_is_cheap() {
        let mut wheel = Wheel::new();
        for i in 0..1000u64 {
            wheel.insert(i * (RANGE / 7) + i, i);
        }
        wheel.insert(u64::MAX, u64::MAX);
        let mut fired = fired_at(&mut wheel, u64::MAX - 1);
        fired.sort_unstable();
        assert_eq!(fired, (0..1000).collect::<Vec<_>>());
        assert_eq!(wheel.next_deadline(), Some(u64::MAX));
        assert_eq!(fired_at(&mut wheel, u64::MAX), [u64::MAX]);
        assert_eq!(wheel.elapsed(), u64::MAX);
        wheel.insert(u64::MAX, 1);
        assert_eq!(fired_at(&mut wheel, u64::MAX), [1]);
    }

    #[test]
    fn cancel_after_fire_and_stale_keys_are_no_ops() {
        let mut wheel = Wheel::new();
        let a = wheel.insert(5, 'a');
        assert_eq!(wheel.get(a), Some(&'a'));
        *wheel.get_mut(a).unwrap() = 'A';
        let mut fired_keys = Vec::new();
        wheel.poll_expired(5, |k, v| fired_keys.push((k, v)));
        assert_eq!(
            fired_keys,
            [(a, 'A')],
            "the callback gets the key insert returned"
        );
        assert_eq!(wheel.cancel(a), None, "cancel after fire");
        assert!(!wheel.reset(a, 100));
        assert_eq!(wheel.get(a), None);
        assert_eq!(wheel.deadline(a), None);

        // The freed slot is reused; the old key must not reach the new timer.
        let b = wheel.insert(50, 'b');
        assert_eq!(b.index(), a.index(), "slot reused");
        assert_ne!(a, b);
        assert_eq!(wheel.cancel(a), None, "stale key after slot reuse");
        assert!(wheel.get_mut(a).is_none());
        assert!(wheel.contains(b));
        assert_eq!(wheel.len(), 1);

        assert_eq!(wheel.cancel(b), Some('b'));
        assert_eq!(wheel.cancel(b), None, "double cancel");
        assert!(wheel.is_empty());
        assert!(
            fired_at(&mut wheel, 1000).is_empty(),
            "cancelled timer fired"
        );
    }

    #[test]
    fn a_panicking_fire_leaves_the_rest_to_the_next_poll() {
        // Five timers in one level-1 slot, three due at the poll; the second one's `fire`
        // panics halfway through the slot. Inserted so that the slot's walk (entries are
        // pushed at the front) meets due entries first and not-yet-due ones after the
        // panic: the guard must re-file both kinds.
        let mut wheel = Wheel::new();
        for d in [400u64, 401, 300, 301, 302] {
            wheel.insert(d, d);
        }
        let mut seen = Vec::new();
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            wheel.poll_expired(350, |_, v| {
                seen.push(v);
                assert!(seen.len() < 2, "boom");
            })
        }));
        assert!(panicked.is_err());
        assert_eq!(wheel.len(), 3);
        let mut rest = fired_at(&mut wheel, 350);
        rest.extend(&seen);
        rest.sort_unstable();
        assert_eq!(rest, [300, 301, 302], "each due timer fires once");
        assert_eq!(wheel.next_deadline(), Some(400));
        assert!(fired_at(&mut wheel, 399).is_empty());
        let mut last = fired_at(&mut wheel, 401);
        last.sort_unstable();
        assert_eq!(last, [400, 401]);
        assert!(wheel.is_empty());
    }

    #[test]
    fn reset_moves_a_timer_both_ways() {
        let mut wheel = Wheel::new();
        let k = wheel.insert(10_000, 1);
        assert!(wheel.reset(k, 20));
        assert_eq!(wheel.deadline(k), Some(20));
        assert_eq!(wheel.next_deadline(), Some(20));
        assert!(fired_at(&mut wheel, 19).is_empty());
        assert!(wheel.reset(k, 70_000));
        assert!(fired_at(&mut wheel, 69_999).is_empty());
        assert_eq!(fired_at(&mut wheel, 70_000), [1]);
    }

    #[test]
    fn next_deadline_after_cancel_is_a_lower_bound_that_makes_progress() {
        let mut wheel = Wheel::new();
        // Both land in level-2 slot 1 (ticks `w..2 * w`).
        let w = (SLOTS_PER_LEVEL * SLOTS_PER_LEVEL) as u64;
        let (a, b) = (w + 1000, w + 3000);
        let early = wheel.insert(a, a);
        wheel.insert(b, b);
        assert_eq!(wheel.next_deadline(), Some(a));
        wheel.cancel(early);
        let bound = wheel.next_deadline().unwrap();
        assert!((w..=b).contains(&bound));
        assert!(fired_at(&mut wheel, bound).is_empty());
        assert_eq!(
            wheel.next_deadline(),
            Some(b),
            "exact again after the cascade"
        );
        assert_eq!(fired_at(&mut wheel, b), [b]);
    }

    #[test]
    fn a_million_inserts_then_cancels() {
        const N: usize = 1_000_000;
        let started = Instant::now();
        let mut rng = XorShift::new(42);
        let mut wheel = Wheel::with_capacity(N);
        let keys: Vec<Key> = (0..N)
            .map(|i| wheel.insert(rng.below(1 << 20), i))
            .collect();
        assert_eq!(wheel.len(), N);
        let inserted = started.elapsed();
        for (i, &key) in keys.iter().enumerate() {
            assert_eq!(wheel.cancel(key), Some(i));
        }
        assert!(wheel.is_empty());
        assert_eq!(wheel.next_deadline(), None);
        let capacity = wheel.capacity();
        // A second round reuses the freed slots instead of growing.
        let keys: Vec<Key> = (0..N).map(|i| wheel.insert(i as u64, i)).collect();
        assert_eq!(wheel.capacity(), capacity);
        assert_eq!(wheel.cancel(keys[N / 2]), Some(N / 2));
        assert_eq!(wheel.poll_expired(u64::MAX, |_, _| {}), N - 1);
        eprintln!(
            "1M inserts {inserted:?}, 1M inserts + 1M cancels + 1M inserts + fire all {:?}",
            started.elapsed()
        );
    }

    #[test]
    fn size_of_entry() {
        use std::mem::size_of;
        use std::task::Waker;

        use super::super::entry::Entry;

        let usize_entry = size_of::<Entry<usize>>();
        let waker_entry = size_of::<Entry<Waker>>();
        let boxed_entry = size_of::<Entry<Box<dyn FnOnce() + Send>>>();
        eprintln!(
            "bytes per timer: Entry<usize> = {usize_entry}, Entry<Waker> = {waker_entry}, \
             Entry<Box<dyn FnOnce()>> = {boxed_entry}; Key = {}",
            size_of::<Key>()
        );
        assert!(usize_entry <= 48, "{usize_entry}");
        assert!(waker_entry <= 48, "{waker_entry}");
        assert!(boxed_entry <= 48, "{boxed_entry}");
        assert_eq!(size_of::<Key>(), 8);
        if cfg!(target_pointer_width = "64") {
            assert_eq!(usize_entry, 40, "documented size changed");
            assert_eq!(waker_entry, 40, "documented size changed");
        }
    }

    #[test]
    fn debug_output_is_informative() {
        let mut wheel = Wheel::new();
        wheel.insert(100, ());
        let text = format!("{wheel:?}");
        assert!(
            text.contains("len: 1") && text.contains("next_deadline: Some(100)"),
            "{text}"
        );
        let key = wheel.insert(1, ());
        assert!(format!("{key:?}").starts_with("Key("));
    }
}
