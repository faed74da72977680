//! The repository's writer lock, held the way its storage allows (see
//! `Storage::lock_kind`): a `flock` on a local directory's `LOCK`, a leased
//! `LOCK` object on an object store (lease.rs). Callers take, renew and
//! release it the same way whatever the backend; renewing a flock is free.
use super::storage::LockKind;
use super::Repo;
use crate::core::error::{CoreError, CoreResult};
use crate::core::lock::WriterLock;

impl Repo {
    /// Takes the writer lock; returns a notice when it took over a stale one.
    /// Another writer holding it is ERR_REPO_LOCKED.
    pub fn take_writer_lock(&self) -> CoreResult<Option<String>> {
        match self.storage.lock_kind() {
            LockKind::Lease => self.acquire_lease(),
            LockKind::Flock(dir) => {
                let lock = WriterLock::acquire(&dir).map_err(|e| self.in_use(e))?;
                *self.flock.lock().unwrap_or_else(|p| p.into_inner()) = Some(lock);
                Ok(None)
            }
        }
    }

    /// Keeps the writer lock: renews a lease (failing if another writer has
    /// taken it meanwhile); a flock needs nothing.
    pub fn renew_writer_lock(&self) -> CoreResult<()> {
        match self.storage.lock_kind() {
            LockKind::Lease => self.renew_lease(),
            LockKind::Flock(_) => Ok(()),
        }
    }

    /// Gives the writer lock up.
    pub fn release_writer_lock(&self) -> CoreResult<()> {
        match self.storage.lock_kind() {
            LockKind::Lease => self.release_lease(),
            LockKind::Flock(_) => {
                drop(self.flock.lock().unwrap_or_else(|p| p.into_inner()).take());
                Ok(())
            }
        }
    }

    /// A local LOCK held by a live process, said as a repository in use.
    fn in_use(&self, e: CoreError) -> CoreError {
        if e.code != "ERR_LOCKED" {
            return e;
        }
        let holder =
            e.message.split("process ").nth(1).and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next());
        let on =
            holder.filter(|p| !p.is_empty()).map(|p| format!(" (process {p} on this machine)")).unwrap_or_default();
        CoreError::new(
            "ERR_REPO_LOCKED",
            format!(
                "repository {} is in use by another expire, repair or key removal{on}; try again when it ends, or wait for it with --lock-wait <duration>",
                self.location()
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use crate::core::repo::tests::scratch_repo;

    #[test]
    fn a_second_writer_of_a_local_repository_is_refused_until_the_first_lets_go() {
        let (_dir, repo) = scratch_repo();
        let other = crate::core::repo::open::open(
            crate::core::repo::storage::for_location(&repo.location(), &Default::default()).unwrap(),
            None,
        )
        .unwrap();
        assert_eq!(repo.take_writer_lock().unwrap(), None);
        repo.renew_writer_lock().unwrap();
        let refused = other.take_writer_lock().unwrap_err();
        assert_eq!(refused.code, "ERR_REPO_LOCKED", "{}", refused.message);
        assert!(refused.message.contains(&format!("process {}", std::process::id())), "{}", refused.message);
        repo.release_writer_lock().unwrap();
        other.take_writer_lock().unwrap();
        other.release_writer_lock().unwrap();
    }
}
