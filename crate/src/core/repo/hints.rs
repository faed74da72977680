//! Change hints: the XXH3-128 of every chunk of a stored file, in the
//! order its lists name them, kept as ordinary data chunks named by lists
//! of their own (`hints` in the snapshot). An incremental backup hashes each
//! heap run or content-defined chunk with XXH3 (an order of magnitude faster
//! than the keyed BLAKE3 of a chunk id) and reuses the parent's chunk id
//! where the hash matches: the same trust in XXH3-128 to detect change as
//! the content maps of directory increments (pagemap.rs). Hints are
//! advisory: a parent without them, or with unreadable ones, means every
//! chunk is hashed for its id, as before.
use super::keys::BlobId;
use super::lists::{decode_list, store_lists, ChunkRef, LIST_ENTRIES};
use super::pack::KIND_DATA;
use super::Repo;
use crate::core::error::CoreResult;
use std::collections::HashMap;
use xxhash_rust::xxh3::xxh3_128;

pub type FastHash = u128;
const HASH_LEN: usize = 16;

pub fn fast_hash(chunk: &[u8]) -> FastHash {
    xxh3_128(chunk)
}

/// Stores the hashes of a file's chunks: pieces of `LIST_ENTRIES` hashes,
/// aligned with the file's lists, so an unchanged part of a file dedups to
/// the same piece.
pub fn store_hints(repo: &Repo, hashes: &[FastHash]) -> CoreResult<Vec<BlobId>> {
    let mut refs = Vec::with_capacity(hashes.len().div_ceil(LIST_ENTRIES));
    for piece in hashes.chunks(LIST_ENTRIES) {
        let raw: Vec<u8> = piece.iter().flat_map(|h| h.to_le_bytes()).collect();
        let (id, _) = repo.store_blob(KIND_DATA, &raw)?;
        refs.push((id, raw.len() as u32));
    }
    store_lists(repo, &refs)
}

/// What the parent backup stored of the same file: its chunks and their hashes.
pub struct Parent {
    chunks: Vec<ChunkRef>,
    hashes: Vec<FastHash>,
    /// Hash to position, for content-defined chunks (which move).
    by_hash: HashMap<FastHash, usize>,
}

impl Parent {
    /// Reads the parent's lists and hints; None when the hints are missing,
    /// unreadable or do not match the lists (then nothing is reused).
    pub fn load(repo: &Repo, lists: &[BlobId], hints: &[BlobId], moving: bool) -> Option<Parent> {
        // Two rounds of reads in parallel (each a request to an object store): the lists, then the hashes.
        let all: Vec<BlobId> = lists.iter().chain(hints).copied().collect();
        let mut decoded = repo.read_blobs(&all).ok()?.into_iter().map(|raw| decode_list(&raw));
        let chunks: Vec<ChunkRef> = decoded.by_ref().take(lists.len()).collect::<Option<Vec<_>>>()?.concat();
        let pieces: Vec<ChunkRef> = decoded.collect::<Option<Vec<_>>>()?.concat();
        let hashes = read_hashes(repo, &pieces)?;
        if hashes.len() != chunks.len() {
            return None;
        }
        let by_hash = if moving { hashes.iter().copied().zip(0..).collect() } else { HashMap::new() };
        Some(Parent { chunks, hashes, by_hash })
    }

    /// The parent's chunk at position `index` of a file cut at fixed offsets,
    /// when it had this hash and length and the repository still holds it.
    pub fn at(&self, repo: &Repo, index: usize, hash: FastHash, len: usize) -> Option<BlobId> {
        let (id, stored_len) = *self.chunks.get(index)?;
        (self.hashes[index] == hash && stored_len as usize == len && repo.knows(&id)).then_some(id)
    }

    /// The parent's chunk of this hash and length anywhere in the file.
    pub fn find(&self, repo: &Repo, hash: FastHash, len: usize) -> Option<BlobId> {
        let (id, _) = self.chunks[self.position(hash, len)?];
        repo.knows(&id).then_some(id)
    }

    /// Where the parent's chunk of this hash and length was among its chunks.
    pub fn position(&self, hash: FastHash, len: usize) -> Option<usize> {
        let at = *self.by_hash.get(&hash)?;
        (self.chunks[at].1 as usize == len).then_some(at)
    }

    /// The hash and length of the parent's chunk at `index`.
    pub fn entry(&self, index: usize) -> Option<(FastHash, usize)> {
        Some((*self.hashes.get(index)?, self.chunks[index].1 as usize))
    }

    /// The id of the parent's chunk at `index`.
    pub fn id(&self, index: usize) -> Option<BlobId> {
        self.chunks.get(index).map(|(id, _)| *id)
    }

    pub fn count(&self) -> usize {
        self.chunks.len()
    }

    /// A parent of these chunks and hashes (tests of the chunker).
    #[cfg(test)]
    pub fn of(chunks: Vec<ChunkRef>, hashes: Vec<FastHash>) -> Parent {
        let by_hash = hashes.iter().copied().zip(0..).collect();
        Parent { chunks, hashes, by_hash }
    }
}

fn read_hashes(repo: &Repo, pieces: &[ChunkRef]) -> Option<Vec<FastHash>> {
    let ids: Vec<BlobId> = pieces.iter().map(|(id, _)| *id).collect();
    let mut hashes = Vec::new();
    for (raw, (_, len)) in repo.read_blobs(&ids).ok()?.into_iter().zip(pieces) {
        if raw.len() != *len as usize || raw.len() % HASH_LEN != 0 {
            return None;
        }
        hashes.extend(raw.chunks_exact(HASH_LEN).map(|h| u128::from_le_bytes(h.try_into().expect("16 bytes"))));
    }
    Some(hashes)
}
