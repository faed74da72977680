//! A file's chunks in order, as list blobs: each names up to `LIST_ENTRIES`
//! chunks by id and length, and is itself stored (and deduplicated) as a blob.
use super::keys::{BlobId, ID_LEN};
use super::pack::KIND_LIST;
use super::Repo;
use crate::core::error::{CoreError, CoreResult};

/// A list blob names at most this many chunks (256 MiB of heap at 64 KiB
/// runs), so a change at the end of a large file rewrites one short list.
pub const LIST_ENTRIES: usize = 4096;
pub const LIST_ENTRY_LEN: usize = ID_LEN + 4;

/// A chunk of a file: its id and length.
pub type ChunkRef = (BlobId, u32);

pub fn store_lists(repo: &Repo, refs: &[ChunkRef]) -> CoreResult<Vec<BlobId>> {
    refs.chunks(LIST_ENTRIES)
        .map(|part| {
            let mut raw = Vec::with_capacity(part.len() * LIST_ENTRY_LEN);
            for (id, len) in part {
                raw.extend_from_slice(id);
                raw.extend_from_slice(&len.to_le_bytes());
            }
            repo.store_blob(KIND_LIST, &raw).map(|(id, _)| id)
        })
        .collect()
}

/// The chunks a list blob names.
pub fn decode_list(raw: &[u8]) -> Option<Vec<ChunkRef>> {
    if !raw.len().is_multiple_of(LIST_ENTRY_LEN) {
        return None;
    }
    Some(
        raw.chunks_exact(LIST_ENTRY_LEN)
            .map(|e| (e[..ID_LEN].try_into().expect("id"), u32::from_le_bytes(e[ID_LEN..].try_into().expect("len"))))
            .collect(),
    )
}

/// Reads a list blob.
pub fn read_list(repo: &Repo, id: &BlobId) -> CoreResult<Vec<ChunkRef>> {
    let raw = repo.read_blob(id)?;
    decode_list(&raw)
        .ok_or_else(|| CoreError::new("ERR_INTEGRITY", format!("chunk list {} is malformed", super::short(id))))
}
