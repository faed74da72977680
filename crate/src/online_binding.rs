#![cfg_attr(test, allow(dead_code))] // napi-derive compiles registration out of test builds
//! A live powdb-server, off the JS thread: the LSN probe, the write freeze
//! and the stage of a consistent copy (`core::online`). A freeze lives here
//! between its `begin` and its `commit`, by id, as repositories do in
//! `repo_binding.rs`.
use crate::binding::{job, Job};
use crate::core::online::{probe, stage_live, Connection, Freeze, Login, Probe, StageOptions, StageReport};
use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

/// Where and as whom to connect.
#[napi(object)]
pub struct ServerLogin {
    pub host: String,
    pub port: u32,
    /// The login name; absent for a server with one shared password.
    pub user: Option<String>,
    pub password: Option<String>,
    /// The database name sent at connect (a server serves one; absent is its default).
    pub database: Option<String>,
    /// Bounds connecting and each request (default: 5 s to connect, 10 s a request); a stage's
    /// `begin` waits at least 300 s (a server in a checkpoint answers nothing until it ends).
    pub timeout_ms: Option<u32>,
}

impl ServerLogin {
    fn into_login(self) -> Result<Login> {
        let port = u16::try_from(self.port).ok().filter(|&p| p != 0).ok_or_else(|| {
            Error::new(Status::InvalidArg, format!("ERR_INVALID_ARG: port {} is not 1-65535", self.port))
        })?;
        let mut login = Login::new(self.host, port, self.user.unwrap_or_default(), self.password.unwrap_or_default());
        login.database = self.database.unwrap_or_default();
        if let Some(ms) = self.timeout_ms {
            if ms == 0 {
                return Err(Error::new(Status::InvalidArg, "ERR_INVALID_ARG: timeoutMs must be positive".to_string()));
            }
            login.connect_timeout = Duration::from_millis(ms.into());
            login.io_timeout = Duration::from_millis(ms.into());
        }
        Ok(login)
    }
}

/// The server's status for the probe's replica id (`WireSyncStatus`).
#[napi(object, object_from_js = false)]
pub struct ServerSyncStatus {
    pub replica_id: String,
    pub active: bool,
    pub last_applied_lsn: Option<u64>,
    pub servable_lsn: Option<u64>,
    pub unarchived_lsn: Option<u64>,
    pub lag_lsn: Option<u64>,
    pub lag_bytes: Option<u64>,
    pub lag_ms: Option<u64>,
    pub stale: bool,
    /// none, pull, awaitArchive or rebootstrap.
    pub repair_action: String,
    pub last_sync_error: Option<String>,
}

#[napi(object, object_from_js = false)]
pub struct ServerProbe {
    /// The highest LSN the server has written (`catalog.max_lsn()`).
    pub remote_lsn: u64,
    /// Its crate version, e.g. 0.29.0.
    pub server_version: String,
    /// The negotiated wire protocol (1 for a server without a hello).
    pub protocol: u32,
    /// The wire features both sides agreed on.
    pub features: Vec<String>,
    pub sync: ServerSyncStatus,
}

impl From<Probe> for ServerProbe {
    fn from(p: Probe) -> Self {
        let s = p.status;
        ServerProbe {
            remote_lsn: s.remote_lsn,
            server_version: p.server_version,
            protocol: p.hello.as_ref().map_or(1, |h| h.protocol.into()),
            features: p.hello.map(|h| h.features).unwrap_or_default(),
            sync: ServerSyncStatus {
                replica_id: s.replica_id,
                active: s.active,
                last_applied_lsn: s.last_applied_lsn,
                servable_lsn: s.servable_lsn,
                unarchived_lsn: s.unarchived_lsn,
                lag_lsn: s.lag_lsn,
                lag_bytes: s.lag_bytes,
                lag_ms: s.lag_ms,
                stale: s.stale,
                repair_action: ["none", "pull", "awaitArchive", "rebootstrap"][usize::from(s.repair_action.min(3))]
                    .to_string(),
                last_sync_error: s.last_sync_error,
            },
        }
    }
}

/// Connects, authenticates and reads the server's LSN (a SyncStatus frame).
#[napi(ts_return_type = "Promise<ServerProbe>")]
pub fn server_probe(login: ServerLogin) -> Result<AsyncTask<Job<Probe, ServerProbe>>> {
    let login = login.into_login()?;
    Ok(job(None, move || probe(&login), ServerProbe::from))
}

static FREEZES: LazyLock<Mutex<HashMap<u32, Freeze>>> = LazyLock::new(Default::default);
static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);

fn freezes() -> std::sync::MutexGuard<'static, HashMap<u32, Freeze>> {
    FREEZES.lock().unwrap_or_else(|p| p.into_inner())
}

fn register(freeze: Freeze) -> u32 {
    let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    freezes().insert(id, freeze);
    id
}

/// Connects and sends `begin`; resolves to the freeze's id once the server
/// holds its write gate for it.
#[napi(ts_return_type = "Promise<number>")]
pub fn server_freeze_begin(login: ServerLogin) -> Result<AsyncTask<Job<Freeze, u32>>> {
    let login = login.into_login()?;
    Ok(job(None, move || Connection::connect(&login)?.freeze(), register))
}

#[napi(object, object_from_js = false)]
pub struct FreezeEnded {
    /// From `begin` answered to `commit` answered.
    pub held_ms: f64,
}

/// Ends freeze `id` with `commit` (`ERR_FREEZE_LOST` if the server rolled it back).
#[napi(ts_return_type = "Promise<FreezeEnded>")]
pub fn server_freeze_commit(id: u32) -> Result<AsyncTask<Job<Duration, FreezeEnded>>> {
    let freeze = freezes()
        .remove(&id)
        .ok_or_else(|| Error::new(Status::InvalidArg, format!("ERR_INVALID_ARG: freeze {id} has already ended")))?;
    Ok(job(None, move || freeze.commit(), |held| FreezeEnded { held_ms: held.as_secs_f64() * 1000.0 }))
}

/// Abandons freeze `id` without committing: closes its connection, and the
/// server rolls the transaction back. False if it had already ended.
#[napi]
pub fn server_freeze_drop(id: u32) -> bool {
    freezes().remove(&id).is_some()
}

/// How a stage may freeze; the `test*` options break it on purpose, for tests only.
#[napi(object)]
pub struct ServerStageOptions {
    /// The longest a freeze may hold writers (default 2000).
    pub budget_ms: Option<u32>,
    /// Attempts with a short freeze before the last resort, a refresh under the freeze (default 5).
    pub max_attempts: Option<u32>,
    /// Test only: keep the copy whatever happened during the pass (no window check).
    pub test_skip_window_check: Option<bool>,
    /// Test only: statements run on a connection of their own between the first pass and the first freeze.
    pub test_before_freeze: Option<Vec<String>>,
    /// Test only: statements run on a connection of their own after the first WAL pre-read, just before the first `begin`.
    pub test_after_preread: Option<Vec<String>>,
    /// Test only: how long the first freeze sleeps before its work.
    pub test_hold_freeze_ms: Option<u32>,
    /// Test only: end the freeze with `rollback` instead of `commit` (the server reuses its Begin LSN).
    pub test_end_with_rollback: Option<bool>,
}

impl ServerStageOptions {
    fn into_options(self) -> StageOptions {
        let mut options = StageOptions::default();
        if let Some(ms) = self.budget_ms {
            options.budget = Duration::from_millis(ms.into());
        }
        if let Some(n) = self.max_attempts {
            options.max_attempts = n;
        }
        options.test.skip_window_check = self.test_skip_window_check.unwrap_or(false);
        options.test.before_first_freeze = self.test_before_freeze.unwrap_or_default();
        options.test.after_first_preread = self.test_after_preread.unwrap_or_default();
        options.test.hold_first_freeze = Duration::from_millis(self.test_hold_freeze_ms.unwrap_or(0).into());
        options.test.end_with_rollback = self.test_end_with_rollback.unwrap_or(false);
        options
    }
}

/// What a stage did (`core::online::StageReport`).
#[napi(object, object_from_js = false)]
pub struct ServerStageReport {
    /// The freeze whose copy was kept: from `begin` answered to `commit` answered.
    pub freeze_ms: f64,
    /// Of `freezeMs`, the time spent working under the freeze (to `commit` sent); the rest is the commit's round trip.
    pub freeze_work_ms: f64,
    /// When the kept freeze began, in ms since the Unix epoch: the copy holds what was committed before it.
    pub frozen_at_unix_ms: f64,
    /// The longest of all its freezes, given-up attempts' included.
    pub longest_freeze_ms: f64,
    pub attempts: u32,
    /// Why each attempt before the last was given up.
    pub retries: Vec<String>,
    /// Whether the kept attempt refreshed heaps under the freeze (its window broke and they were small, or the last resort).
    pub refreshed_under_freeze: bool,
    pub heap_pages: u64,
    /// Staged pages written again because they had changed since their copy.
    pub pages_recopied: u64,
    pub torn_rereads: u64,
    pub wal_bytes: u64,
    /// The LSN the copy reaches: the record before the freeze's Begin.
    pub freeze_lsn: u64,
    /// The freeze's Begin (its Commit follows in the server's log).
    pub begin_lsn: u64,
}

impl From<StageReport> for ServerStageReport {
    fn from(r: StageReport) -> Self {
        ServerStageReport {
            freeze_ms: r.freeze_ms,
            freeze_work_ms: r.freeze_work_ms,
            frozen_at_unix_ms: r.frozen_at_unix_ms,
            longest_freeze_ms: r.longest_freeze_ms,
            attempts: r.attempts,
            retries: r.retries,
            refreshed_under_freeze: r.refreshed_under_freeze,
            heap_pages: r.heap_pages,
            pages_recopied: r.pages_recopied,
            torn_rereads: r.torn_rereads,
            wal_bytes: r.wal_bytes,
            freeze_lsn: r.freeze_lsn,
            begin_lsn: r.begin_lsn,
        }
    }
}

/// Stages a consistent copy of `dataDir`, which the server at `login`
/// serves, into `staging` (an empty directory): the heaps, `wal.log` and the
/// small files, which the engine's normal open recovers.
#[napi(ts_return_type = "Promise<ServerStageReport>")]
pub fn server_stage(
    data_dir: String,
    staging: String,
    login: ServerLogin,
    options: Option<ServerStageOptions>,
) -> Result<AsyncTask<Job<StageReport, ServerStageReport>>> {
    let login = login.into_login()?;
    let options = options.map(ServerStageOptions::into_options).unwrap_or_default();
    if options.budget.is_zero() || options.max_attempts == 0 {
        return Err(Error::new(
            Status::InvalidArg,
            "ERR_INVALID_ARG: budgetMs and maxAttempts must be positive".to_string(),
        ));
    }
    Ok(job(
        None,
        move || stage_live(std::path::Path::new(&data_dir), std::path::Path::new(&staging), &login, &options),
        ServerStageReport::from,
    ))
}
