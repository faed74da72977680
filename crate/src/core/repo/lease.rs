//! The writer lock of a repository on object storage, where there is no
//! `flock`: a `LOCK` object created only if absent, naming its owner, host and
//! the end of its lease. The holder renews the lease while it works; a lock
//! whose lease has run out, or whose holder is a dead process of this
//! machine, belongs to a writer that died and is taken over.
use super::Repo;
use crate::core::error::{CoreError, CoreResult};
use crate::core::lock::is_alive;
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
    /// The kernel boot and PID namespace of `pid` (see `this_machine`);
    /// empty in leases of earlier releases, which then lapse by expiry only.
    #[serde(default)]
    pub machine: String,
    pub pid: u32,
    pub expires_unix_secs: u64,
}

impl Lease {
    fn is_live(&self, here: &str) -> bool {
        holder_is_live(&self.machine, self.pid, self.expires_unix_secs, here)
    }
}

pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// This boot of this kernel and this PID namespace: a PID means the same
/// process only where both match (a container on the same host does not).
/// Empty where they cannot be read: then no PID is ever checked.
pub fn this_machine() -> String {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let pid_ns = std::fs::read_link("/proc/self/ns/pid").map(|p| p.to_string_lossy().into_owned());
    match (boot.trim(), pid_ns) {
        ("", _) | (_, Err(_)) => String::new(),
        (boot, Ok(ns)) => format!("{boot}/{ns}"),
    }
}

/// Whether a lease (the writer lock's or a hold's) still counts: it has not
/// run out, and its process lives when that can be checked from `here`.
pub fn holder_is_live(machine: &str, pid: u32, expires_unix_secs: u64, here: &str) -> bool {
    let checkable = !here.is_empty() && machine == here;
    expires_unix_secs > now() && (!checkable || is_alive(pid))
}

pub fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_else(|_| "?".into())
}

impl Repo {
    fn read_lease(&self) -> CoreResult<Option<Lease>> {
        match self.storage.get(LOCK_KEY) {
            Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes).unwrap_or(Lease {
                owner: "unreadable".into(),
                host: "?".into(),
                machine: String::new(),
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
        let here = this_machine();
        let mine = Lease {
            owner: super::keys::new_name(),
            host: host(),
            machine: here.clone(),
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
            if held.is_live(&here) {
                return Err(self.locked_by(&held));
            }
            let why = match now().checked_sub(held.expires_unix_secs) {
                Some(ago) => format!("lease ended {ago} s ago"),
                None => "its process is gone".to_string(),
            };
            notice = Some(format!(
                "took over the lock of {} left by a writer that stopped (host {}, pid {}, {why})",
                self.location(),
                held.host,
                held.pid,
            ));
            // Racing takers of a stale lock may each delete what another just
            // wrote: `put_new` (or `confirm_created`) lets one through, and a
            // writer whose lock was replaced finds out at its next renewal
            // (backup and expire renew right before they publish).
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
            None => Err(CoreError::new("ERR_REPO_LOCKED", format!("the lock of {} vanished", self.location()))),
        }
    }

    /// Renews the lease; fails if another writer has taken the lock meanwhile.
    pub fn renew_lease(&self) -> CoreResult<()> {
        let mut guard = self.lease.lock().unwrap_or_else(|p| p.into_inner());
        let Some(mine) = guard.as_mut() else {
            return Err(CoreError::new("ERR_INVALID_ARG", "the repository lock is not held"));
        };
        match self.read_lease()? {
            Some(held) if held.owner == mine.owner => {}
            Some(other) => return Err(self.locked_by(&other)),
            None => return Err(CoreError::new("ERR_REPO_LOCKED", format!("the lock of {} vanished", self.location()))),
        }
        mine.expires_unix_secs = now() + LEASE_SECS;
        self.storage.put_replace(LOCK_KEY, &serde_json::to_vec(&*mine).expect("a lease serializes"))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::repo::tests::scratch_repo as new_repo;
    use crate::core::test_support::dead_pid;

    fn plant(repo: &Repo, text: &str) {
        repo.storage.delete(LOCK_KEY).unwrap();
        repo.storage.put_new(LOCK_KEY, text.as_bytes()).unwrap();
    }

    #[test]
    fn a_running_lease_of_a_dead_process_here_is_taken_over_at_once() {
        let (_dir, repo) = new_repo();
        let until = now() + LEASE_SECS;
        let lease = |machine: &str, pid: u32| {
            let held = Lease {
                owner: "o".repeat(64),
                host: "h".into(),
                machine: machine.into(),
                pid,
                expires_unix_secs: until,
            };
            serde_json::to_string(&held).unwrap()
        };
        // A live holder here, a dead one on another machine, and a dead one in
        // a lease of an earlier release (no machine): each still holds.
        let mut live = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let earlier =
            format!(r#"{{"owner":"{}","host":"h","pid":{},"expires_unix_secs":{until}}}"#, "o".repeat(64), dead_pid());
        for text in [lease(&this_machine(), live.id()), lease("another-boot/pid:[1]", dead_pid()), earlier] {
            plant(&repo, &text);
            let err = repo.acquire_lease().unwrap_err();
            assert_eq!(err.code, "ERR_REPO_LOCKED", "{text}");
            assert!(err.message.contains("(host h, pid "), "{}", err.message);
        }
        live.kill().unwrap();
        live.wait().unwrap();

        plant(&repo, &lease(&this_machine(), dead_pid()));
        let notice = repo.acquire_lease().unwrap().expect("a takeover is noticed");
        assert!(notice.contains("its process is gone"), "{notice}");
        let held: Lease = serde_json::from_slice(&repo.storage.get(LOCK_KEY).unwrap()).unwrap();
        assert_eq!((held.pid, held.machine), (std::process::id(), this_machine()));
        repo.release_lease().unwrap();
    }
}
