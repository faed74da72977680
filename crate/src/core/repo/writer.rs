//! Adding blobs: deduplicated against the index and the blobs of this
//! session, packed, and published pack by pack; `commit` publishes one index
//! object for the session's packs. Until then the packs are unreferenced, and
//! `remove_unindexed` (run by the next writer) takes away what a killed
//! writer left.
use super::index::{self, PackRecord, DATA_PREFIX, INDEX_PREFIX};
use super::keys::{random_bytes, BlobId};
use super::pack::{PackBuilder, PACK_TARGET};
use super::{hex, Repo};
use crate::core::error::CoreResult;
use std::collections::HashSet;

#[derive(Default)]
pub struct WriterState {
    current: PackBuilder,
    pending: HashSet<BlobId>,
    written: Vec<PackRecord>,
    stats: WriteStats,
}

/// What a session added to the repository.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteStats {
    pub blobs: u64,
    /// Bytes of the chunks added, before compression.
    pub raw_bytes: u64,
    /// Bytes of the objects written (packs and index).
    pub stored_bytes: u64,
    pub packs: u64,
}

/// A new object name: random, so concurrent or repeated writers never collide.
pub fn new_name() -> String {
    hex(&random_bytes::<32>())
}

fn pack_key(name: &str) -> String {
    format!("{DATA_PREFIX}{}/{name}", &name[..2])
}

impl Repo {
    /// Stores `data` as a blob unless the repository or this session has it;
    /// returns its id and whether it was new.
    pub fn store_blob(&self, kind: u8, data: &[u8]) -> CoreResult<(BlobId, bool)> {
        let id = self.keys.id(data);
        if self.knows(&id) || self.lock_writer().pending.contains(&id) {
            return Ok((id, false));
        }
        let (sealed, compressed) = self.encode_blob(&id, data);
        let full = {
            let mut state = self.lock_writer();
            if !state.pending.insert(id) {
                return Ok((id, false));
            }
            state.current.add(id, kind, compressed, data.len() as u32, &sealed);
            state.stats.blobs += 1;
            state.stats.raw_bytes += data.len() as u64;
            (state.current.len() >= PACK_TARGET).then(|| std::mem::replace(&mut state.current, PackBuilder::with_capacity()))
        };
        if let Some(pack) = full {
            self.publish_pack(pack)?;
        }
        Ok((id, true))
    }

    fn lock_writer(&self) -> std::sync::MutexGuard<'_, WriterState> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Publishes a pack (outside the writer lock: other threads keep packing).
    pub(crate) fn publish_pack(&self, pack: PackBuilder) -> CoreResult<()> {
        let key = pack_key(&new_name());
        let (bytes, entries) = pack.finish(&self.keys, &key);
        self.storage.put_new_deferred(&key, &bytes)?;
        crate::core::crashpoint::hit("pack-written");
        let mut state = self.lock_writer();
        state.stats.stored_bytes += bytes.len() as u64;
        state.stats.packs += 1;
        state.written.push(PackRecord { key, entries });
        Ok(())
    }

    /// Publishes the last pack and an index of the session's packs; their
    /// blobs join the index and become visible to readers.
    pub fn commit(&self) -> CoreResult<WriteStats> {
        let last = std::mem::take(&mut self.lock_writer().current);
        if !last.is_empty() {
            self.publish_pack(last)?;
        }
        let mut state = std::mem::take(&mut *self.lock_writer());
        self.storage.sync_published()?; // packs durable before an index names them
        if !state.written.is_empty() {
            let key = format!("{INDEX_PREFIX}{}", new_name());
            state.stats.stored_bytes += self.write_object(&key, &index::encode(&state.written))?;
            crate::core::crashpoint::hit("index-written");
            let mut index = self.index.write().unwrap_or_else(|p| p.into_inner());
            state.written.iter().for_each(|p| index.add(p));
        }
        Ok(state.stats)
    }

    /// Forgets what this session packed but did not commit (after a failure).
    pub fn abandon(&self) {
        *self.lock_writer() = WriterState::default();
    }

    /// Removes temporary objects and packs no index lists: what killed
    /// writers left. Only a writer holding the repository lock may call it.
    pub fn remove_unindexed(&self) -> CoreResult<u64> {
        self.storage.clean_partial()?;
        self.reload_index()?;
        self.index().require_whole()?;
        let indexed: HashSet<String> = self.index().packs.iter().cloned().collect();
        let mut removed = 0;
        for object in self.storage.list(DATA_PREFIX)? {
            if !indexed.contains(&object.key) {
                self.storage.delete(&object.key)?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}
