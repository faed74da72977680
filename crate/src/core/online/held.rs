//! A freeze held under a budget. Writers queue behind a freeze and the server
//! fails them after its `POWDB_TX_WAIT_TIMEOUT_MS` (5 s by default), so a
//! watchdog thread commits the freeze itself once most of the budget is
//! spent, whatever the stage's own thread is doing (even blocked in a read):
//! the stage then finds the freeze gone and gives up the attempt with
//! `ERR_FREEZE_BUDGET`, instead of holding writers until they fail; or with
//! `ERR_FREEZE_LOST` when that commit failed because the server had already
//! ended the freeze (its lifetime reaper, a restart: e.g. this process was
//! stopped for longer than the server's `POWDB_TX_MAX_LIFETIME_MS`).
use super::{Connection, Freeze};
use crate::core::error::{CoreError, CoreResult};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

struct Shared {
    freeze: Mutex<Option<Freeze>>,
    wake: Condvar,
    expired: AtomicBool,
    /// How long the freeze held when the watchdog committed it.
    watchdog_held: Mutex<Option<Duration>>,
    /// The watchdog's commit failed: the server had ended the freeze first.
    watchdog_lost: Mutex<Option<CoreError>>,
}

/// A held freeze and its watchdog.
pub struct HeldFreeze {
    shared: Arc<Shared>,
    watchdog: Option<JoinHandle<()>>,
    began: Instant,
    began_wall: SystemTime,
    budget: Duration,
}

impl HeldFreeze {
    /// Sends `begin` on `conn`, waiting up to `wait` for its answer; the
    /// watchdog commits at 90 % of `budget` from then (leaving the rest for
    /// the commit's round trip).
    pub fn begin(conn: Connection, budget: Duration, wait: Duration) -> CoreResult<HeldFreeze> {
        let freeze = conn.freeze_within(wait)?;
        let (began, began_wall) = (Instant::now(), SystemTime::now());
        let shared = Arc::new(Shared {
            freeze: Mutex::new(Some(freeze)),
            wake: Condvar::new(),
            expired: false.into(),
            watchdog_held: Mutex::new(None),
            watchdog_lost: Mutex::new(None),
        });
        let watched = Arc::clone(&shared);
        let deadline = began + budget.mul_f64(0.9);
        let watchdog = std::thread::Builder::new()
            .name("powdb-freeze-watchdog".into())
            .spawn(move || watch(&watched, began, deadline))
            .map_err(|e| CoreError::new("EIO", format!("cannot start the freeze watchdog: {e}")))?;
        Ok(HeldFreeze { shared, watchdog: Some(watchdog), began, began_wall, budget })
    }

    /// The error to stop with, if the watchdog has ended the freeze or the
    /// operation was aborted; asked between chunks of work under the freeze.
    pub fn stop(&self) -> Option<CoreError> {
        if self.shared.expired.load(Ordering::Relaxed) {
            return Some(self.over_budget());
        }
        crate::core::cancel::check().err()
    }

    fn over_budget(&self) -> CoreError {
        CoreError::new(
            "ERR_FREEZE_BUDGET",
            format!(
                "the work under the write freeze did not end within its budget of {} ms, so the freeze was \
                 ended to let writers through and the attempt given up",
                self.budget.as_millis()
            ),
        )
    }

    /// Ends the freeze with `commit`: how long it held (`begin` answered to
    /// `commit` answered), and how long the writers waited in any case.
    /// `ERR_FREEZE_BUDGET` if the watchdog ended it first; `ERR_FREEZE_LOST`
    /// if the server had (before our commit, or before the watchdog's).
    pub fn commit(mut self) -> (CoreResult<Duration>, Duration) {
        match self.take() {
            Some(freeze) => {
                let committed = freeze.commit();
                let held = *committed.as_ref().unwrap_or(&self.began.elapsed());
                (committed, held)
            }
            None => self.ended_by_watchdog(),
        }
    }

    /// Test only (`StageTestHooks::end_with_rollback`): ends the freeze with
    /// `rollback`, which the stage never does (the server checkpoints and
    /// gives the transaction's LSNs out again), to show what that breaks.
    pub fn rollback_for_test(mut self) -> (CoreResult<Duration>, Duration) {
        match self.take() {
            Some(freeze) => {
                let ended = freeze.rollback_for_test();
                let held = *ended.as_ref().unwrap_or(&self.began.elapsed());
                (ended, held)
            }
            None => self.ended_by_watchdog(),
        }
    }

    fn ended_by_watchdog(&self) -> (CoreResult<Duration>, Duration) {
        let held = self.shared.watchdog_held.lock().unwrap_or_else(|p| p.into_inner()).unwrap_or_default();
        let lost = self.shared.watchdog_lost.lock().unwrap_or_else(|p| p.into_inner()).take();
        (Err(lost.unwrap_or_else(|| self.over_budget())), held)
    }

    /// Takes the freeze from the watchdog (None if it already committed it)
    /// and waits for the watchdog to end.
    fn take(&mut self) -> Option<Freeze> {
        let freeze = self.shared.freeze.lock().unwrap_or_else(|p| p.into_inner()).take();
        self.shared.wake.notify_all();
        if let Some(watchdog) = self.watchdog.take() {
            let _ = watchdog.join();
        }
        freeze
    }

    /// When `begin` was answered, in milliseconds since the Unix epoch.
    pub fn began_unix_ms(&self) -> f64 {
        self.began_wall.duration_since(SystemTime::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    }

    /// How long the freeze has held so far.
    pub fn held(&self) -> Duration {
        self.began.elapsed()
    }
}

/// A freeze given up on an error path is committed, not dropped: dropping
/// would make the server roll back, which checkpoints and reuses our LSN.
impl Drop for HeldFreeze {
    fn drop(&mut self) {
        if let Some(freeze) = self.take() {
            let _ = freeze.commit();
        }
    }
}

fn watch(shared: &Shared, began: Instant, deadline: Instant) {
    let mut slot = shared.freeze.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        if slot.is_none() {
            return;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        slot = shared.wake.wait_timeout(slot, left).unwrap_or_else(|p| p.into_inner()).0;
    }
    let freeze = slot.take();
    shared.expired.store(true, Ordering::Relaxed);
    drop(slot);
    if let Some(freeze) = freeze {
        let (held, lost) = match freeze.commit() {
            Ok(held) => (held, None),
            Err(e) => (began.elapsed(), Some(e)),
        };
        *shared.watchdog_held.lock().unwrap_or_else(|p| p.into_inner()) = Some(held);
        *shared.watchdog_lost.lock().unwrap_or_else(|p| p.into_inner()) = lost;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::online::{wire, Login};
    use std::io::Write;
    use std::net::TcpListener;

    fn error_frame(message: &str) -> Vec<u8> {
        let mut p = (message.len() as u32).to_le_bytes().to_vec();
        p.extend_from_slice(message.as_bytes());
        p.push(1);
        wire::frame(wire::MSG_ERROR, &p)
    }

    /// A server that accepts `begin` and answers the `commit` that follows
    /// as powdb-server does once its lifetime reaper rolled the transaction
    /// back.
    fn reaping_server() -> (u16, std::thread::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            wire::read_frame(&mut s, wire::MAX_PAYLOAD).unwrap();
            let mut ok = 6u32.to_le_bytes().to_vec();
            ok.extend_from_slice(b"0.29.0");
            s.write_all(&wire::frame(wire::MSG_CONNECT_OK, &ok)).unwrap();
            wire::read_frame(&mut s, wire::MAX_PAYLOAD).unwrap(); // begin
            s.write_all(&wire::frame(wire::MSG_RESULT_OK, &0u64.to_le_bytes())).unwrap();
            wire::read_frame(&mut s, wire::MAX_PAYLOAD).unwrap(); // commit
            let reaped = "transaction exceeded the maximum lifetime of 1500ms and was rolled back";
            s.write_all(&error_frame(reaped)).unwrap();
        });
        (port, server)
    }

    // The process was stopped in its freeze past the server's lifetime: on
    // resuming, the watchdog commits first and the server says it had rolled
    // the freeze back. That is a lost freeze, not one the watchdog ended.
    #[test]
    fn a_freeze_the_server_reaped_is_lost_even_when_the_watchdog_commits_it() {
        let (port, server) = reaping_server();
        let conn = Connection::connect(&Login::new("127.0.0.1", port, "u", "p")).unwrap();
        let held = HeldFreeze::begin(conn, Duration::from_millis(50), Duration::from_secs(5)).unwrap();
        std::thread::sleep(Duration::from_millis(300)); // the watchdog commits at 45 ms
        assert_eq!(held.stop().map(|e| e.code), Some("ERR_FREEZE_BUDGET".to_string()));
        let (ended, _) = held.commit();
        let e = ended.unwrap_err();
        assert_eq!(e.code, "ERR_FREEZE_LOST", "{e}");
        assert!(e.message.contains("maximum lifetime"), "{e}");
        server.join().unwrap();
    }
}
