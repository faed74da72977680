//! Compression blocks (format 3): consecutive data blobs of a pack
//! compressed together as one zstd frame and sealed as one unit, so that
//! small chunks (deduplicated one by one) compress as well as a large run.
//! A blob is still found by its own id: its entry names the block (offset
//! and stored length in the pack) and where it lies inside the block once
//! decompressed; reading one blob reads and decompresses its block only.
use super::keys::BlobId;
use super::pack::Entry;
use super::row_delta;
use super::{short, zstd_compress, Repo};
use crate::core::error::{CoreError, CoreResult};
use crate::core::page::PAGE_SIZE;
use std::sync::Arc;

/// A block is sealed once it holds this much. zstd on PowDB heaps and
/// indexes in units of 1 MiB at level 3 stores about 60% of what 64 KiB
/// units at level 1 store, at a fifth of the amplification of 4 MiB units.
pub const BLOCK_TARGET: usize = 1 << 20;
/// The largest block a reader accepts (a blob of up to the largest chunk
/// closes a block past its target).
pub const MAX_BLOCK: usize = 8 << 20;
/// Block buffers a cache keeps for reuse.
const SPARE_BUFFERS: usize = 8;
/// The context a block is sealed with (its blobs are checked against their ids).
const BLOCK_CONTEXT: &BlobId = b"powdb-backup compression block\0\0";

/// The blobs of a block being filled, in order.
#[derive(Default)]
pub struct BlockBuilder {
    data: Vec<u8>,
    blobs: Vec<Entry>,
}

/// A block compressed and sealed, with its blobs' entries (offset and
/// stored length set when added to a pack).
pub struct SealedBlock {
    pub bytes: Vec<u8>,
    pub blobs: Vec<Entry>,
    /// The block's raw buffer, for the next block.
    pub buffer: Vec<u8>,
}

impl BlockBuilder {
    /// A builder in the buffer of a block already sealed.
    pub fn reusing(mut buffer: Vec<u8>) -> BlockBuilder {
        buffer.clear();
        BlockBuilder { data: buffer, blobs: Vec::new() }
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }

    pub fn add(&mut self, id: BlobId, kind: u8, data: &[u8]) {
        if self.data.capacity() == 0 {
            self.data.reserve_exact(BLOCK_TARGET + (128 << 10));
        }
        let inner = self.data.len() as u32;
        self.data.extend_from_slice(data);
        let mut e = Entry::single(id, kind, true, 0, 0, data.len() as u32);
        e.inner = inner;
        self.blobs.push(e);
    }

    pub fn is_full(&self) -> bool {
        self.data.len() >= BLOCK_TARGET
    }

    /// Compressed at `level` and sealed (call outside any lock: it is the slow part).
    pub fn seal(mut self, repo: &Repo, level: i32) -> SealedBlock {
        let block_len = self.data.len() as u32;
        if repo.uses_row_deltas() {
            // Whole pages of blobs cut from heaps (the filter leaves any page it cannot read as it is).
            let pages = self
                .blobs
                .iter()
                .filter(|e| (e.raw_len as usize).is_multiple_of(PAGE_SIZE))
                .flat_map(|e| (e.inner as usize..(e.inner + e.raw_len) as usize).step_by(PAGE_SIZE));
            row_delta::encode(&mut self.data, pages);
        }
        let body = zstd_compress(level, true, &self.data);
        let blobs = self.blobs.into_iter().map(|e| Entry { block_len, ..e }).collect();
        SealedBlock { bytes: repo.keys.seal_blob(body, BLOCK_CONTEXT), blobs, buffer: self.data }
    }
}

impl Repo {
    /// Whether this repository writes data blobs in compression blocks.
    pub fn uses_blocks(&self) -> bool {
        self.config.format >= 3 && self.block_level().is_some()
    }

    /// Whether the blocks it writes store heap pages as row deltas (format 4;
    /// a reader tells such a block by its length, in any format).
    pub fn uses_row_deltas(&self) -> bool {
        self.config.format >= 4
    }

    pub(crate) fn block_level(&self) -> Option<i32> {
        match self.config.compression() {
            super::config::Compression::Zstd(level) => Some(level),
            super::config::Compression::None => None,
        }
    }

    /// The decompressed block of `entry` (a blob in a block) from its stored bytes.
    pub fn open_block(&self, entry: &Entry, stored: &[u8], pack: &str) -> CoreResult<Vec<u8>> {
        self.open_block_into(entry, stored, pack, Vec::new())
    }

    /// As `open_block`, in `out` (a buffer to reuse: its bytes are replaced).
    pub fn open_block_into(&self, entry: &Entry, stored: &[u8], pack: &str, mut out: Vec<u8>) -> CoreResult<Vec<u8>> {
        let what =
            || format!("the block at byte {} of pack {pack} (blob {} among others)", entry.offset, short(&entry.id));
        let opened = self.keys.open_blob(stored, BLOCK_CONTEXT, &what())?;
        let body: &[u8] = opened.as_deref().unwrap_or(stored);
        out.clear();
        let block_len = entry.block_len as usize;
        out.reserve_exact(block_len + row_delta::max_trailer(block_len));
        let len = super::zstd_decompress_vec(body, &mut out)
            .map_err(|e| CoreError::new("ERR_INTEGRITY", format!("{} does not decompress: {e}", what())))?;
        // A block with row deltas is longer than its data by their trailer (format 4); one without is not.
        if len > block_len && out.len() == len {
            row_delta::decode(&mut out, block_len)
                .map_err(|e| CoreError::new("ERR_INTEGRITY", format!("{}: {}", what(), e.message)))?;
        }
        if out.len() != block_len {
            return Err(CoreError::new("ERR_INTEGRITY", format!("{} has the wrong length", what())));
        }
        Ok(out)
    }

    /// A blob of a decompressed block, checked against its id, into `out`.
    pub fn blob_from_block(&self, entry: &Entry, block: &[u8], pack: &str, out: &mut [u8]) -> CoreResult<()> {
        let from = entry.inner as usize;
        let data = block.get(from..from + entry.raw_len as usize).filter(|d| d.len() == out.len());
        match data {
            Some(data) if self.keys.id(data) == entry.id => {
                out.copy_from_slice(data);
                Ok(())
            }
            _ => Err(CoreError::new(
                "ERR_INTEGRITY",
                format!("blob {} in pack {pack} does not match its id", short(&entry.id)),
            )),
        }
    }
}

/// A block opened (decompressed), or why it could not be.
pub type Opened = CoreResult<Arc<Vec<u8>>>;

/// The last blocks opened, so that consecutive blobs of a block open it once.
pub struct BlockCache {
    slots: Vec<((String, u32), Opened)>,
    keep: usize,
    /// Buffers of blocks dropped from the cache, for the next ones (a fresh
    /// megabyte each time costs its page faults: a third more system time
    /// in a restore).
    spare: Vec<Vec<u8>>,
}

impl BlockCache {
    pub fn new(keep: usize) -> BlockCache {
        BlockCache { slots: Vec::new(), keep: keep.max(1), spare: Vec::new() }
    }

    /// A buffer for a block to open.
    pub fn take_spare(&mut self) -> Vec<u8> {
        self.spare.pop().unwrap_or_default()
    }

    /// The block of `entry`, opened from `stored` unless it is cached; a
    /// block that failed to open fails every blob asked of it, once opened.
    pub fn get(&mut self, repo: &Repo, entry: &Entry, stored: &[u8], pack: &str) -> Opened {
        match self.find(entry, pack) {
            Some(opened) => opened,
            None => {
                let buffer = self.take_spare();
                let opened = repo.open_block_into(entry, stored, pack, buffer).map(Arc::new);
                self.put(entry, pack, opened.clone());
                opened
            }
        }
    }

    /// The block of `entry` if it is cached.
    pub fn find(&self, entry: &Entry, pack: &str) -> Option<Opened> {
        self.slots.iter().find(|((p, o), _)| *o == entry.offset && p == pack).map(|(_, b)| b.clone())
    }

    /// Adds a block opened elsewhere (on another thread); the oldest goes.
    pub fn put(&mut self, entry: &Entry, pack: &str, opened: Opened) {
        self.slots.retain(|((p, o), _)| !(*o == entry.offset && p == pack));
        self.slots.push(((pack.to_string(), entry.offset), opened));
        if self.slots.len() > self.keep {
            let evicted: Vec<_> = self.slots.drain(..self.slots.len() - self.keep).collect();
            for (_, opened) in evicted {
                if let Some(buffer) = opened.ok().and_then(|b| Arc::try_unwrap(b).ok()) {
                    self.spare.push(buffer);
                }
            }
            self.spare.truncate(SPARE_BUFFERS);
        }
    }

    /// Any blob (alone or in a block) from its stored bytes into `out`, checked against its id.
    pub fn decode_into(
        &mut self,
        repo: &Repo,
        entry: &Entry,
        stored: &[u8],
        pack: &str,
        out: &mut [u8],
    ) -> CoreResult<()> {
        if entry.in_block() {
            let block = self.get(repo, entry, stored, pack)?;
            repo.blob_from_block(entry, &block, pack, out)
        } else {
            repo.decode_blob_into(entry, stored, pack, out)
        }
    }
}

/// A chunk to open: its pack, its stored bytes (its block's) and entry.
pub type Stored<'a> = (&'a str, &'a [u8], &'a Entry);

/// Opens a batch of chunks on all cores into `slots` (one per chunk, each
/// `raw_len` long), each checked against its id: the blocks they need are
/// opened once each (in parallel, unless `cache` holds them from the batch
/// before), then the chunks are copied out. `cache` keeps the last blocks
/// for the next batch, which usually goes on in them.
pub fn open_batch(repo: &Repo, chunks: &[Stored], slots: Vec<&mut [u8]>, cache: &mut BlockCache) -> CoreResult<()> {
    use rayon::prelude::*;
    let same = |a: &Stored, b: &Stored| a.2.offset == b.2.offset && a.0 == b.0;
    let mut needed: Vec<Stored> = Vec::new();
    for c in chunks.iter().filter(|c| c.2.in_block()) {
        if !needed.iter().any(|n| same(n, c)) {
            needed.push(*c);
        }
    }
    let found: Vec<Option<Opened>> = needed.iter().map(|(pack, _, e)| cache.find(e, pack)).collect();
    let buffers: Vec<Vec<u8>> =
        found.iter().map(|f| if f.is_none() { cache.take_spare() } else { Vec::new() }).collect();
    let blocks: Vec<Opened> = (needed.par_iter().zip(found).zip(buffers))
        .map(|(((pack, stored, e), found), buffer)| match found {
            Some(opened) => opened,
            None => repo.open_block_into(e, stored, pack, buffer).map(Arc::new),
        })
        .collect();
    let result = chunks.par_iter().zip(slots).try_for_each(|(c, slot)| {
        let (pack, stored, e) = *c;
        if !e.in_block() {
            return repo.decode_blob_into(e, stored, pack, slot);
        }
        let at = needed.iter().position(|n| same(n, c)).expect("every block is opened");
        repo.blob_from_block(e, blocks[at].as_ref().map_err(Clone::clone)?, pack, slot)
    });
    // All through the cache, in order: it keeps the last ones and reuses the others' buffers.
    for (n, opened) in needed.iter().zip(blocks) {
        cache.put(n.2, n.0, opened);
    }
    result
}
