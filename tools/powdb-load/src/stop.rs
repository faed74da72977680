//! When a run ends: SIGTERM or SIGINT, stdin reaching EOF (with
//! `--watch-stdin`: the parent that holds the pipe went away), or a deadline.
//! Workers poll `Stop::is_set` between requests; a second signal exits at
//! once, so nothing ever waits on a stuck worker.
use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

static SIGNALLED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    if SIGNALLED.swap(true, Ordering::SeqCst) {
        // Only async-signal-safe calls here.
        unsafe { libc::_exit(130) };
    }
}

const RUNNING: u8 = 0;
const SIGNAL: u8 = 1;
const STDIN: u8 = 2;
const DEADLINE: u8 = 3;
const FAILED: u8 = 4;

/// Shared by every worker: set once, never cleared.
#[derive(Clone)]
pub struct Stop(Arc<AtomicU8>);

impl Stop {
    /// Installs the signal handlers and, with `watch_stdin`, a thread that
    /// reads stdin to its end.
    pub fn install(watch_stdin: bool) -> Stop {
        let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        unsafe {
            libc::signal(libc::SIGTERM, handler);
            libc::signal(libc::SIGINT, handler);
        }
        let stop = Stop(Arc::new(AtomicU8::new(RUNNING)));
        if watch_stdin {
            let s = stop.clone();
            thread::spawn(move || {
                let mut sink = [0u8; 256];
                let mut stdin = std::io::stdin();
                while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
                s.set(STDIN);
            });
        }
        stop
    }

    fn set(&self, why: u8) {
        let _ = self.0.compare_exchange(RUNNING, why, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// Stops the run because a worker failed.
    pub fn abort(&self) {
        self.set(FAILED);
    }

    pub fn is_set(&self) -> bool {
        if SIGNALLED.load(Ordering::SeqCst) {
            self.set(SIGNAL);
        }
        self.0.load(Ordering::SeqCst) != RUNNING
    }

    /// Blocks until stopped, or until `deadline` passes.
    pub fn wait(&self, deadline: Option<Instant>) {
        while !self.is_set() {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                self.set(DEADLINE);
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sleeps up to `d`, waking early when stopped; true if stopped.
    pub fn sleep(&self, d: Duration) -> bool {
        let end = Instant::now() + d;
        while !self.is_set() {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            thread::sleep(left.min(Duration::from_millis(20)));
        }
        true
    }

    pub fn reason(&self) -> &'static str {
        match self.0.load(Ordering::SeqCst) {
            SIGNAL => "signal",
            STDIN => "stdin",
            DEADLINE => "seconds",
            FAILED => "failed",
            _ => "running",
        }
    }
}
