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
    /// Replaces an object whole (only the writer lock's lease is ever replaced).
    fn put_replace(&self, key: &str, data: &[u8]) -> CoreResult<()>;
    /// Whether "create if absent" is enforced by the store (false: a check,
    /// then a write). An object store finds out by writing a probe object.
    fn conditional_writes(&self) -> CoreResult<bool> {
        Ok(true)
    }
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

/// The storage of a repository location: `s3://bucket/prefix` or a local directory.
pub fn for_location(location: &str, options: &StoreOptions) -> CoreResult<Box<dyn Storage>> {
    if location.starts_with("s3://") {
        let mut config = object::ObjectStoreConfig::parse(location)?;
        config.endpoint = options.endpoint.clone();
        config.conditional_writes = !options.no_conditional_writes;
        config.transfers = options.transfers.unwrap_or(object::DEFAULT_TRANSFERS);
        return Ok(Box::new(ObjectStoreDir::new(&config)?));
    }
    if location.contains("://") {
        return Err(CoreError::new(
            "ERR_INVALID_ARG",
            format!("{location}: only s3:// URLs and local directories are repositories"),
        ));
    }
    Ok(Box::new(LocalDir::new(location)))
}

/// The error for an object that should exist but does not.
pub fn missing(location: &str, key: &str) -> CoreError {
    CoreError::new("ERR_MISSING_FILE", format!("repository object {key} is missing from {location}"))
}
