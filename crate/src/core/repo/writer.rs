//! Adding blobs: deduplicated against the index and the blobs of this
//! session, packed, and published pack by pack; `commit` publishes one index
//! object for the session's packs. Until then the packs are unindexed, and
//! `settle_unindexed` (run by the next expire or repair) indexes what a
//! killed writer left, for prune to keep or drop.
use super::block::{BlockBuilder, BlockCache};
use super::index::{self, PackRecord, DATA_PREFIX, INDEX_PREFIX};
use super::keys::{new_name, BlobId};
use super::pack::{self, Entry, PackBuilder, KIND_DATA, PACK_TARGET};
use super::Repo;
use crate::core::error::CoreResult;
use std::collections::HashSet;

#[derive(Default)]
pub struct WriterState {
    current: PackBuilder,
    /// The compression block being filled (format 3), for `current`.
    block: BlockBuilder,
    /// Buffers of sealed blocks, for the next ones (a fresh megabyte costs its page faults).
    spare_blocks: Vec<Vec<u8>>,
    /// Buffers of published packs, for the next ones.
    spare: Vec<Vec<u8>>,
    /// The blobs this session packed, by the first 128 bits of their keyed id
    /// (half the memory of whole ids; a collision would need 2^64 tries and the key).
    pending: HashSet<u128>,
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

/// What `settle_unindexed` did with packs no index listed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Settled {
    /// Packs indexed anew (their intact blobs).
    pub adopted: u64,
    /// Packs without one intact blob, removed.
    pub removed: u64,
}

/// What `repair_index` did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Repaired {
    pub indexes_removed: u64,
    pub packs_indexed: u64,
    pub packs_removed: u64,
}

/// Adds to the pack being filled (its buffer reserved first); returns it when full.
fn fill_pack(state: &mut WriterState, add: impl FnOnce(&mut PackBuilder)) -> Option<PackBuilder> {
    if !state.current.has_buffer() {
        state.current = PackBuilder::reusing(state.spare.pop().unwrap_or_default());
    }
    add(&mut state.current);
    (state.current.len() >= PACK_TARGET).then(|| {
        let next = PackBuilder::reusing(state.spare.pop().unwrap_or_default());
        std::mem::replace(&mut state.current, next)
    })
}

fn pack_key(name: &str) -> String {
    format!("{DATA_PREFIX}{}/{name}", &name[..2])
}

impl Repo {
    /// Stores `data` as a blob unless the repository or this session has it;
    /// returns its id and whether it was new.
    pub fn store_blob(&self, kind: u8, data: &[u8]) -> CoreResult<(BlobId, bool)> {
        let id = self.keys.id(data);
        let short_id = u128::from_le_bytes(id[..16].try_into().expect("ids are 32 bytes"));
        if self.knows(&id) || self.lock_writer().pending.contains(&short_id) {
            return Ok((id, false));
        }
        if kind == KIND_DATA && self.uses_blocks() {
            return self.store_in_block(id, short_id, data);
        }
        let (sealed, compressed) = self.encode_blob(&id, data);
        let full = {
            let mut state = self.lock_writer();
            if !state.pending.insert(short_id) {
                return Ok((id, false));
            }
            state.stats.blobs += 1;
            state.stats.raw_bytes += data.len() as u64;
            fill_pack(&mut state, |pack| pack.add(id, kind, compressed, data.len() as u32, &sealed))
        };
        if let Some(pack) = full {
            self.publish_pack(pack)?;
        }
        Ok((id, true))
    }

    /// Format 3: the blob joins the block being filled (a copy, under the
    /// lock); a full block is taken out and compressed outside it.
    fn store_in_block(&self, id: BlobId, short_id: u128, data: &[u8]) -> CoreResult<(BlobId, bool)> {
        let full = {
            let mut state = self.lock_writer();
            if !state.pending.insert(short_id) {
                return Ok((id, false));
            }
            state.block.add(id, KIND_DATA, data);
            state.stats.blobs += 1;
            state.stats.raw_bytes += data.len() as u64;
            state.block.is_full().then(|| {
                let next = BlockBuilder::reusing(state.spare_blocks.pop().unwrap_or_default());
                std::mem::replace(&mut state.block, next)
            })
        };
        if let Some(block) = full {
            self.add_block(block)?;
        }
        Ok((id, true))
    }

    /// Compresses and seals a block (outside the lock), then packs it.
    fn add_block(&self, block: BlockBuilder) -> CoreResult<()> {
        let sealed = block.seal(self, self.block_level().expect("a repository with blocks compresses"));
        let mut state = self.lock_writer();
        let full = fill_pack(&mut state, |pack| pack.add_block(&sealed.bytes, &sealed.blobs));
        if state.spare_blocks.len() < 4 {
            state.spare_blocks.push(sealed.buffer);
        }
        drop(state);
        if let Some(pack) = full {
            self.publish_pack(pack)?;
        }
        Ok(())
    }

    fn lock_writer(&self) -> std::sync::MutexGuard<'_, WriterState> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Publishes a pack (outside the writer lock: other threads keep packing).
    pub(crate) fn publish_pack(&self, pack: PackBuilder) -> CoreResult<()> {
        let key = pack_key(&new_name());
        let (bytes, entries) = pack.finish(&self.keys, &key);
        let len = bytes.len() as u64;
        let returned = self.storage.put_new_deferred(&key, bytes)?;
        crate::core::crashpoint::hit("pack-written");
        let mut state = self.lock_writer();
        state.stats.stored_bytes += len;
        state.stats.packs += 1;
        state.written.push(PackRecord { key, entries });
        if let Some(bytes) = returned.filter(|_| state.spare.len() < 2) {
            state.spare.push(bytes);
        }
        Ok(())
    }

    /// Publishes the last pack and an index of the session's packs; their
    /// blobs join the index and become visible to readers.
    pub fn commit(&self) -> CoreResult<WriteStats> {
        let block = std::mem::take(&mut self.lock_writer().block);
        if !block.is_empty() {
            self.add_block(block)?;
        }
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
            index.extend(&state.written);
        }
        Ok(state.stats)
    }

    /// Forgets what this session packed but did not commit (after a failure).
    pub fn abandon(&self) {
        self.storage.abort_pending();
        *self.lock_writer() = WriterState::default();
    }

    /// Before a backup or archive run adds to the repository beside others
    /// (under a shared hold): the index as committed now, refused when an
    /// index object is damaged. Unlike `settle_unindexed` it touches nothing
    /// another writer may be writing (its temporary objects, its packs).
    pub fn refresh_to_write(&self) -> CoreResult<()> {
        self.reload_index()?;
        self.index().require_whole()
    }

    /// Settles what killed writers left, before a writer adds or removes
    /// anything: temporary objects go, and packs that no index lists (a killed
    /// backup's or prune's, or ones whose index was lost) are indexed anew
    /// with their intact blobs, so no data a backup may need is ever deleted
    /// here; a pack with no intact blob is removed. Prune later drops what no
    /// backup uses. Only a writer holding the repository alone (the writer
    /// lock and an exclusive hold: no backup runs beside it) may call it.
    pub fn settle_unindexed(&self) -> CoreResult<Settled> {
        self.storage.clean_partial()?;
        self.remove_dead_holds()?;
        self.reload_index()?;
        self.index().require_whole()?;
        let indexed: HashSet<String> = self.index().packs.iter().cloned().collect();
        let mut settled = Settled::default();
        let mut adopted = Vec::new();
        for object in self.storage.list(DATA_PREFIX)? {
            if indexed.contains(&object.key) {
                continue;
            }
            let entries = self.intact_entries(&object.key)?;
            if entries.is_empty() {
                self.storage.delete(&object.key)?;
                settled.removed += 1;
            } else {
                self.storage.sync_object(&object.key)?;
                adopted.push(PackRecord { key: object.key, entries });
            }
        }
        if !adopted.is_empty() {
            settled.adopted = adopted.len() as u64;
            for packs in index::objects_of(&adopted) {
                self.write_object(&format!("{INDEX_PREFIX}{}", new_name()), &index::encode(packs))?;
            }
            self.reload_index()?;
        }
        Ok(settled)
    }

    /// Removes index objects that fail their seal or are malformed, then
    /// settles: their packs are indexed anew from the packs' own headers, so
    /// nothing but the damaged index is lost. Writers only.
    pub fn repair_index(&self) -> CoreResult<Repaired> {
        let mut dropped = 0;
        for (key, packs) in index::read_all(self.storage.as_ref(), &self.keys)? {
            match packs {
                Err(e) if e.code == "ERR_INTEGRITY" => {
                    self.storage.delete(&key)?;
                    dropped += 1;
                }
                Err(e) => return Err(e), // unreadable now (I/O): not known to be damaged
                Ok(_) => {}
            }
        }
        let settled = self.settle_unindexed()?;
        Ok(Repaired { indexes_removed: dropped, packs_indexed: settled.adopted, packs_removed: settled.removed })
    }

    /// The blobs of a pack whose header opens and whose content matches its id.
    fn intact_entries(&self, key: &str) -> CoreResult<Vec<Entry>> {
        let bytes = self.storage.get(key)?;
        let Ok(header) = pack::parse(&self.keys, key, &bytes) else {
            return Ok(Vec::new());
        };
        let mut blocks = BlockCache::new(1);
        let mut out = Vec::new();
        Ok(header
            .into_iter()
            .filter(|e| {
                out.resize(e.raw_len as usize, 0);
                blocks.decode_into(self, e, &bytes[e.offset as usize..e.end() as usize], key, &mut out).is_ok()
            })
            .collect())
    }
}
