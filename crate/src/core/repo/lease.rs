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

/// A lease that cannot be parsed: stale, so that it never blocks for good.
fn unreadable() -> Lease {
    Lease { owner: "unreadable".into(), host: "?".into(), machine: String::new(), pid: 0, expires_unix_secs: 0 }
}

impl Repo {
    fn read_lease(&self) -> CoreResult<Option<Lease>> {
        Ok(self.read_lease_tagged()?.map(|(lease, _)| lease))
    }

    /// The lease and its version tag, for a takeover that replaces only that version.
    fn read_lease_tagged(&self) -> CoreResult<Option<(Lease, String)>> {
        match self.storage.get_tagged(LOCK_KEY) {
            Ok((bytes, tag)) => Ok(Some((serde_json::from_slice(&bytes).unwrap_or_else(|_| unreadable()), tag))),
            Err(e) if e.code == "ERR_MISSING_FILE" => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn locked_by(&self, lease: &Lease) -> CoreError {
        CoreError::new(
            "ERR_REPO_LOCKED",
            format!(
                "repository {} is in use by another expire, repair or key removal (host {}, pid {}, lease until {}); try again when it ends, or wait for it with --lock-wait <duration>",
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
        // Twice: a lock released between our create and our read is created anew.
        for _ in 0..2 {
            match self.storage.put_new(LOCK_KEY, &text) {
                Ok(()) => {
                    self.confirm_created(&mine)?;
                    *self.lease.lock().unwrap_or_else(|p| p.into_inner()) = Some(mine);
                    return Ok(None);
                }
                Err(e) if e.code != "EEXIST" => return Err(e),
                Err(_) => {}
            }
            let Some((held, tag)) = self.read_lease_tagged()? else {
                continue;
            };
            if held.is_live(&here) {
                return Err(self.locked_by(&held));
            }
            let why = match now().checked_sub(held.expires_unix_secs) {
                Some(ago) => format!("lease ended {ago} s ago"),
                None => "its process is gone".to_string(),
            };
            self.take_over(&held, &tag, &mine, &text)?;
            *self.lease.lock().unwrap_or_else(|p| p.into_inner()) = Some(mine);
            return Ok(Some(format!(
                "took over the lock of {} left by a writer that stopped (host {}, pid {}, {why})",
                self.location(),
                held.host,
                held.pid,
            )));
        }
        let held = self.read_lease()?.unwrap_or(mine);
        Err(self.locked_by(&held))
    }

    /// Replaces the stale lease `stale` (version `tag`) by ours. Where the
    /// store enforces `If-Match`, only one of several takers that found the
    /// same stale lease gets through; the others find the winner's lease.
    /// Elsewhere the stale lease is read again right before it is removed and
    /// ours is created, then the race is waited out and the lock read back
    /// (`confirm_created`): two takers both go on only if one of them stalls
    /// longer than RACE_SETTLE between that read and its removal, and then
    /// the one replaced finds out at its next renewal (expire, repair and key
    /// removal renew right before they remove anything).
    fn take_over(&self, stale: &Lease, tag: &str, mine: &Lease, text: &[u8]) -> CoreResult<()> {
        let lost = |repo: &Repo| Err(repo.locked_by(&repo.read_lease().ok().flatten().unwrap_or_else(unreadable)));
        if self.storage.conditional_updates()? {
            crate::core::crashpoint::hit("lease-takeover");
            return match self.storage.replace_if(LOCK_KEY, text, tag) {
                Err(e) if e.code == "ECHANGED" => lost(self),
                other => other,
            };
        }
        match self.read_lease()? {
            Some(held) if held.owner != stale.owner => return Err(self.locked_by(&held)),
            _ => {}
        }
        crate::core::crashpoint::hit("lease-takeover");
        self.storage.delete(LOCK_KEY)?;
        match self.storage.put_new(LOCK_KEY, text) {
            Err(e) if e.code == "EEXIST" => return lost(self),
            other => other?,
        }
        self.confirm_created(mine)
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
        let tag = match self.read_lease_tagged()? {
            Some((held, tag)) if held.owner == mine.owner => tag,
            Some((other, _)) => return Err(self.locked_by(&other)),
            None => return Err(CoreError::new("ERR_REPO_LOCKED", format!("the lock of {} vanished", self.location()))),
        };
        mine.expires_unix_secs = now() + LEASE_SECS;
        // Only the version just read: a takeover in between is not overwritten.
        match self.storage.replace_if(LOCK_KEY, &serde_json::to_vec(&*mine).expect("a lease serializes"), &tag) {
            Err(e) if e.code == "ECHANGED" => {
                Err(self.locked_by(&self.read_lease().ok().flatten().unwrap_or_else(unreadable)))
            }
            other => other,
        }
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

    /// A local directory that passes for a store ignoring `If-Match`.
    struct Unconditional(crate::core::repo::storage::LocalDir);

    impl crate::core::repo::storage::Storage for Unconditional {
        fn location(&self) -> String {
            self.0.location()
        }
        fn put_new(&self, key: &str, data: &[u8]) -> CoreResult<()> {
            self.0.put_new(key, data)
        }
        fn get(&self, key: &str) -> CoreResult<Vec<u8>> {
            self.0.get(key)
        }
        fn get_range(&self, key: &str, offset: u64, len: usize) -> CoreResult<Vec<u8>> {
            self.0.get_range(key, offset, len)
        }
        fn list(&self, prefix: &str) -> CoreResult<Vec<crate::core::repo::storage::ObjectInfo>> {
            self.0.list(prefix)
        }
        fn delete(&self, key: &str) -> CoreResult<()> {
            self.0.delete(key)
        }
        fn clean_partial(&self) -> CoreResult<usize> {
            self.0.clean_partial()
        }
        fn put_replace(&self, key: &str, data: &[u8]) -> CoreResult<()> {
            self.0.put_replace(key, data)
        }
        fn get_tagged(&self, key: &str) -> CoreResult<(Vec<u8>, String)> {
            self.0.get_tagged(key)
        }
        fn replace_if(&self, key: &str, data: &[u8], _tag: &str) -> CoreResult<()> {
            self.0.put_replace(key, data)
        }
        fn conditional_updates(&self) -> CoreResult<bool> {
            Ok(false)
        }
    }

    fn lease_of(owner: &str, expires_unix_secs: u64) -> Lease {
        Lease { owner: owner.into(), host: "h".into(), machine: String::new(), pid: 1, expires_unix_secs }
    }

    /// Two takers that both read the same stale lease, then take over one after the other.
    fn race(a: &Repo, b: &Repo) -> (CoreResult<()>, CoreResult<()>) {
        let (stale, tag) = a.read_lease_tagged().unwrap().unwrap();
        assert_eq!(b.read_lease_tagged().unwrap().unwrap().1, tag, "both see one version");
        let (mine_a, mine_b) = (lease_of("a", now() + LEASE_SECS), lease_of("b", now() + LEASE_SECS));
        let first = a.take_over(&stale, &tag, &mine_a, &serde_json::to_vec(&mine_a).unwrap());
        let second = b.take_over(&stale, &tag, &mine_b, &serde_json::to_vec(&mine_b).unwrap());
        (first, second)
    }

    #[test]
    fn of_two_takers_of_one_stale_lease_exactly_one_wins() {
        let (_dir, repo) = new_repo();
        let other = crate::core::repo::open::open(
            crate::core::repo::storage::for_location(&repo.location(), &Default::default()).unwrap(),
            None,
        )
        .unwrap();
        plant(&repo, &serde_json::to_string(&lease_of("stale", now() - 1)).unwrap());
        let (first, second) = race(&repo, &other);
        first.unwrap();
        let refused = second.unwrap_err();
        assert_eq!(refused.code, "ERR_REPO_LOCKED", "{}", refused.message);
        let held: Lease = serde_json::from_slice(&repo.storage.get(LOCK_KEY).unwrap()).unwrap();
        assert_eq!(held.owner, "a");
    }

    /// The negative control: where the store ignores `If-Match`, a taker that
    /// stalled after its last look replaces the winner's lease, and both go on
    /// until the first one's next renewal.
    #[test]
    fn without_conditional_updates_a_stalled_taker_also_wins_and_the_first_finds_out_at_renewal() {
        let (dir, repo) = new_repo();
        let open = || {
            let storage = Unconditional(crate::core::repo::storage::LocalDir::new(dir.path("repo")));
            crate::core::repo::open::open(Box::new(storage), None).unwrap()
        };
        let (a, b) = (open(), open());
        plant(&repo, &serde_json::to_string(&lease_of("stale", now() - 1)).unwrap());
        let (stale, tag) = a.read_lease_tagged().unwrap().unwrap();
        let mine_a = lease_of("a", now() + LEASE_SECS);
        // b stalls between its last look at the stale lease and its replace.
        let stalled_b = |b: &Repo| {
            let mine_b = lease_of("b", now() + LEASE_SECS);
            b.storage.delete(LOCK_KEY).unwrap();
            b.storage.put_new(LOCK_KEY, &serde_json::to_vec(&mine_b).unwrap()).unwrap();
            b.confirm_created(&mine_b)
        };
        a.take_over(&stale, &tag, &mine_a, &serde_json::to_vec(&mine_a).unwrap()).unwrap();
        stalled_b(&b).unwrap();
        // Both took it: the race was lost. The first finds out when it renews.
        *a.lease.lock().unwrap() = Some(mine_a);
        assert_eq!(a.renew_lease().unwrap_err().code, "ERR_REPO_LOCKED");
        // Without the stall, the look right before the replace refuses the second.
        plant(&repo, &serde_json::to_string(&lease_of("stale", now() - 1)).unwrap());
        let (first, second) = race(&a, &b);
        first.unwrap();
        assert_eq!(second.unwrap_err().code, "ERR_REPO_LOCKED");
    }
}
