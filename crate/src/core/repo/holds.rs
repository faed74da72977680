//! Holds: who is using a repository, and who needs it alone. A reader
//! (restore, export, verify) must not see the packs it is reading pruned
//! away, and a backup (or archive run) must not deduplicate against a chunk a
//! prune is about to remove, so each publishes a shared hold `locks/<owner>`
//! before it reads the index, and expire, repair and key removal publish an
//! exclusive one before they remove anything; each then looks for the other
//! kind and, finding a live one, withdraws its own and fails. Two that start
//! at once both withdraw: safe, and the next attempt goes through. Holds are
//! plain objects behind the storage interface, so the same protocol runs on a
//! local directory and an object store; each carries a lease, renewed while
//! its operation runs, so one left by a killed process stops mattering.
use super::lease::{holder_is_live, now, this_machine, LEASE_SECS};
use super::Repo;
use crate::core::error::{CoreError, CoreResult};
use serde::{Deserialize, Serialize};

pub const HOLDS_PREFIX: &str = "locks/";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Reads packs or adds to them (restore, verify, backup): many at once.
    Shared,
    /// Removes snapshots, packs, indexes or keys: alone among holders.
    Exclusive,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    /// Random: the key's last part, telling this hold from any other.
    pub owner: String,
    pub kind: Kind,
    /// What holds it, for messages: `restore`, `verify`, `backup`, `expire`...
    pub operation: String,
    pub host: String,
    /// The kernel boot and PID namespace of `pid`: where a PID can be checked.
    pub machine: String,
    pub pid: u32,
    pub expires_unix_secs: u64,
}

fn key_of(owner: &str) -> String {
    format!("{HOLDS_PREFIX}{owner}")
}

impl Hold {
    /// Whether it still counts: its lease runs, and its process lives when
    /// that can be checked from here.
    pub fn is_live(&self, here: &str) -> bool {
        holder_is_live(&self.machine, self.pid, self.expires_unix_secs, here)
    }

    fn describe(&self) -> String {
        format!("{} (host {}, pid {}, lease until {})", self.operation, self.host, self.pid, self.expires_unix_secs)
    }
}

impl Repo {
    /// Publishes a hold of `kind` for `operation`, or fails with
    /// ERR_REPO_LOCKED (having withdrawn it) when a live hold of the other
    /// kind exists. Returns the hold's owner, for `renew_hold`/`release_hold`.
    pub fn acquire_hold(&self, kind: Kind, operation: &str) -> CoreResult<String> {
        let here = this_machine();
        let mine = Hold {
            owner: super::keys::new_name(),
            kind,
            operation: operation.to_string(),
            host: super::lease::host(),
            machine: here.clone(),
            pid: std::process::id(),
            expires_unix_secs: now() + LEASE_SECS,
        };
        let key = key_of(&mine.owner);
        self.storage.put_new(&key, &serde_json::to_vec(&mine).expect("a hold serializes"))?;
        let conflicts = match self.conflicting_holds(&mine, &here) {
            Ok(conflicts) => conflicts,
            Err(e) => {
                let _ = self.storage.delete(&key);
                return Err(e);
            }
        };
        if let Some(first) = conflicts.first() {
            self.storage.delete(&key)?;
            let others = match conflicts.len() {
                1 => String::new(),
                n => format!(" and {} more", n - 1),
            };
            let message = match kind {
                Kind::Shared => format!(
                    "repository {} is held alone by {}{others}; try again when it ends, or wait for it with --lock-wait <duration>",
                    self.location(),
                    first.describe()
                ),
                Kind::Exclusive => format!(
                    "repository {} is in use by {}{others}; {operation} needs it alone: try again when it ends, or wait for it with --lock-wait <duration>",
                    self.location(),
                    first.describe()
                ),
            };
            return Err(CoreError::new("ERR_REPO_LOCKED", message));
        }
        self.holds.lock().unwrap_or_else(|p| p.into_inner()).insert(mine.owner.clone(), mine.clone());
        Ok(mine.owner)
    }

    /// The live holds that exclude `mine`.
    fn conflicting_holds(&self, mine: &Hold, here: &str) -> CoreResult<Vec<Hold>> {
        let others = self.live_holds(here, true)?.into_iter().filter(|h| h.owner != mine.owner);
        Ok(others.filter(|h| h.kind == Kind::Exclusive || mine.kind == Kind::Exclusive).collect())
    }

    /// Every live hold; with `tidy`, the others (dead, lapsed, or not a hold
    /// at all) are removed on the way: nobody is protected by them.
    fn live_holds(&self, here: &str, tidy: bool) -> CoreResult<Vec<Hold>> {
        let mut live = Vec::new();
        for object in self.storage.list(HOLDS_PREFIX)? {
            let hold = match self.storage.get(&object.key) {
                Ok(bytes) => serde_json::from_slice::<Hold>(&bytes).ok(),
                // Withdrawn meanwhile.
                Err(e) if e.code == "ERR_MISSING_FILE" => continue,
                Err(e) => return Err(e),
            };
            match hold {
                Some(hold) if hold.is_live(here) && object.key == key_of(&hold.owner) => live.push(hold),
                _ if tidy => self.storage.delete(&object.key)?,
                _ => {}
            }
        }
        Ok(live)
    }

    /// Removes the holds of killed processes and lapsed leases (a writer
    /// tidying up, as it removes what killed writers left).
    pub fn remove_dead_holds(&self) -> CoreResult<()> {
        self.live_holds(&this_machine(), true).map(|_| ())
    }

    /// Who holds the repository now (for `info`); writes nothing.
    pub fn holds(&self) -> CoreResult<Vec<Hold>> {
        self.live_holds(&this_machine(), false)
    }

    /// Extends the lease of the hold `owner`. A hold that is gone was
    /// removed by a process that took it for dead (its lease lapsed): a
    /// remover may have gone on since, so that fails, and the holder must
    /// not publish anything that relies on what it read.
    pub fn renew_hold(&self, owner: &str) -> CoreResult<()> {
        let mut holds = self.holds.lock().unwrap_or_else(|p| p.into_inner());
        let Some(hold) = holds.get_mut(owner) else {
            return Err(CoreError::new("ERR_INVALID_ARG", format!("no hold {owner} is held")));
        };
        hold.expires_unix_secs = now() + LEASE_SECS;
        let bytes = serde_json::to_vec(&*hold).expect("a hold serializes");
        let operation = hold.operation.clone();
        drop(holds);
        let key = key_of(owner);
        match self.storage.get(&key) {
            Err(e) if e.code == "ERR_MISSING_FILE" => Err(CoreError::new(
                "ERR_REPO_LOCKED",
                format!(
                    "the {operation}'s hold on {} lapsed and was removed (the process stalled past its lease): run the {operation} again",
                    self.location()
                ),
            )),
            Err(e) => Err(e),
            Ok(_) => self.storage.put_replace(&key, &bytes),
        }
    }

    /// Withdraws the hold `owner`.
    pub fn release_hold(&self, owner: &str) -> CoreResult<()> {
        if self.holds.lock().unwrap_or_else(|p| p.into_inner()).remove(owner).is_none() {
            return Ok(());
        }
        self.storage.delete(&key_of(owner))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::repo::tests::scratch_repo as new_repo;
    use crate::core::test_support::dead_pid;

    #[test]
    fn readers_share_and_exclude_a_remover() {
        let (_dir, repo) = new_repo();
        let a = repo.acquire_hold(Kind::Shared, "restore").unwrap();
        let b = repo.acquire_hold(Kind::Shared, "verify").unwrap();
        let err = repo.acquire_hold(Kind::Exclusive, "expire").unwrap_err();
        assert_eq!(err.code, "ERR_REPO_LOCKED");
        assert!(err.message.contains("in use by") && err.message.contains("and 1 more"), "{}", err.message);
        // The refused hold was withdrawn: only the readers' remain.
        assert_eq!(repo.storage.list(HOLDS_PREFIX).unwrap().len(), 2);
        let held: Vec<_> = repo.holds().unwrap().into_iter().map(|h| (h.kind, h.operation)).collect();
        assert_eq!(held.len(), 2);
        assert!(held.contains(&(Kind::Shared, "verify".into())), "{held:?}");
        repo.release_hold(&a).unwrap();
        repo.renew_hold(&b).unwrap();
        assert_eq!(repo.acquire_hold(Kind::Exclusive, "expire").unwrap_err().code, "ERR_REPO_LOCKED");
        repo.release_hold(&b).unwrap();
        let e = repo.acquire_hold(Kind::Exclusive, "expire").unwrap();
        let err = repo.acquire_hold(Kind::Shared, "restore").unwrap_err();
        assert!(err.message.contains("held alone by expire"), "{}", err.message);
        repo.release_hold(&e).unwrap();
        assert!(repo.storage.list(HOLDS_PREFIX).unwrap().is_empty());
    }

    #[test]
    fn holds_of_dead_processes_and_expired_leases_are_removed() {
        let (_dir, repo) = new_repo();
        let here = this_machine();
        let stale = |owner: &str, pid, machine: &str, expires| Hold {
            owner: owner.into(),
            kind: Kind::Shared,
            operation: "restore".into(),
            host: "h".into(),
            machine: machine.into(),
            pid,
            expires_unix_secs: expires,
        };
        let killed = stale("killed", dead_pid(), &here, now() + LEASE_SECS);
        let lapsed = stale("lapsed", std::process::id(), &here, now() - 1);
        // A live lease elsewhere: its PID cannot be checked from here, so it counts.
        let elsewhere = stale("elsewhere", dead_pid(), "another-boot/pid:[1]", now() + LEASE_SECS);
        for hold in [&killed, &lapsed, &elsewhere] {
            repo.storage.put_new(&key_of(&hold.owner), &serde_json::to_vec(hold).unwrap()).unwrap();
        }
        repo.storage.put_new(&key_of("garbage"), b"not a hold").unwrap();
        let err = repo.acquire_hold(Kind::Exclusive, "expire").unwrap_err();
        assert!(err.message.contains("in use by restore (host h"), "{}", err.message);
        let left: Vec<_> = repo.storage.list(HOLDS_PREFIX).unwrap().into_iter().map(|o| o.key).collect();
        assert_eq!(left, vec![key_of("elsewhere")]);
    }

    #[test]
    fn a_hold_removed_as_dead_fails_its_renewal() {
        let (_dir, repo) = new_repo();
        let owner = repo.acquire_hold(Kind::Shared, "backup").unwrap();
        repo.renew_hold(&owner).unwrap();
        // Another process took it for dead (its lease lapsed) and removed it: an expire may have run since.
        repo.storage.delete(&key_of(&owner)).unwrap();
        let err = repo.renew_hold(&owner).unwrap_err();
        assert_eq!(err.code, "ERR_REPO_LOCKED");
        assert!(err.message.contains("the backup's hold on"), "{}", err.message);
        assert!(repo.storage.list(HOLDS_PREFIX).unwrap().is_empty(), "not published again");
    }
}
