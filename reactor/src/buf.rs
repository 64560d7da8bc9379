//! Owned buffers for I/O: [`IoBuf`] (bytes to write), [`IoBufMut`] (room to read into),
//! the [`Slice`] view over part of one, and [`BufResult`].
//!
//! An io_uring operation hands the kernel a pointer into its buffer and may outlive the
//! future that started it (the future is dropped; the kernel still writes). So the
//! operation *owns* the buffer until the completion is reaped, and gives it back with the
//! result: `(io::Result<T>, B)`, a [`BufResult`]. These traits say what an owned buffer
//! must be for that to be sound: a pointer that does not move when the value does, how
//! many bytes are initialised (what a write sends), and how many fit (what a read fills).
//!
//! They live in the reactor because its operations ([`op::read`](crate::op::read),
//! [`op::write`](crate::op::write)) are generic over them and build the submission entry
//! from the pointer; `weft-runtime` re-exports this module as `weft::buf`, so the file API,
//! the callback API and any later socket API share one set of traits.
//!
//! | type | write sends | a read fills | a read sets |
//! |---|---|---|---|
//! | `Vec<u8>` | `..len()` | `..capacity()` | `len()` to the bytes read |
//! | `Box<[u8]>` | all of it | all of it | nothing (it is always initialised) |
//! | `&'static [u8]`, `&'static str` | all of it | (not `IoBufMut`) | |
//! | `bytes::Bytes` (feature `bytes`) | all of it | (not `IoBufMut`) | |
//! | `bytes::BytesMut` (feature `bytes`) | `..len()` | `..capacity()` | `len()` to the bytes read |
//! | [`Slice<B>`] | its initialised part | `begin..end` of `B` | `B`'s length, if it grows |
//!
//! # Examples
//!
//! A read into the second half of a buffer, keeping the first half:
//!
//! ```
//! use weft_reactor::buf::{IoBuf, IoBufMut};
//!
//! let mut buf = Vec::with_capacity(8);
//! buf.extend_from_slice(b"head");
//! let mut tail = buf.slice(4..8);
//! assert_eq!((tail.begin(), tail.end(), tail.bytes_total()), (4, 8, 4));
//! // What a read does, here by hand: write into the view, then record the bytes.
//! // SAFETY: the view has room for 4 bytes; 2 are written, then declared initialised.
//! unsafe {
//!     std::ptr::copy_nonoverlapping(b"ed".as_ptr(), tail.stable_mut_ptr(), 2);
//!     tail.set_init(2);
//! }
//! assert_eq!(tail.into_inner(), b"headed");
//! ```
//!
//! Any `'static` byte string can be written without copying it into a `Vec`:
//!
//! ```
//! use weft_reactor::buf::IoBuf;
//!
//! let greeting = "hello";
//! assert_eq!((greeting.bytes_init(), greeting.bytes_total()), (5, 5));
//! let tail = greeting.slice(1..);
//! assert_eq!(tail.bytes_init(), 4);
//! ```

use std::ops::{Bound, RangeBounds};

/// `(result, buffer)`: what an operation on an owned buffer returns, the buffer coming back
/// whether or not the operation succeeded.
pub type BufResult<T, B> = (std::io::Result<T>, B);

/// A buffer an operation may own while the kernel (or a blocking-pool thread) reads from
/// it: a pointer to its bytes, how many are initialised, and how many fit.
///
/// # Safety
///
/// An implementation promises, for as long as the value lives and is not accessed through
/// `&mut` (other than through [`IoBufMut`]):
///
/// 1. [`stable_ptr`](IoBuf::stable_ptr) points at [`bytes_total`](IoBuf::bytes_total)
///    bytes of memory the value owns (or that lives for `'static`), and returns the same
///    pointer when the value has been **moved** (heap or static memory, never inline).
/// 2. The first [`bytes_init`](IoBuf::bytes_init) bytes there are initialised, and
///    `bytes_init() <= bytes_total()`.
/// 3. Nothing else writes those bytes while the value is owned by an operation (a
///    reference-counted buffer is only shared read-only).
pub unsafe trait IoBuf: Send + 'static {
    /// A pointer to the first byte; the same after the value moves.
    fn stable_ptr(&self) -> *const u8;

    /// How many bytes from [`stable_ptr`](IoBuf::stable_ptr) are initialised: what a write
    /// sends.
    fn bytes_init(&self) -> usize;

    /// How many bytes the buffer holds, initialised or not: what a read may fill.
    fn bytes_total(&self) -> usize;

    /// A view of `range` of the buffer (relative to its start), owning it; get the buffer
    /// back with [`Slice::into_inner`].
    ///
    /// # Panics
    ///
    /// If the range is decreasing or ends past [`bytes_total`](IoBuf::bytes_total).
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_reactor::buf::IoBuf;
    ///
    /// let s = b"0123456789".to_vec().slice(2..5);
    /// assert_eq!((s.begin(), s.end(), s.bytes_init()), (2, 5, 3));
    /// assert_eq!(&s[..], b"234");
    /// ```
    fn slice(self, range: impl RangeBounds<usize>) -> Slice<Self>
    where
        Self: Sized,
    {
        let total = self.bytes_total();
        let begin = match range.start_bound() {
            Bound::Included(&n) => n,
            Bound::Excluded(&n) => n.checked_add(1).expect("slice start overflows usize"),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&n) => n.checked_add(1).expect("slice end overflows usize"),
            Bound::Excluded(&n) => n,
            Bound::Unbounded => total,
        };
        assert!(
            begin <= end,
            "slice {begin}..{end} of a buffer: the range is decreasing"
        );
        assert!(
            end <= total,
            "slice {begin}..{end} of a buffer: it holds only {total} bytes"
        );
        Slice {
            buf: self,
            begin,
            end,
        }
    }
}

/// A buffer an operation may own while the kernel (or a blocking-pool thread) writes into
/// it.
///
/// # Safety
///
/// As [`IoBuf`]; and [`stable_mut_ptr`](IoBufMut::stable_mut_ptr) is
/// [`stable_ptr`](IoBuf::stable_ptr), valid for writes of
/// [`bytes_total`](IoBuf::bytes_total) bytes, and after
/// [`set_init(n)`](IoBufMut::set_init) [`bytes_init`](IoBuf::bytes_init) is at least `n`.
pub unsafe trait IoBufMut: IoBuf {
    /// A pointer to the first byte, valid for writes of
    /// [`bytes_total`](IoBuf::bytes_total) bytes; the same after the value moves.
    fn stable_mut_ptr(&mut self) -> *mut u8;

    /// Records that the first `n` bytes are initialised. A growable buffer (`Vec<u8>`,
    /// `BytesMut`) sets its length to exactly `n`, so it can also shrink; one that is always
    /// fully initialised (`Box<[u8]>`) ignores it; a [`Slice`] only ever grows its inner
    /// buffer's length.
    ///
    /// # Safety
    ///
    /// `n <= bytes_total()`, and the first `n` bytes are initialised.
    unsafe fn set_init(&mut self, n: usize);
}

// SAFETY: a Vec's buffer is on the heap (or dangling with capacity 0, valid for 0 bytes)
// and does not move with the Vec; `len <= capacity`; a Vec is uniquely owned.
unsafe impl IoBuf for Vec<u8> {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }

    fn bytes_init(&self) -> usize {
        self.len()
    }

    fn bytes_total(&self) -> usize {
        self.capacity()
    }
}

// SAFETY: as for `IoBuf`; `as_mut_ptr` is the same pointer, valid for `capacity` bytes,
// and `set_init` sets the length to `n`.
unsafe impl IoBufMut for Vec<u8> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut_ptr()
    }

    unsafe fn set_init(&mut self, n: usize) {
        // SAFETY: the caller promises `n <= capacity` and that the first `n` bytes are
        // initialised: `set_len`'s contract.
        unsafe { self.set_len(n) };
    }
}

// SAFETY: a boxed slice is on the heap (or dangling when empty), fully initialised, and
// uniquely owned.
unsafe impl IoBuf for Box<[u8]> {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }

    fn bytes_init(&self) -> usize {
        self.len()
    }

    fn bytes_total(&self) -> usize {
        self.len()
    }
}

// SAFETY: as for `IoBuf`; every byte is always initialised, so `bytes_init` is already at
// least any `n <= len`.
unsafe impl IoBufMut for Box<[u8]> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut_ptr()
    }

    unsafe fn set_init(&mut self, _n: usize) {}
}

// SAFETY: `'static` memory that nobody may write (a shared reference), fully initialised.
unsafe impl IoBuf for &'static [u8] {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }

    fn bytes_init(&self) -> usize {
        self.len()
    }

    fn bytes_total(&self) -> usize {
        self.len()
    }
}

// SAFETY: as for `&'static [u8]`.
unsafe impl IoBuf for &'static str {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }

    fn bytes_init(&self) -> usize {
        self.len()
    }

    fn bytes_total(&self) -> usize {
        self.len()
    }
}

// SAFETY: `Bytes` points at heap or `'static` memory that does not move with the handle,
// fully initialised, and shared read-only (nobody can write through a `Bytes`).
#[cfg(feature = "bytes")]
unsafe impl IoBuf for bytes::Bytes {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }

    fn bytes_init(&self) -> usize {
        self.len()
    }

    fn bytes_total(&self) -> usize {
        self.len()
    }
}

// SAFETY: a `BytesMut` is a unique view of a heap buffer that does not move with the
// handle; its first `len` bytes are initialised, `len <= capacity`.
#[cfg(feature = "bytes")]
unsafe impl IoBuf for bytes::BytesMut {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }

    fn bytes_init(&self) -> usize {
        self.len()
    }

    fn bytes_total(&self) -> usize {
        self.capacity()
    }
}

// SAFETY: as for `IoBuf`; `as_mut_ptr` is the same pointer, valid for `capacity` bytes,
// and `set_init` sets the length to `n`.
#[cfg(feature = "bytes")]
unsafe impl IoBufMut for bytes::BytesMut {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut_ptr()
    }

    unsafe fn set_init(&mut self, n: usize) {
        // SAFETY: the caller promises `n <= capacity` and that the first `n` bytes are
        // initialised: `set_len`'s contract.
        unsafe { self.set_len(n) };
    }
}

/// A view of `begin..end` of an owned buffer, itself an owned buffer: a write sends the
/// view's initialised bytes, a read fills the view from `begin`. Made by
/// [`IoBuf::slice`].
///
/// A read into a view that starts past the buffer's initialised length zeroes the gap, so
/// the buffer's initialised bytes stay one run from its start. The view dereferences to its
/// initialised bytes.
#[derive(Debug)]
pub struct Slice<B> {
    buf: B,
    begin: usize,
    end: usize,
}

impl<B> Slice<B> {
    /// Where the view starts in the buffer.
    pub fn begin(&self) -> usize {
        self.begin
    }

    /// Where the view ends in the buffer (exclusive).
    pub fn end(&self) -> usize {
        self.end
    }

    /// The whole buffer.
    pub fn get_ref(&self) -> &B {
        &self.buf
    }

    /// The buffer, with whatever a read put into the view.
    pub fn into_inner(self) -> B {
        self.buf
    }
}

impl<B: IoBuf> std::ops::Deref for Slice<B> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: the view's initialised bytes lie within the buffer's (`IoBuf` 1 and 2,
        // and `bytes_init` below), which `self` owns and nobody writes while it is borrowed.
        unsafe { std::slice::from_raw_parts(self.stable_ptr(), self.bytes_init()) }
    }
}

// SAFETY: the pointer is the buffer's, advanced by `begin <= end <= bytes_total` (checked
// in `slice`; the view lends no `&mut` to the buffer, so it cannot shrink), so it is
// stable and within the buffer; the view's initialised bytes are the buffer's initialised
// bytes that fall inside it.
unsafe impl<B: IoBuf> IoBuf for Slice<B> {
    fn stable_ptr(&self) -> *const u8 {
        // SAFETY: `begin <= bytes_total` of the buffer: within its allocation, or one past.
        unsafe { self.buf.stable_ptr().add(self.begin) }
    }

    fn bytes_init(&self) -> usize {
        self.buf
            .bytes_init()
            .min(self.end)
            .saturating_sub(self.begin)
    }

    fn bytes_total(&self) -> usize {
        self.end - self.begin
    }
}

// SAFETY: as for `IoBuf`; `set_init` leaves the buffer's first `begin + n` bytes
// initialised (zeroing any gap before the view), so the view's `bytes_init` is at least `n`.
unsafe impl<B: IoBufMut> IoBufMut for Slice<B> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        // SAFETY: as in `stable_ptr`.
        unsafe { self.buf.stable_mut_ptr().add(self.begin) }
    }

    unsafe fn set_init(&mut self, n: usize) {
        let init = self.buf.bytes_init();
        let upto = self.begin + n;
        if upto <= init {
            return;
        }
        if init < self.begin {
            // SAFETY: `init < begin <= bytes_total`: the gap lies within the buffer, which
            // `self` owns mutably; zeroing it initialises it.
            unsafe {
                std::ptr::write_bytes(self.buf.stable_mut_ptr().add(init), 0, self.begin - init)
            };
        }
        // SAFETY: the caller initialised the view's first `n` bytes (`n <= end - begin`, so
        // `upto <= end <= bytes_total`); the bytes before `begin` were initialised already
        // or zeroed above.
        unsafe { self.buf.set_init(upto) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vec_reports_len_and_capacity() {
        let mut v = Vec::with_capacity(16);
        v.extend_from_slice(b"abc");
        assert_eq!(v.bytes_init(), 3);
        assert_eq!(v.bytes_total(), v.capacity());
        let p = v.stable_ptr();
        let moved = v;
        assert_eq!(moved.stable_ptr(), p);
    }

    #[test]
    fn slice_bounds() {
        let v = b"0123456789".to_vec();
        let s = v.slice(..=3);
        assert_eq!((s.begin(), s.end(), s.bytes_init()), (0, 4, 4));
        let s = s.into_inner().slice(7..);
        assert_eq!((s.begin(), s.end(), &s[..]), (7, 10, &b"789"[..]));
    }

    #[test]
    #[should_panic(expected = "holds only")]
    fn slice_past_the_end_panics() {
        let _ = Box::<[u8]>::from(&b"abc"[..]).slice(1..5);
    }

    #[test]
    fn slice_past_init_zeroes_the_gap() {
        let mut v = Vec::with_capacity(8);
        v.push(b'a');
        let mut s = v.slice(4..8);
        assert_eq!(s.bytes_init(), 0);
        // SAFETY: one byte written within the view, then declared.
        unsafe {
            s.stable_mut_ptr().write(b'z');
            s.set_init(1);
        }
        assert_eq!(s.into_inner(), b"a\0\0\0z");
    }

    #[test]
    fn slice_never_shrinks_its_buffer() {
        let mut s = b"abcdef".to_vec().slice(1..3);
        // SAFETY: zero bytes declared.
        unsafe { s.set_init(0) };
        assert_eq!(s.into_inner(), b"abcdef");
    }

    #[test]
    fn static_str_is_fully_initialised() {
        let s: &'static str = "héllo";
        assert_eq!((s.bytes_init(), s.bytes_total()), (6, 6));
    }
}
