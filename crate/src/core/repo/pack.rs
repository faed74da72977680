//! Pack files: many blobs (sealed chunks) in one object of a few MiB, so an
//! object store sees few, large objects. Layout:
//! `unit…  sealed header  u32 LE header length  "PWBPACK2"|"PWBPACK3"`; a
//! unit is one sealed blob, or (format 3) one sealed compression block of
//! several blobs (block.rs). The header lists every blob and is sealed with
//! the pack's key as context, so a pack copied or swapped under another
//! name does not open. A pack whose header names no block keeps the
//! format-2 magic and entries, byte for byte what format 2 wrote.
use super::block::MAX_BLOCK;
use super::keys::{BlobId, Keys, ID_LEN};
use crate::core::error::{CoreError, CoreResult};

pub const MAGIC: &[u8; 8] = b"PWBPACK2";
/// A pack whose header has format-3 entries (some blobs in blocks).
pub const MAGIC3: &[u8; 8] = b"PWBPACK3";
pub const TRAILER_LEN: usize = 4 + MAGIC.len();
/// A pack is written once it holds this much (restic and Kopia use 4-16 MiB).
pub const PACK_TARGET: usize = 8 << 20;

pub const KIND_DATA: u8 = 0;
/// A list of a file's chunks.
pub const KIND_LIST: u8 = 1;

/// One blob of a pack. A blob in a compression block has the block's
/// `offset` and `stored_len` (the unit read), and `inner` and `raw_len`
/// place it in the block's `block_len` decompressed bytes; a blob stored
/// alone has `block_len` 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Entry {
    pub id: BlobId,
    pub kind: u8,
    pub compressed: bool,
    pub offset: u32,
    pub stored_len: u32,
    pub raw_len: u32,
    pub inner: u32,
    pub block_len: u32,
}

/// A format-2 entry (no block fields).
pub const ENTRY_LEN: usize = ID_LEN + 2 + 12;
/// A format-3 entry: a format-2 entry, then `inner` and `block_len`.
pub const ENTRY3_LEN: usize = ENTRY_LEN + 8;
/// The codec byte of a blob in a zstd compression block.
const CODEC_BLOCK: u8 = 2;

impl Entry {
    /// An entry of a blob stored alone.
    pub fn single(id: BlobId, kind: u8, compressed: bool, offset: u32, stored_len: u32, raw_len: u32) -> Entry {
        Entry { id, kind, compressed, offset, stored_len, raw_len, inner: 0, block_len: 0 }
    }

    pub fn in_block(&self) -> bool {
        self.block_len > 0
    }

    /// Encodes as format 2 or (`v3`) format 3; a block entry needs `v3`.
    pub fn encode(&self, out: &mut Vec<u8>, v3: bool) {
        debug_assert!(v3 || !self.in_block());
        out.extend_from_slice(&self.id);
        out.push(self.kind);
        out.push(if self.in_block() { CODEC_BLOCK } else { self.compressed as u8 });
        out.extend_from_slice(&self.offset.to_le_bytes());
        out.extend_from_slice(&self.stored_len.to_le_bytes());
        out.extend_from_slice(&self.raw_len.to_le_bytes());
        if v3 {
            out.extend_from_slice(&self.inner.to_le_bytes());
            out.extend_from_slice(&self.block_len.to_le_bytes());
        }
    }

    pub fn decode(raw: &[u8]) -> Option<Entry> {
        let u32_at = |at: usize| u32::from_le_bytes(raw[at..at + 4].try_into().expect("4 bytes"));
        let v3 = raw.len() == ENTRY3_LEN;
        let codec = *raw.get(ID_LEN + 1)?;
        if !(v3 || raw.len() == ENTRY_LEN) || raw[ID_LEN] > KIND_LIST || codec > if v3 { CODEC_BLOCK } else { 1 } {
            return None;
        }
        let (inner, block_len) = if v3 { (u32_at(ENTRY_LEN), u32_at(ENTRY_LEN + 4)) } else { (0, 0) };
        let e = Entry {
            id: raw[..ID_LEN].try_into().expect("id bytes"),
            kind: raw[ID_LEN],
            compressed: codec >= 1,
            offset: u32_at(ID_LEN + 2),
            stored_len: u32_at(ID_LEN + 6),
            raw_len: u32_at(ID_LEN + 10),
            inner,
            block_len,
        };
        let fits = (e.inner as u64 + e.raw_len as u64) <= e.block_len as u64 && e.block_len as usize <= MAX_BLOCK;
        let valid = if codec == CODEC_BLOCK { fits } else { inner == 0 && block_len == 0 };
        valid.then_some(e)
    }

    pub fn end(&self) -> u64 {
        self.offset as u64 + self.stored_len as u64
    }

    /// This blob's share of the stored bytes (of its block's, by raw length).
    pub fn stored_share(&self) -> u64 {
        if self.in_block() {
            (self.stored_len as u64 * self.raw_len as u64).div_ceil(self.block_len as u64)
        } else {
            self.stored_len as u64
        }
    }
}

/// Whether entries need the format-3 encoding (some blob is in a block).
pub fn needs_v3<'a>(entries: impl IntoIterator<Item = &'a Entry>) -> bool {
    entries.into_iter().any(Entry::in_block)
}

/// Decodes a run of entries of `entry_len` bytes each, checking that each lies inside `limit` bytes.
pub fn decode_entries(raw: &[u8], entry_len: usize, limit: u64) -> Option<Vec<Entry>> {
    if !raw.len().is_multiple_of(entry_len) {
        return None;
    }
    raw.chunks_exact(entry_len).map(|e| Entry::decode(e).filter(|e| e.end() <= limit)).collect()
}

/// A pack being filled.
#[derive(Default)]
pub struct PackBuilder {
    data: Vec<u8>,
    entries: Vec<Entry>,
}

impl PackBuilder {
    /// A builder whose buffer never grows past a pack (doubling would reach 16 MiB).
    pub fn with_capacity() -> PackBuilder {
        Self::reusing(Vec::new())
    }

    /// A builder in a published pack's buffer (no new mapping to fault in).
    pub fn reusing(mut buffer: Vec<u8>) -> PackBuilder {
        buffer.clear();
        buffer.reserve_exact(PACK_TARGET + (1 << 20));
        PackBuilder { data: buffer, entries: Vec::new() }
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether its buffer is reserved (a default builder has none yet).
    pub fn has_buffer(&self) -> bool {
        self.data.capacity() > 0
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn add(&mut self, id: BlobId, kind: u8, compressed: bool, raw_len: u32, sealed: &[u8]) {
        let offset = self.data.len() as u32;
        self.data.extend_from_slice(sealed);
        self.entries.push(Entry::single(id, kind, compressed, offset, sealed.len() as u32, raw_len));
    }

    /// Adds a sealed compression block and its blobs (entries whose `offset`
    /// and `stored_len` are set here).
    pub fn add_block(&mut self, sealed: &[u8], blobs: &[Entry]) {
        let offset = self.data.len() as u32;
        self.data.extend_from_slice(sealed);
        let stored_len = sealed.len() as u32;
        self.entries.extend(blobs.iter().map(|e| Entry { offset, stored_len, ..*e }));
    }

    /// The pack's bytes and its entries; `key` is the object name it will have.
    pub fn finish(mut self, keys: &Keys, key: &str) -> (Vec<u8>, Vec<Entry>) {
        let v3 = needs_v3(&self.entries);
        let mut header = Vec::with_capacity(self.entries.len() * ENTRY3_LEN);
        self.entries.iter().for_each(|e| e.encode(&mut header, v3));
        let sealed = keys.seal(&header, key.as_bytes());
        self.data.extend_from_slice(&sealed);
        self.data.extend_from_slice(&(sealed.len() as u32).to_le_bytes());
        self.data.extend_from_slice(if v3 { MAGIC3 } else { MAGIC });
        (self.data, self.entries)
    }
}

fn damaged(key: &str, why: &str) -> CoreError {
    CoreError::new("ERR_INTEGRITY", format!("pack {key} is damaged: {why}"))
}

/// The entries of a whole pack object, checked against its sealed header.
pub fn parse(keys: &Keys, key: &str, pack: &[u8]) -> CoreResult<Vec<Entry>> {
    let body_len = pack.len().checked_sub(TRAILER_LEN).ok_or_else(|| damaged(key, "shorter than its trailer"))?;
    let trailer = &pack[body_len..];
    let entry_len = match &trailer[4..] {
        m if m == MAGIC => ENTRY_LEN,
        m if m == MAGIC3 => ENTRY3_LEN,
        _ => return Err(damaged(key, "no pack trailer")),
    };
    let header_len = u32::from_le_bytes(trailer[..4].try_into().expect("4 bytes")) as usize;
    let blobs_len = body_len.checked_sub(header_len).ok_or_else(|| damaged(key, "header longer than the pack"))?;
    let header = keys.open(&pack[blobs_len..body_len], key.as_bytes(), &format!("the header of pack {key}"))?;
    decode_entries(&header, entry_len, blobs_len as u64).ok_or_else(|| damaged(key, "malformed header"))
}
