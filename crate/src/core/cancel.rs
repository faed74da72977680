//! Cooperative cancellation and progress: the operation running on this
//! thread checks its token between chunks, so an abort stops even a long file
//! within a chunk's time (milliseconds); and the data loops advance the
//! token's byte count as they go, so JS can report progress inside a file.
//!
//! An `Operation` is what JS holds (by id): the abort flag, the bytes that
//! its running jobs have processed, and a listener told each time the
//! operation as a whole has processed another `STEP` bytes. Each native call
//! runs as a job (`run_job`): what it advanced leaves the running count when
//! it ends, so JS can add that count to the files it saw finish.
use super::error::{CoreError, CoreResult};
use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

/// The listener is told each time this many more bytes are processed: often
/// enough that a bar and its ETA move on slow (compressed, remote) runs.
pub const STEP: u64 = 8 << 20;

/// Called from the thread that crossed a step; must not block.
pub type Listener = Box<dyn Fn() + Send + Sync>;

/// One operation's shared state (an abort flag and its progress).
#[derive(Default)]
pub struct Operation {
    aborted: AtomicBool,
    /// Bytes processed by the jobs still running.
    running: AtomicU64,
    /// Bytes processed in all, to find the steps crossed.
    advanced: AtomicU64,
    listener: OnceLock<Listener>,
}

impl Operation {
    /// Makes every job of the operation stop at its next chunk.
    pub fn cancel(&self) {
        self.aborted.store(true, Ordering::Relaxed);
    }

    /// Bytes processed so far by the jobs still running (one atomic load).
    pub fn running_bytes(&self) -> u64 {
        self.running.load(Ordering::Relaxed)
    }

    /// Sets the listener told of each `STEP` crossed; false if one is set already.
    pub fn listen(&self, listener: Listener) -> bool {
        self.listener.set(listener).is_ok()
    }
}

/// What a job's threads hold: its operation and the bytes it advanced.
pub struct Job {
    operation: Arc<Operation>,
    advanced: AtomicU64,
}

pub type Token = Arc<Job>;

impl Job {
    fn advance(&self, bytes: u64) {
        let op = &self.operation;
        self.advanced.fetch_add(bytes, Ordering::Relaxed);
        op.running.fetch_add(bytes, Ordering::Relaxed);
        let before = op.advanced.fetch_add(bytes, Ordering::Relaxed);
        if before / STEP != (before + bytes) / STEP {
            if let Some(listener) = op.listener.get() {
                listener();
            }
        }
    }
}

/// Takes a job's bytes back out of its operation's running count when the job ends.
struct Ended(Token);

impl Drop for Ended {
    fn drop(&mut self) {
        let job = &self.0;
        job.operation.running.fetch_sub(job.advanced.load(Ordering::Relaxed), Ordering::Relaxed);
    }
}

thread_local! {
    static CURRENT: RefCell<Option<Token>> = const { RefCell::new(None) };
    static UNCOUNTED: Cell<bool> = const { Cell::new(false) };
}

/// Runs `work` as one job of `operation` on this thread (see the module comment).
pub fn run_job<T>(operation: Option<Arc<Operation>>, work: impl FnOnce() -> T) -> T {
    let token = operation.map(|operation| Arc::new(Job { operation, advanced: AtomicU64::new(0) }));
    let _ended = token.clone().map(Ended);
    with(token, work)
}

/// Runs `work` with `token` as this thread's cancellation token.
pub fn with<T>(token: Option<Token>, work: impl FnOnce() -> T) -> T {
    let previous = CURRENT.with(|c| c.replace(token));
    let result = work();
    CURRENT.with(|c| *c.borrow_mut() = previous);
    result
}

/// This thread's token, to hand on to helper threads.
pub fn current() -> Option<Token> {
    CURRENT.with(|c| c.borrow().clone())
}

/// Fails with ERR_ABORTED once this thread's operation is cancelled.
pub fn check() -> CoreResult<()> {
    let aborted = CURRENT.with(|c| c.borrow().as_ref().is_some_and(|t| t.operation.aborted.load(Ordering::Relaxed)));
    if aborted {
        return Err(CoreError::new("ERR_ABORTED", "the operation was aborted"));
    }
    Ok(())
}

/// Counts `bytes` of the file this job works on as processed (once each:
/// progress is measured in the bytes of the file JS reports).
pub fn advance(bytes: u64) {
    if UNCOUNTED.with(Cell::get) {
        return;
    }
    CURRENT.with(|c| {
        if let Some(token) = c.borrow().as_ref() {
            token.advance(bytes);
        }
    });
}

/// Runs `work` on this thread without advancing progress: reads that the
/// file's count does not stand for (the superseded layers a restore checks).
pub fn uncounted<T>(work: impl FnOnce() -> T) -> T {
    let previous = UNCOUNTED.with(|u| u.replace(true));
    let result = work();
    UNCOUNTED.with(|u| u.set(previous));
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn checks_only_the_current_token() {
        assert!(check().is_ok());
        let op = Arc::new(Operation::default());
        run_job(Some(op.clone()), || {
            assert!(check().is_ok());
            op.cancel();
            assert_eq!(check().unwrap_err().code, "ERR_ABORTED");
        });
        assert!(check().is_ok());
    }

    #[test]
    fn counts_bytes_while_a_job_runs_and_tells_each_step() {
        let op = Arc::new(Operation::default());
        let steps = Arc::new(AtomicUsize::new(0));
        let told = steps.clone();
        assert!(op.listen(Box::new(move || {
            told.fetch_add(1, Ordering::Relaxed);
        })));
        assert!(!op.listen(Box::new(|| {})));
        advance(STEP); // no job on this thread: nothing counted
        run_job(Some(op.clone()), || {
            advance(STEP - 1);
            assert_eq!((op.running_bytes(), steps.load(Ordering::Relaxed)), (STEP - 1, 0));
            uncounted(|| advance(STEP));
            assert_eq!(op.running_bytes(), STEP - 1);
            // Helper threads of the job count for it.
            let token = current();
            std::thread::scope(|s| {
                s.spawn(|| with(token, || advance(2)));
            });
            assert_eq!((op.running_bytes(), steps.load(Ordering::Relaxed)), (STEP + 1, 1));
            run_job(Some(op.clone()), || (0..3 * (STEP >> 20)).for_each(|_| advance(1 << 20))); // 1 MiB chunks
            assert_eq!((op.running_bytes(), steps.load(Ordering::Relaxed)), (STEP + 1, 4));
        });
        assert_eq!(op.running_bytes(), 0);
    }
}
