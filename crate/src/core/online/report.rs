//! The shapes of a stage (`stage.rs`): how it may freeze, and what it did.
use std::time::Duration;

/// How a stage may freeze.
#[derive(Clone, Debug)]
pub struct StageOptions {
    /// The longest a freeze may hold writers (well under the server's 5 s
    /// `POWDB_TX_WAIT_TIMEOUT_MS`, after which it fails them).
    pub budget: Duration,
    /// Attempts with a freeze of milliseconds before the last resort.
    pub max_attempts: u32,
    /// When a checkpoint broke a window (one `begin` waited behind, say) and
    /// the WAL holds no DDL, the heaps changed since their copy are read
    /// again under that same freeze
    /// if the passes' read rate says that takes at most this long; else the
    /// freeze ends and another attempt runs.
    pub refresh_within: Duration,
    /// How long `begin`, and a new connection's handshake, may wait for the
    /// server's answer (a server in a checkpoint answers nothing until it
    /// ends; see `Connection::freeze_within`).
    pub begin_wait: Duration,
    #[doc(hidden)]
    pub test: StageTestHooks,
}

impl StageOptions {
    pub const DEFAULT_REFRESH_WITHIN: Duration = Duration::from_millis(25);
    pub const DEFAULT_BEGIN_WAIT: Duration = Duration::from_secs(300);
}

impl Default for StageOptions {
    fn default() -> Self {
        StageOptions {
            budget: Duration::from_secs(2),
            max_attempts: 5,
            refresh_within: Self::DEFAULT_REFRESH_WITHIN,
            begin_wait: Self::DEFAULT_BEGIN_WAIT,
            test: StageTestHooks::default(),
        }
    }
}

/// For tests only: break the stage on purpose, to show the checks matter.
#[doc(hidden)]
#[derive(Clone, Debug, Default)]
pub struct StageTestHooks {
    /// Accept the copy whatever happened during the pass.
    pub skip_window_check: bool,
    /// Statements run on a connection of their own between the first pass
    /// and the first freeze (e.g. an insert, then `begin` + `rollback`,
    /// which checkpoints).
    pub before_first_freeze: Vec<String>,
    /// Statements run on a connection of their own after the first
    /// attempt's WAL pre-read, just before its `begin` (a checkpoint there
    /// is seen only under the freeze).
    pub after_first_preread: Vec<String>,
    /// How long the first freeze sleeps before its work.
    pub hold_first_freeze: Duration,
    /// End every freeze with `rollback` instead of `commit` (the server then
    /// checkpoints and reuses the freeze's Begin LSN).
    pub end_with_rollback: bool,
}

/// What a stage did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StageReport {
    /// The freeze whose copy was kept: from `begin` answered to `commit` answered.
    pub freeze_ms: f64,
    /// Of `freeze_ms`, the time this side worked under the freeze (from
    /// `begin` answered to `commit` sent); the rest is the commit's round
    /// trip, mostly the server's fsync of its Commit record.
    pub freeze_work_ms: f64,
    /// When the kept freeze began (`begin` answered), in ms since the Unix
    /// epoch: the copy holds what was committed before, nothing after.
    pub frozen_at_unix_ms: f64,
    /// The longest of all freezes, failed attempts' included.
    pub longest_freeze_ms: f64,
    pub attempts: u32,
    /// Why each attempt before the last was given up.
    pub retries: Vec<String>,
    /// Whether the kept attempt refreshed heaps under the freeze (its window
    /// broke and they fitted `refresh_within`, or the last resort).
    pub refreshed_under_freeze: bool,
    pub heap_pages: u64,
    /// Staged pages written again because they had changed since their copy.
    pub pages_recopied: u64,
    pub torn_rereads: u64,
    pub wal_bytes: u64,
    /// The LSN the copy reaches: the record before our Begin.
    pub freeze_lsn: u64,
    /// Our transaction's Begin (its Commit follows it in the server's log).
    pub begin_lsn: u64,
}
