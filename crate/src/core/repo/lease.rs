//! The writer lock of a repository on object storage, where there is no
//! `flock`: a `LOCK` object created only if absent, naming its owner, host and
//! the end of its lease. The holder renews the lease while it works; a lock
//! whose lease has run out belongs to a writer that died and is taken over.
use super::Repo;
use crate::core::error::{CoreError, CoreResult};
use serde::{Deserialize, Serialize};

pub const LOCK_KEY: &str = "LOCK";
/// How long a lease lasts; the holder renews it every `LEASE_SECS / 5`.
pub const LEASE_SECS: u64 = 300;
/// Longer than any racing writer's gap between finding no lock and writing
/// one (a HEAD and a PUT: milliseconds).
const RACE_SETTLE: std::time::Duration = std::time::Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// Random: tells this holder from any other.
    pub owner: String,
    pub host: String,
    pub pid: u32,
    pub expires_unix_secs: u64,
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "?".into())
}

impl Repo {
    fn read_lease(&self) -> CoreResult<Option<Lease>> {
        match self.storage.get(LOCK_KEY) {
            Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes).unwrap_or(Lease {
                owner: "unreadable".into(),
                host: "?".into(),
                pid: 0,
                expires_unix_secs: 0,
            }))),
            Err(e) if e.code == "ERR_MISSING_FILE" => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn locked_by(&self, lease: &Lease) -> CoreError {
        CoreError::new(
            "ERR_REPO_LOCKED",
            format!(
                "repository {} is in use by another backup or expire (host {}, pid {}, lease until {}); try again when it ends",
                self.location(),
                lease.host,
                lease.pid,
                lease.expires_unix_secs
            ),
        )
    }

    /// Takes the writer lock; returns a notice when it took over a stale one.
    pub fn acquire_lease(&self) -> CoreResult<Option<String>> {
        let mine = Lease {
            owner: super::writer::new_name(),
            host: host(),
            pid: std::process::id(),
            expires_unix_secs: now() + LEASE_SECS,
        };
        let text = serde_json::to_vec(&mine).expect("a lease serializes");
        let mut notice = None;
        for _ in 0..2 {
            match self.storage.put_new(LOCK_KEY, &text) {
                Ok(()) => {
                    self.confirm_created(&mine)?;
                    *self.lease.lock().unwrap_or_else(|p| p.into_inner()) = Some(mine);
                    return Ok(notice);
                }
                Err(e) if e.code != "EEXIST" => return Err(e),
                Err(_) => {}
            }
            let Some(held) = self.read_lease()? else {
                continue;
            };
            if held.expires_unix_secs > now() {
                return Err(self.locked_by(&held));
            }
            notice = Some(format!(
                "took over the lock of {} left by a writer that stopped (host {}, pid {}, lease ended {} s ago)",
                self.location(),
                held.host,
                held.pid,
                now().saturating_sub(held.expires_unix_secs)
            ));
            self.storage.delete(LOCK_KEY)?;
        }
        let held = self.read_lease()?.unwrap_or(mine);
        Err(self.locked_by(&held))
    }

    /// Without conditional writes two writers may both find no lock and both
    /// write one: the last write wins. Each waits out the race, then reads the
    /// lock back; only the writer it names goes on.
    fn confirm_created(&self, mine: &Lease) -> CoreResult<()> {
        if self.storage.conditional_writes()? {
            return Ok(());
        }
        std::thread::sleep(RACE_SETTLE);
        match self.read_lease()? {
            Some(held) if held.owner == mine.owner => Ok(()),
            Some(other) => Err(self.locked_by(&other)),
            None => Err(CoreError::new(
                "ERR_REPO_LOCKED",
                format!("the lock of {} vanished", self.location()),
            )),
        }
    }

    /// Renews the lease; fails if another writer has taken the lock meanwhile.
    pub fn renew_lease(&self) -> CoreResult<()> {
        let mut guard = self.lease.lock().unwrap_or_else(|p| p.into_inner());
        let Some(mine) = guard.as_mut() else {
            return Err(CoreError::new(
                "ERR_INVALID_ARG",
                "the repository lock is not held",
            ));
        };
        match self.read_lease()? {
            Some(held) if held.owner == mine.owner => {}
            Some(other) => return Err(self.locked_by(&other)),
            None => {
                return Err(CoreError::new(
                    "ERR_REPO_LOCKED",
                    format!("the lock of {} vanished", self.location()),
                ))
            }
        }
        mine.expires_unix_secs = now() + LEASE_SECS;
        self.storage.put_replace(
            LOCK_KEY,
            &serde_json::to_vec(&*mine).expect("a lease serializes"),
        )
    }

    /// Gives the lock up (only if it is still ours).
    pub fn release_lease(&self) -> CoreResult<()> {
        let Some(mine) = self.lease.lock().unwrap_or_else(|p| p.into_inner()).take() else {
            return Ok(());
        };
        match self.read_lease()? {
            Some(held) if held.owner == mine.owner => self.storage.delete(LOCK_KEY),
            _ => Ok(()),
        }
    }
}
