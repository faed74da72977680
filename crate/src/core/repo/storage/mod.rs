//! Where a repository's objects live. Every object is written once under a
//! new name and never changed, so the same logic runs on a local directory
//! and on an object store (no rename, no append, no overwrite).
use crate::core::error::{CoreError, CoreResult};

mod aws_profile;
mod local;
mod object;

pub use local::LocalDir;
pub use object::ObjectStoreDir;

/// An object's key and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
}

/// The operations repository logic may use. Keys are `/`-separated relative names.
pub trait Storage: Send + Sync {
    /// Where the repository is, for messages.
    fn location(&self) -> String;
    /// Publishes a new object whole and durably; fails with `EEXIST` when the key exists.
    fn put_new(&self, key: &str, data: &[u8]) -> CoreResult<()>;
    /// As `put_new`, durable only after the next `sync_published`: for packs,
    /// which nothing references until an index written after that sync.
    /// Returns the buffer for reuse unless the store keeps it (an upload under way).
    fn put_new_deferred(&self, key: &str, data: Vec<u8>) -> CoreResult<Option<Vec<u8>>> {
        self.put_new(key, &data).map(|()| Some(data))
    }
    /// Makes every object published with `put_new_deferred` durable (an
    /// object store: waits for their background uploads).
    fn sync_published(&self) -> CoreResult<()> {
        Ok(())
    }
    /// Stops deferred publications still under way (after a failure or an
    /// abort): none of them becomes visible half-written.
    fn abort_pending(&self) {}
    /// Whether every request crosses a network (fewer, larger ones pay off).
    fn is_remote(&self) -> bool {
        false
    }
    /// How a writer keeps others out (see `Repo::take_writer_lock`).
    fn lock_kind(&self) -> LockKind {
        LockKind::Lease
    }
    /// Makes room for a new repository before `init` writes anything: a
    /// local directory is created (with its parents) and must be empty.
    /// Returns what to remove again if `init` then fails.
    fn prepare_new(&self) -> CoreResult<Option<std::path::PathBuf>> {
        Ok(None)
    }
    /// Requests worth keeping in flight at once (1: the caller's threads suffice).
    fn transfers(&self) -> usize {
        1
    }
    /// Makes an existing object durable (one a killed writer may not have synced).
    fn sync_object(&self, _key: &str) -> CoreResult<()> {
        Ok(())
    }
    fn get(&self, key: &str) -> CoreResult<Vec<u8>>;
    fn get_range(&self, key: &str, offset: u64, len: usize) -> CoreResult<Vec<u8>>;
    /// Several `get_range`s, results in order.
    fn get_ranges(&self, reads: &[(&str, u64, usize)]) -> CoreResult<Vec<Vec<u8>>> {
        use rayon::prelude::*;
        reads.par_iter().map(|(key, offset, len)| self.get_range(key, *offset, *len)).collect()
    }
    /// Every object under `prefix` (recursively), sorted by key.
    fn list(&self, prefix: &str) -> CoreResult<Vec<ObjectInfo>>;
    /// Removes an object; a missing one is not an error.
    fn delete(&self, key: &str) -> CoreResult<()>;
    /// Removes what interrupted writers left (temporary files); writers only.
    fn clean_partial(&self) -> CoreResult<usize>;
    /// Replaces an object whole (only leases, the writer lock's and holds', are ever replaced).
    fn put_replace(&self, key: &str, data: &[u8]) -> CoreResult<()>;
    /// An object and its version tag (an object store's ETag), for `replace_if`.
    fn get_tagged(&self, key: &str) -> CoreResult<(Vec<u8>, String)>;
    /// Replaces `key` only if it is still the version `tag` names; `ECHANGED`
    /// when another write (or a removal) came first. Enforced only where
    /// `conditional_updates` says so: elsewhere it is a plain replace.
    fn replace_if(&self, key: &str, data: &[u8], tag: &str) -> CoreResult<()>;
    /// Whether "create if absent" is enforced by the store (false: a check,
    /// then a write). An object store finds out by writing a probe object.
    fn conditional_writes(&self) -> CoreResult<bool> {
        Ok(true)
    }
    /// Whether "replace if unchanged" (`replace_if`, S3's `If-Match`) is
    /// enforced by the store. An object store finds out with a probe object.
    fn conditional_updates(&self) -> CoreResult<bool> {
        Ok(true)
    }
}

/// How a repository's writer lock is held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockKind {
    /// An exclusive `flock` on `<dir>/LOCK` (a local directory).
    Flock(std::path::PathBuf),
    /// A leased `LOCK` object, renewed while the writer works (no flock on an object store).
    Lease,
}

/// Options for a repository location.
#[derive(Debug, Clone, Default)]
pub struct StoreOptions {
    /// An object store's endpoint (overrides `AWS_ENDPOINT_URL`).
    pub endpoint: Option<String>,
    /// Never use conditional writes (as on servers that ignore them).
    pub no_conditional_writes: bool,
    /// An object store's requests in flight (None: the default).
    pub transfers: Option<usize>,
}

/// A repository location as the user gave it, resolved: a URL of a store
/// this package speaks, or an absolute local path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The URL, or the absolute path.
    pub resolved: String,
    /// An object store (else a local directory).
    pub remote: bool,
}

/// Resolves a location; a URL of a store this package does not speak is
/// refused (`gs://x` must not become a local directory `gs:`).
pub fn locate(location: &str) -> CoreResult<Location> {
    if location.starts_with("s3://") {
        return Ok(Location { resolved: location.to_string(), remote: true });
    }
    if let Some((scheme, _)) = location.split_once("://") {
        let plain = scheme.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c));
        if plain {
            return Err(CoreError::new(
                "ERR_INVALID_ARG",
                format!("{location}: repositories are local directories or s3://<bucket>/<prefix> (any S3-compatible store, with --endpoint); {scheme}:// is not supported"),
            ));
        }
    }
    let path =
        std::path::absolute(location).map_err(|e| CoreError::io("resolve", std::path::Path::new(location), e))?;
    Ok(Location { resolved: lexically_normal(&path).to_string_lossy().into_owned(), remote: false })
}

/// `a/b/../c` as `a/c`, without touching the file system (as Node's `path.resolve`).
fn lexically_normal(path: &std::path::Path) -> std::path::PathBuf {
    use std::path::Component;
    let mut out = std::path::PathBuf::new();
    for part in path.components() {
        match part {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// The storage of a repository location: `s3://bucket/prefix` or a local directory.
pub fn for_location(location: &str, options: &StoreOptions) -> CoreResult<Box<dyn Storage>> {
    let Location { resolved, remote } = locate(location)?;
    if remote {
        let mut config = object::ObjectStoreConfig::parse(&resolved)?;
        config.endpoint = options.endpoint.clone();
        config.conditional_writes = !options.no_conditional_writes;
        config.transfers = options.transfers.unwrap_or(object::DEFAULT_TRANSFERS);
        return Ok(Box::new(ObjectStoreDir::new(&config)?));
    }
    Ok(Box::new(LocalDir::new(resolved)))
}

/// The error for an object that should exist but does not.
pub fn missing(location: &str, key: &str) -> CoreError {
    CoreError::new("ERR_MISSING_FILE", format!("repository object {key} is missing from {location}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::test_support::TempDir;

    #[test]
    fn locations_resolve_to_a_store_url_or_an_absolute_path_and_unknown_schemes_are_refused() {
        assert_eq!(locate("s3://b/p").unwrap(), Location { resolved: "s3://b/p".into(), remote: true });
        let cwd = std::env::current_dir().unwrap();
        let local = locate("a/./b/../c").unwrap();
        assert_eq!(local, Location { resolved: cwd.join("a/c").to_string_lossy().into_owned(), remote: false });
        let refused = locate("gs://bucket/x").unwrap_err();
        assert_eq!(refused.code, "ERR_INVALID_ARG");
        assert!(refused.message.contains("gs:// is not supported"), "{}", refused.message);
    }

    #[test]
    fn a_local_repository_is_made_in_an_empty_directory_only() {
        let dir = TempDir::new();
        let fresh = LocalDir::new(dir.path("new/deeper"));
        assert_eq!(fresh.prepare_new().unwrap(), Some(dir.path("new")));
        assert_eq!(fresh.prepare_new().unwrap(), None, "an existing empty directory is fine");
        std::fs::write(dir.path("new/deeper/x"), b"x").unwrap();
        assert_eq!(fresh.prepare_new().unwrap_err().code, "ERR_DEST_NOT_EMPTY");
    }
}
