//! Staging a consistent copy of a data directory that a live powdb-server
//! serves, with a write freeze of milliseconds whatever the database's size
//! (powdb-online.md §7.1, with the heap re-read moved out of the freeze).
//!
//! An attempt: note the WAL's prefix, `catalog.bin`'s hash and the heap
//! files (`Mark`); copy the heaps that may have changed, page by page with
//! the CRC rule, without a freeze (`heaps.rs`); freeze (`begin`); read
//! `wal.log` and the small files; `commit`. The copy is the heaps as copied
//! plus the WAL as read under the freeze: a crash image that the engine's
//! normal open recovers (replay is commit-bounded and skips a record when the
//! page already holds it; indexes are rebuilt, so none is copied). It holds
//! when no checkpoint ran during the pass: one would have flushed pages the
//! pass had already copied and taken their records out of the WAL. The WAL's
//! prefix tells (`walstate.rs`); a changed `catalog.bin` (DDL, replayed by
//! name) or heap set fails the attempt too. A failed attempt commits at
//! once and runs another pass, which re-reads only what changed. After
//! `max_attempts`, a last one refreshes the changed heaps under the freeze,
//! when the passes' read rate says that fits half the budget; a watchdog
//! (`held.rs`) ends any freeze before the budget runs out.
//!
//! Under the freeze nothing is proportional to the heaps: it reads
//! `wal.log` whole (compared with the prefix, the fastest exact check: about
//! 0.5 ms per MiB here), and the WAL is bounded by the server's checkpoint
//! threshold (`POWDB_WAL_CHECKPOINT_BYTES`, 64 MiB by default).
//!
//! Nothing is written into the data directory and no lock of it is taken.
//! `.powdb-sync/` is not copied (a sync-enabled database is recovered as a
//! plain one; the backup records its identity), nor are `LOCK`, `readers/`, temporary files and
//! index files (a stale index meeting a replay is harmful, §2.3).
//!
//! Fault points (`POWDB_BACKUP_CRASH_AT`, crashpoint.rs): `online-copied`
//! after an attempt's pass, before its freeze; `online-frozen` once its
//! freeze is held, before anything is read under it.
use super::capture::{Capture, Run, Step, CHECKPOINTED};
use super::heaps::StagedHeaps;
use super::held::HeldFreeze;
use super::{source, walstate, Login};
use crate::core::crashpoint;
use crate::core::error::{CoreError, CoreResult};
use std::path::Path;
use std::time::Duration;

pub use super::report::{StageOptions, StageReport, StageTestHooks};

/// Stages a consistent copy of `data_dir`, which the server at `login`
/// serves, into `staging` (an empty directory, not inside `data_dir`): the
/// heaps, `wal.log` and the small files, for the engine's normal open to
/// recover. On failure `staging` holds a partial copy, to be removed.
pub fn stage_live(data_dir: &Path, staging: &Path, login: &Login, options: &StageOptions) -> CoreResult<StageReport> {
    source::preflight(data_dir, staging)?;
    let mut run = Run {
        data_dir,
        staging,
        login,
        options,
        heaps: StagedHeaps::new(data_dir, staging),
        report: StageReport::default(),
        read: (0, Duration::ZERO),
        spare: None,
    };
    while run.report.attempts < options.max_attempts.max(1) {
        run.report.attempts += 1;
        match run.attempt()? {
            Ok(done) => return run.finish(done),
            Err(reason) => run.report.retries.push(reason),
        }
    }
    run.report.attempts += 1;
    let done = run.last_resort()?;
    run.finish(done)
}

impl Run<'_> {
    /// One attempt: pass, freeze, capture, commit. `Err(reason)` to retry.
    fn attempt(&mut self) -> Step<Capture> {
        self.connect_spare()?;
        let mark = match self.mark()? {
            Ok(mark) => mark,
            Err(reason) => return Ok(Err(reason)),
        };
        self.pass(None)?;
        crashpoint::hit("online-copied");
        let first = self.report.attempts == 1;
        if first && !self.options.test.before_first_freeze.is_empty() {
            let mut conn = self.connect()?;
            for statement in &self.options.test.before_first_freeze {
                conn.query(statement)?;
            }
        }
        let wal = match self.preread(Some(&mark))? {
            Ok(wal) => wal,
            Err(reason) => return Ok(Err(reason)),
        };
        if first && !self.options.test.after_first_preread.is_empty() {
            let mut conn = self.connect()?;
            for statement in &self.options.test.after_first_preread {
                conn.query(statement)?;
            }
        }
        let held = match self.freeze()? {
            Ok(held) => held,
            Err(reason) => return Ok(Err(reason)),
        };
        crashpoint::hit("online-frozen");
        if first {
            std::thread::sleep(self.options.test.hold_first_freeze);
        }
        let captured = match self.capture_keeping(&held, Some(&mark), wal) {
            Ok(Err((reason, wal))) => self.refresh_if_small(&held, reason, wal),
            other => other.map(|c| c.map_err(|(reason, _)| reason)),
        };
        self.end(held, captured)
    }

    /// A window broken under the freeze by a checkpoint, typically one the
    /// `begin` waited behind (every explicit rollback is one, and takes
    /// seconds on a large database). When the heaps changed since their copy are
    /// few enough to read again within `refresh_within` (at the passes' read
    /// rate), they are, under this freeze, with the WAL already read under
    /// it: the copy is then what the server holds now, as in the last
    /// resort. Otherwise `Err(reason)`, and another attempt runs.
    fn refresh_if_small(&mut self, held: &HeldFreeze, reason: String, wal: Vec<u8>) -> Step<Capture> {
        // Only a checkpoint's break, with no DDL in the WAL: DDL replays by
        // name, so a copy across it is retried whole, as before.
        let ddl = walstate::records(&wal, walstate::WAL_HEADER_LEN).ddl.is_some();
        if reason != CHECKPOINTED || ddl || self.options.test.skip_window_check || held.stop().is_some() {
            return Ok(Err(reason));
        }
        let estimate = self.refresh_estimate()?;
        if estimate > self.options.refresh_within.min(self.options.budget / 2) {
            return Ok(Err(reason));
        }
        self.pass(Some(held))?;
        match self.check_capture(held, None, wal)? {
            Ok(capture) => {
                self.report.refreshed_under_freeze = true;
                Ok(Ok(capture))
            }
            Err((again, _)) => Ok(Err(format!("{reason}; refreshing the heaps under the freeze failed too ({again})"))),
        }
    }

    /// The bytes of the heaps changed since their copy, and how long reading
    /// them again should take at the passes' read rate so far.
    fn refresh_estimate(&self) -> CoreResult<Duration> {
        let bytes: u64 = self.heaps.changed()?.iter().map(|(_, len)| len).sum();
        let rate = self.read.0 as f64 / self.read.1.as_secs_f64().max(1e-3);
        Ok(Duration::from_secs_f64(bytes as f64 / rate.max(1.0)))
    }

    /// The last resort, after `max_attempts` windows broke (checkpoints kept
    /// coming): the heaps that changed since their copy are read again under
    /// the freeze, when the passes' read rate says that fits half the budget.
    fn last_resort(&mut self) -> CoreResult<Capture> {
        let bytes: u64 = self.heaps.changed()?.iter().map(|(_, len)| len).sum();
        let estimate = self.refresh_estimate()?;
        if estimate > self.options.budget / 2 {
            return Err(self.gave_up(&format!(
                "re-reading the {} MiB of heaps that changed, under the freeze, would take about {} ms, more \
                 than half the freeze budget of {} ms",
                bytes >> 20,
                estimate.as_millis(),
                self.options.budget.as_millis()
            )));
        }
        let wal = self.preread(None)?.unwrap_or_default();
        let held = match self.freeze()? {
            Ok(held) => held,
            Err(reason) => return Err(self.gave_up(&reason)),
        };
        // A freeze held, as in an attempt: when every attempt gave up before its
        // freeze, this is the first the fault point can meet.
        crashpoint::hit("online-frozen");
        self.report.refreshed_under_freeze = true;
        let captured = match self.pass(Some(&held)) {
            Ok(()) => self.capture(&held, None, wal),
            Err(e) => Err(e),
        };
        match self.end(held, captured)? {
            Ok(done) => Ok(done),
            Err(reason) => Err(self.gave_up(&format!("refreshing the heaps under the freeze failed too ({reason})"))),
        }
    }

    fn gave_up(&self, why: &str) -> CoreError {
        CoreError::new(
            "ERR_FREEZE_BUDGET",
            format!(
                "no consistent copy of {} in {} attempts, each given up ({}); {why}. Run again when the \
                 database is quieter (explicit rollbacks checkpoint), or allow a longer freeze budget",
                self.data_dir.display(),
                self.report.attempts,
                self.report.retries.join("; ")
            ),
        )
    }
}
