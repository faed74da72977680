//! Pack files: many blobs (sealed chunks) in one object of a few MiB, so an
//! object store sees few, large objects. Layout:
//! `blob…  sealed header  u32 LE header length  "PWBPACK2"`; the header lists
//! every blob and is sealed with the pack's key as context, so a pack copied
//! or swapped under another name does not open.
use super::keys::{BlobId, Keys, ID_LEN};
use crate::core::error::{CoreError, CoreResult};

pub const MAGIC: &[u8; 8] = b"PWBPACK2";
pub const TRAILER_LEN: usize = 4 + MAGIC.len();
/// A pack is written once it holds this much (restic and Kopia use 4-16 MiB).
pub const PACK_TARGET: usize = 8 << 20;

pub const KIND_DATA: u8 = 0;
/// A list of a file's chunks.
pub const KIND_LIST: u8 = 1;

/// One blob of a pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Entry {
    pub id: BlobId,
    pub kind: u8,
    pub compressed: bool,
    pub offset: u32,
    pub stored_len: u32,
    pub raw_len: u32,
}

pub const ENTRY_LEN: usize = ID_LEN + 2 + 12;

impl Entry {
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.id);
        out.push(self.kind);
        out.push(self.compressed as u8);
        out.extend_from_slice(&self.offset.to_le_bytes());
        out.extend_from_slice(&self.stored_len.to_le_bytes());
        out.extend_from_slice(&self.raw_len.to_le_bytes());
    }

    pub fn decode(raw: &[u8]) -> Option<Entry> {
        let u32_at = |at: usize| u32::from_le_bytes(raw[at..at + 4].try_into().expect("4 bytes"));
        if raw.len() != ENTRY_LEN || raw[ID_LEN] > KIND_LIST || raw[ID_LEN + 1] > 1 {
            return None;
        }
        Some(Entry {
            id: raw[..ID_LEN].try_into().expect("id bytes"),
            kind: raw[ID_LEN],
            compressed: raw[ID_LEN + 1] == 1,
            offset: u32_at(ID_LEN + 2),
            stored_len: u32_at(ID_LEN + 6),
            raw_len: u32_at(ID_LEN + 10),
        })
    }

    pub fn end(&self) -> u64 {
        self.offset as u64 + self.stored_len as u64
    }
}

/// Decodes a run of entries, checking that each lies inside `limit` bytes.
pub fn decode_entries(raw: &[u8], limit: u64) -> Option<Vec<Entry>> {
    if !raw.len().is_multiple_of(ENTRY_LEN) {
        return None;
    }
    raw.chunks_exact(ENTRY_LEN).map(|e| Entry::decode(e).filter(|e| e.end() <= limit)).collect()
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
        self.entries.push(Entry { id, kind, compressed, offset, stored_len: sealed.len() as u32, raw_len });
    }

    /// The pack's bytes and its entries; `key` is the object name it will have.
    pub fn finish(mut self, keys: &Keys, key: &str) -> (Vec<u8>, Vec<Entry>) {
        let mut header = Vec::with_capacity(self.entries.len() * ENTRY_LEN);
        self.entries.iter().for_each(|e| e.encode(&mut header));
        let sealed = keys.seal(&header, key.as_bytes());
        self.data.extend_from_slice(&sealed);
        self.data.extend_from_slice(&(sealed.len() as u32).to_le_bytes());
        self.data.extend_from_slice(MAGIC);
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
    if &trailer[4..] != MAGIC {
        return Err(damaged(key, "no pack trailer"));
    }
    let header_len = u32::from_le_bytes(trailer[..4].try_into().expect("4 bytes")) as usize;
    let blobs_len = body_len.checked_sub(header_len).ok_or_else(|| damaged(key, "header longer than the pack"))?;
    let header = keys.open(&pack[blobs_len..body_len], key.as_bytes(), &format!("the header of pack {key}"))?;
    decode_entries(&header, blobs_len as u64).ok_or_else(|| damaged(key, "malformed header"))
}
