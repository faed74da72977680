//! Repository formats 2 and 3: content cut into chunks, each stored once under a
//! keyed hash, compressed, optionally encrypted, gathered into packs with an
//! index; format 3 compresses a pack's data blobs in blocks (block.rs, and
//! docs/repository-format.md). The catalog (snapshots) is kept by
//! the TypeScript layer through `read_object` / `write_object`.
pub mod backup_file;
pub mod block;
pub mod cdc;
pub mod check;
pub mod config;
pub mod damage;
pub mod hints;
pub mod holds;
pub mod index;
pub mod keys;
pub mod lease;
pub mod lists;
pub mod open;
pub mod pack;
pub mod packlist;
pub mod patch;
pub mod prune;
pub mod repack;
pub mod repair;
pub mod restore_file;
pub mod restore_files;
pub mod row_delta;
pub mod storage;
pub mod writer;
pub mod writer_lock;

use crate::core::error::{CoreError, CoreResult};
use config::{Compression, Config};
use index::Index;
use keys::{BlobId, Keys};
use pack::Entry;
use std::sync::{Mutex, RwLock};
use storage::Storage;
use writer::WriterState;

/// An open repository: its storage, keys, index and the packs being written.
pub struct Repo {
    pub storage: Box<dyn Storage>,
    pub config: Config,
    pub keys: Keys,
    /// The id of the key file that opened it (None for a plain repository).
    pub key_id: Option<String>,
    index: RwLock<Index>,
    writer: Mutex<WriterState>,
    /// The writer lock's lease, while this handle holds it (object storage).
    lease: Mutex<Option<lease::Lease>>,
    /// The writer lock's flock, while this handle holds it (a local directory).
    flock: Mutex<Option<crate::core::lock::WriterLock>>,
    /// The holds this handle has published, by owner (see holds.rs).
    holds: Mutex<std::collections::HashMap<String, holds::Hold>>,
}

thread_local! {
    /// One compression context per thread, by level and whether frames carry a checksum.
    static COMPRESSOR: std::cell::RefCell<Option<((i32, bool), zstd::bulk::Compressor<'static>)>> = const { std::cell::RefCell::new(None) };
}

thread_local! {
    /// One decompression context per thread: creating one per chunk took an
    /// eighth of a repository verify's time.
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { std::cell::RefCell::new(None) };
}

fn zstd_decompress(data: &[u8], out: &mut [u8]) -> std::io::Result<usize> {
    DECOMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.is_none() {
            *cell = Some(zstd::bulk::Decompressor::new()?);
        }
        cell.as_mut().expect("set above").decompress_to_buffer(data, out)
    })
}

/// As `zstd_decompress`, into `out`'s capacity (no zeroing: a reused buffer costs nothing to fill).
fn zstd_decompress_vec(data: &[u8], out: &mut Vec<u8>) -> std::io::Result<usize> {
    DECOMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.is_none() {
            *cell = Some(zstd::bulk::Decompressor::new()?);
        }
        cell.as_mut().expect("set above").decompress_to_buffer(data, out)
    })
}

/// `data` compressed at `level`; with `checksum`, the frame ends with the
/// checksum of its content (a compression block's: its damage is found as
/// such, and not as blobs that do not match their ids).
fn zstd_compress(level: i32, checksum: bool, data: &[u8]) -> Vec<u8> {
    COMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.as_ref().is_none_or(|(l, _)| *l != (level, checksum)) {
            let mut compressor = zstd::bulk::Compressor::new(level).expect("zstd level checked");
            compressor.set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(checksum)).expect("a valid parameter");
            *cell = Some(((level, checksum), compressor));
        }
        cell.as_mut().expect("set above").1.compress(data).expect("zstd compresses to a Vec")
    })
}

impl Repo {
    fn new(storage: Box<dyn Storage>, config: Config, keys: Keys, key_id: Option<String>) -> Repo {
        Repo {
            storage,
            config,
            keys,
            key_id,
            index: RwLock::new(Index::default()),
            writer: Mutex::default(),
            lease: Mutex::default(),
            flock: Mutex::default(),
            holds: Mutex::default(),
        }
    }

    pub fn location(&self) -> String {
        self.storage.location()
    }

    /// Reads the index afresh (after another writer, or before writing).
    pub fn reload_index(&self) -> CoreResult<()> {
        let index = Index::load(self.storage.as_ref(), &self.keys)?;
        *self.index.write().unwrap_or_else(|p| p.into_inner()) = index;
        Ok(())
    }

    pub fn index(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(|p| p.into_inner())
    }

    pub fn knows(&self, id: &BlobId) -> bool {
        self.index().contains(id)
    }

    /// Reads and opens a small sealed object (snapshot, catalog record).
    pub fn read_object(&self, key: &str) -> CoreResult<Vec<u8>> {
        let sealed = self.storage.get(key)?;
        self.keys.open(&sealed, key.as_bytes(), &format!("repository object {key}"))
    }

    /// Seals and publishes a small object; it must not exist yet.
    pub fn write_object(&self, key: &str, plain: &[u8]) -> CoreResult<u64> {
        let sealed = self.keys.seal(plain, key.as_bytes());
        self.storage.put_new(key, &sealed)?;
        Ok(sealed.len() as u64)
    }

    /// A chunk compressed (when that helps) and sealed: `(stored bytes, compressed)`.
    pub fn encode_blob(&self, id: &BlobId, data: &[u8]) -> (Vec<u8>, bool) {
        let (body, compressed) = match self.config.compression() {
            Compression::Zstd(level) => {
                let packed = zstd_compress(level, false, data);
                if packed.len() < data.len() {
                    (packed, true)
                } else {
                    (data.to_vec(), false)
                }
            }
            Compression::None => (data.to_vec(), false),
        };
        (self.keys.seal_blob(body, id), compressed)
    }

    /// A blob's content from its stored bytes, checked against its id.
    pub fn decode_blob(&self, entry: &Entry, stored: &[u8], pack: &str) -> CoreResult<Vec<u8>> {
        let mut data = vec![0u8; entry.raw_len as usize];
        self.decode_blob_into(entry, stored, pack, &mut data)?;
        Ok(data)
    }

    /// As `decode_blob`, into `out` (exactly `raw_len` bytes long).
    pub fn decode_blob_into(&self, entry: &Entry, stored: &[u8], pack: &str, out: &mut [u8]) -> CoreResult<()> {
        if entry.in_block() {
            return self.blob_from_block(entry, &self.open_block(entry, stored, pack)?, pack, out);
        }
        let what = || format!("blob {} in pack {pack}", short(&entry.id));
        let opened = self.keys.open_blob(stored, &entry.id, &what())?;
        let body: &[u8] = opened.as_deref().unwrap_or(stored);
        let mismatch = || CoreError::new("ERR_INTEGRITY", format!("{} does not match its id", what()));
        if entry.compressed {
            let len = zstd_decompress(body, out)
                .map_err(|e| CoreError::new("ERR_INTEGRITY", format!("{} does not decompress: {e}", what())))?;
            if len != out.len() {
                return Err(mismatch());
            }
        } else if body.len() == out.len() {
            out.copy_from_slice(body);
        } else {
            return Err(mismatch());
        }
        if out.len() != entry.raw_len as usize || self.keys.id(out) != entry.id {
            return Err(mismatch());
        }
        Ok(())
    }

    /// Reads one blob by id.
    pub fn read_blob(&self, id: &BlobId) -> CoreResult<Vec<u8>> {
        let (pack, entry) = self.locate_blob(id)?;
        let stored = self.storage.get_range(&pack, entry.offset as u64, entry.stored_len as usize)?;
        self.decode_blob(&entry, &stored, &pack)
    }

    /// Reads several blobs at once (an object store's requests in flight together).
    pub fn read_blobs(&self, ids: &[BlobId]) -> CoreResult<Vec<Vec<u8>>> {
        let located = ids.iter().map(|id| self.locate_blob(id)).collect::<CoreResult<Vec<_>>>()?;
        let reads: Vec<(&str, u64, usize)> =
            located.iter().map(|(pack, e)| (pack.as_str(), e.offset as u64, e.stored_len as usize)).collect();
        let stored = self.storage.get_ranges(&reads)?;
        // Neighbouring blobs of one block (a file's hints) open it once.
        let mut blocks = block::BlockCache::new(1);
        let mut decode = |(pack, entry): &(String, Entry), bytes: Vec<u8>| {
            let mut data = vec![0u8; entry.raw_len as usize];
            blocks.decode_into(self, entry, &bytes, pack, &mut data).map(|()| data)
        };
        located.iter().zip(stored).map(|(at, bytes)| decode(at, bytes)).collect()
    }

    fn locate_blob(&self, id: &BlobId) -> CoreResult<(String, Entry)> {
        let index = self.index();
        index.get(id).map(|(p, e)| (p.to_string(), e)).ok_or_else(|| {
            if index.is_lost(id) {
                return damage::damaged_blob(self, id);
            }
            CoreError::new("ERR_MISSING_FILE", format!("blob {} is not in the repository's index", short(id)))
        })
    }
}

pub use keys::hex;

/// A blob id for messages.
pub fn short(id: &BlobId) -> String {
    hex(&id[..8])
}

pub fn parse_id(text: &str) -> CoreResult<BlobId> {
    keys::unhex(text)
        .and_then(|raw| raw.try_into().ok())
        .ok_or_else(|| CoreError::new("ERR_INVALID_ARG", format!("{text:?} is not a blob id")))
}
#[cfg(test)]
pub(crate) mod tests;
#[cfg(test)]
mod tests_blocks;
