//! Copying intact blobs into new packs: prune's repack of sparse packs and
//! repair's salvage of damaged ones. Each blob is checked against its id
//! first (damage is never copied forward). A blob stored alone, and a block
//! whose blobs are all kept, are copied still sealed; the kept blobs of any
//! other block join a new block, compressed anew.
use super::block::{BlockBuilder, BlockCache};
use super::config::DEFAULT_ZSTD_LEVEL;
use super::index::{PackRecord, DATA_PREFIX};
use super::keys::new_name;
use super::pack::{Entry, PackBuilder, PACK_TARGET};
use super::Repo;
use crate::core::error::CoreResult;

pub struct Repacker<'a> {
    repo: &'a Repo,
    pack: PackBuilder,
    block: BlockBuilder,
    /// The old block last read from (blobs are added in pack order).
    blocks: BlockCache,
    buf: Vec<u8>,
    /// Crash point hit after each pack is written (tests).
    crashpoint: Option<&'static str>,
    pub written: Vec<PackRecord>,
    /// Bytes of the packs written.
    pub bytes: u64,
}

impl<'a> Repacker<'a> {
    pub fn new(repo: &'a Repo, crashpoint: Option<&'static str>) -> Repacker<'a> {
        Repacker {
            repo,
            pack: PackBuilder::with_capacity(),
            block: BlockBuilder::default(),
            blocks: BlockCache::new(1),
            buf: Vec::new(),
            crashpoint,
            written: Vec::new(),
            bytes: 0,
        }
    }

    /// Adds the blob of `entry` from its stored bytes (its block's, for a
    /// blob in a block) in pack `pack`, after checking it against its id.
    pub fn add(&mut self, entry: &Entry, stored: &[u8], pack: &str) -> CoreResult<()> {
        if entry.in_block() {
            self.buf.resize(entry.raw_len as usize, 0);
            self.blocks.decode_into(self.repo, entry, stored, pack, &mut self.buf)?;
            self.block.add(entry.id, entry.kind, &self.buf);
            if self.block.is_full() {
                self.flush_block()?;
            }
            return Ok(());
        }
        self.repo.decode_blob(entry, stored, pack)?;
        self.pack.add(entry.id, entry.kind, entry.compressed, entry.raw_len, stored);
        self.publish_if_full()
    }

    /// Adds every blob of one block (all of them live) by copying the block
    /// still sealed, once each blob is checked against its id.
    pub fn add_whole_block(&mut self, blobs: &[Entry], stored: &[u8], pack: &str) -> CoreResult<()> {
        for e in blobs {
            self.buf.resize(e.raw_len as usize, 0);
            self.blocks.decode_into(self.repo, e, stored, pack, &mut self.buf)?;
        }
        self.pack.add_block(stored, blobs);
        self.publish_if_full()
    }

    fn flush_block(&mut self) -> CoreResult<()> {
        let level = self.repo.block_level().unwrap_or(DEFAULT_ZSTD_LEVEL);
        let sealed = std::mem::take(&mut self.block).seal(self.repo, level);
        self.pack.add_block(&sealed.bytes, &sealed.blobs);
        self.publish_if_full()
    }

    fn publish_if_full(&mut self) -> CoreResult<()> {
        if self.pack.len() >= PACK_TARGET {
            self.publish()?;
        }
        Ok(())
    }

    fn publish(&mut self) -> CoreResult<()> {
        let name = new_name();
        let key = format!("{DATA_PREFIX}{}/{name}", &name[..2]);
        let (bytes, entries) = std::mem::take(&mut self.pack).finish(&self.repo.keys, &key);
        self.bytes += bytes.len() as u64;
        self.repo.storage.put_new_deferred(&key, bytes)?;
        if let Some(point) = self.crashpoint {
            crate::core::crashpoint::hit(point);
        }
        self.written.push(PackRecord { key, entries });
        self.pack = PackBuilder::with_capacity();
        Ok(())
    }

    /// Writes what is left; returns the packs written and their bytes.
    pub fn finish(mut self) -> CoreResult<(Vec<PackRecord>, u64)> {
        if !self.block.is_empty() {
            self.flush_block()?;
        }
        if !self.pack.is_empty() {
            self.publish()?;
        }
        Ok((self.written, self.bytes))
    }
}
