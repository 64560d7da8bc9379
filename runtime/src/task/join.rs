use std::any::Any;
use std::fmt;
use std::future::Future;
use std::io;
use std::marker::PhantomData;
use std::panic::{RefUnwindSafe, UnwindSafe};
use std::pin::Pin;
use std::ptr::NonNull;
use std::task::{Context, Poll};

use super::Id;
use super::raw::Header;
use super::state::COMPLETE;

/// An owned permission to await a spawned task's output.
///
/// Awaiting it gives `Ok(output)`, or a [`JoinError`] if the task panicked or was aborted.
/// Dropping it *detaches* the task: it keeps running and its output is dropped when it
/// finishes. [`abort`](JoinHandle::abort) asks for the task's future to be dropped.
///
/// # Examples
///
/// ```
/// let rt = weft_runtime::Runtime::new().unwrap();
/// rt.block_on(async {
///     let h = weft_runtime::spawn(async { "done" });
///     assert_eq!(h.await.unwrap(), "done");
///
///     let forever = weft_runtime::spawn(std::future::pending::<()>());
///     forever.abort();
///     assert!(forever.await.unwrap_err().is_cancelled());
/// });
/// ```
pub struct JoinHandle<T> {
    raw: NonNull<Header>,
    _output: PhantomData<T>,
}

// SAFETY: the handle is a counted pointer to a cell whose shared state is synchronised by the
// state word; it moves `T` out of the cell, so it is `Send` when `T` is.
unsafe impl<T: Send> Send for JoinHandle<T> {}
// SAFETY: `&JoinHandle` only reads the state word (`is_finished`) or aborts, both atomic.
unsafe impl<T: Send> Sync for JoinHandle<T> {}
impl<T> Unpin for JoinHandle<T> {}
impl<T> UnwindSafe for JoinHandle<T> {}
impl<T> RefUnwindSafe for JoinHandle<T> {}

impl<T> JoinHandle<T> {
    /// # Safety
    /// `raw` is a live task whose output type is `T`; one reference is transferred.
    pub(crate) unsafe fn from_raw(raw: NonNull<Header>) -> Self {
        JoinHandle {
            raw,
            _output: PhantomData,
        }
    }

    fn header(&self) -> &Header {
        // SAFETY: the handle holds a reference.
        unsafe { self.raw.as_ref() }
    }

    /// Asks for the task to be cancelled: its future is dropped (on a worker) before its next
    /// poll, and awaiting the handle gives [`JoinError::is_cancelled`]. A task that has
    /// already completed keeps its output. A task in the middle of a poll finishes that poll
    /// first.
    pub fn abort(&self) {
        abort(self.raw)
    }

    /// Whether the task has completed (returned, panicked or been cancelled).
    pub fn is_finished(&self) -> bool {
        self.header().state.load().is(COMPLETE)
    }

    /// The task's [`Id`]; the same as [`task::id()`](super::id) returns inside it.
    pub fn id(&self) -> Id {
        header_id(self.header())
    }

    /// A handle that can abort the task but not await it; it does not keep the output.
    pub fn abort_handle(&self) -> AbortHandle {
        self.header().state.ref_inc();
        AbortHandle { raw: self.raw }
    }
}

impl<T> JoinHandle<T> {
    /// The output if the task is complete, else registers `cx`'s waker as the join waker;
    /// spends no cooperative budget (the caller accounts for it, as `JoinSet` does once per
    /// `join_next`).
    pub(crate) fn poll_output(&mut self, cx: &mut Context<'_>) -> Poll<Result<T, JoinError>> {
        let mut out: Poll<Result<T, JoinError>> = Poll::Pending;
        // SAFETY: `out` has the type `try_read_output` writes for a task with output `T`,
        // and the handle holds a reference.
        unsafe {
            (self.header().vtable.try_read_output)(
                self.raw,
                (&mut out as *mut Poll<Result<T, JoinError>>).cast(),
                cx.waker(),
            )
        };
        out
    }
}

fn header_id(h: &Header) -> Id {
    Id::from_raw(h.id).expect("every spawned task has an id")
}

fn abort(raw: NonNull<Header>) {
    // SAFETY: callers hold a reference.
    let h = unsafe { raw.as_ref() };
    if h.state.transition_to_notified_and_cancel() {
        // SAFETY: the transition added the reference the queue entry takes.
        unsafe { (h.vtable.schedule)(raw) }
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let coop = std::task::ready!(crate::coop::poll_proceed(cx));
        let out = self.get_mut().poll_output(cx);
        if out.is_ready() {
            coop.made_progress();
        }
        out
    }
}

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        let h = self.header();
        if !h.state.unset_join_interested() {
            // The task completed while we were interested: its output is ours to drop.
            // SAFETY: the handle holds a reference and owns the output.
            unsafe { (h.vtable.drop_output)(self.raw) };
        }
        if h.state.ref_dec_by(1) {
            // SAFETY: that was the last reference.
            unsafe { (h.vtable.dealloc)(self.raw) };
        }
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("state", &self.header().state)
            .finish()
    }
}

/// Aborts a task without owning its output. Obtained from [`JoinHandle::abort_handle`].
pub struct AbortHandle {
    raw: NonNull<Header>,
}

// SAFETY: only the atomic state word is used through it.
unsafe impl Send for AbortHandle {}
// SAFETY: as for `Send`.
unsafe impl Sync for AbortHandle {}

impl AbortHandle {
    /// See [`JoinHandle::abort`].
    pub fn abort(&self) {
        abort(self.raw)
    }

    /// See [`JoinHandle::is_finished`].
    pub fn is_finished(&self) -> bool {
        // SAFETY: the handle holds a reference.
        unsafe { self.raw.as_ref() }.state.load().is(COMPLETE)
    }

    /// See [`JoinHandle::id`].
    pub fn id(&self) -> Id {
        // SAFETY: the handle holds a reference.
        header_id(unsafe { self.raw.as_ref() })
    }
}

impl Clone for AbortHandle {
    fn clone(&self) -> Self {
        // SAFETY: the handle holds a reference.
        unsafe { self.raw.as_ref() }.state.ref_inc();
        AbortHandle { raw: self.raw }
    }
}

impl Drop for AbortHandle {
    fn drop(&mut self) {
        // SAFETY: the handle holds a reference.
        let h = unsafe { self.raw.as_ref() };
        if h.state.ref_dec_by(1) {
            // SAFETY: that was the last reference.
            unsafe { (h.vtable.dealloc)(self.raw) };
        }
    }
}

impl fmt::Debug for AbortHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AbortHandle")
            .field("finished", &self.is_finished())
            .finish()
    }
}

/// Why a task produced no output: it was cancelled, or it panicked.
///
/// # Examples
///
/// ```
/// let rt = weft_runtime::Runtime::new().unwrap();
/// let err = rt.block_on(async {
///     weft_runtime::spawn(async { panic!("boom") }).await.unwrap_err()
/// });
/// assert!(err.is_panic());
/// let payload = err.into_panic();
/// assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom"));
/// ```
pub struct JoinError {
    repr: Repr,
    id: u64,
}

enum Repr {
    Cancelled,
    Panic(SyncWrapper),
}

/// Holds the panic payload (`Send` but not `Sync`) so that `JoinError` is `Sync`.
struct SyncWrapper(Box<dyn Any + Send + 'static>);

// SAFETY: through `&JoinError` the payload is only asked its type id (a vtable call that
// reads no data) and, if it is a `&'static str` or a `String` (both `Sync`), read as one
// (`panic_message`). Anything else is only moved out by value (`into_panic`).
unsafe impl Sync for SyncWrapper {}

impl JoinError {
    pub(crate) fn cancelled(id: u64) -> JoinError {
        JoinError {
            repr: Repr::Cancelled,
            id,
        }
    }

    pub(crate) fn panic(id: u64, payload: Box<dyn Any + Send + 'static>) -> JoinError {
        JoinError {
            repr: Repr::Panic(SyncWrapper(payload)),
            id,
        }
    }

    /// The [`Id`] of the task that failed.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = weft_runtime::Runtime::new().unwrap();
    /// rt.block_on(async {
    ///     let h = weft_runtime::spawn(std::future::pending::<()>());
    ///     let id = h.id();
    ///     h.abort();
    ///     assert_eq!(h.await.unwrap_err().id(), id);
    /// });
    /// ```
    pub fn id(&self) -> Id {
        Id::from_raw(self.id).expect("a join error comes from a task, which has an id")
    }

    /// The task was aborted, or dropped by runtime shutdown.
    pub fn is_cancelled(&self) -> bool {
        matches!(self.repr, Repr::Cancelled)
    }

    /// The task panicked (in `poll`, or while its future or output was dropped).
    pub fn is_panic(&self) -> bool {
        matches!(self.repr, Repr::Panic(_))
    }

    /// The panic payload, to re-raise with [`std::panic::resume_unwind`].
    ///
    /// # Panics
    ///
    /// If the error is not a panic; see [`try_into_panic`](JoinError::try_into_panic).
    #[track_caller]
    pub fn into_panic(self) -> Box<dyn Any + Send + 'static> {
        self.try_into_panic()
            .expect("JoinError::into_panic called on a cancelled task's error")
    }

    /// The panic payload, or the error back if it was a cancellation.
    pub fn try_into_panic(self) -> Result<Box<dyn Any + Send + 'static>, JoinError> {
        match self.repr {
            Repr::Panic(p) => Ok(p.0),
            Repr::Cancelled => Err(self),
        }
    }

    fn panic_message(&self) -> Option<&str> {
        match &self.repr {
            // Only `Sync` types are read through `&` here; see `SyncWrapper`.
            Repr::Panic(p) => panic_message(&*p.0),
            Repr::Cancelled => None,
        }
    }
}

/// The message of a panic payload, if it is a `&str` or a `String` (what `panic!` makes).
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> Option<&str> {
    payload
        .downcast_ref::<&'static str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(|s| s.as_str()))
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.repr, self.panic_message()) {
            (Repr::Cancelled, _) => write!(f, "task {} was cancelled", self.id),
            (Repr::Panic(_), Some(msg)) => {
                write!(f, "task {} panicked with message {msg:?}", self.id)
            }
            (Repr::Panic(_), None) => write!(f, "task {} panicked", self.id),
        }
    }
}

impl fmt::Debug for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.repr, self.panic_message()) {
            (Repr::Cancelled, _) => write!(f, "JoinError::Cancelled(Id({}))", self.id),
            (Repr::Panic(_), Some(msg)) => {
                write!(f, "JoinError::Panic(Id({}), {msg:?}, ...)", self.id)
            }
            (Repr::Panic(_), None) => write!(f, "JoinError::Panic(Id({}), ...)", self.id),
        }
    }
}

impl std::error::Error for JoinError {}

impl From<JoinError> for io::Error {
    fn from(e: JoinError) -> io::Error {
        let kind = if e.is_cancelled() {
            io::ErrorKind::Interrupted
        } else {
            io::ErrorKind::Other
        };
        io::Error::new(kind, e.to_string())
    }
}
