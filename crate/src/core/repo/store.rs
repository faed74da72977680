//! Backing a file up into the repository: cut into chunks (heaps into
//! page-aligned runs, other files by content), each stored once; the file
//! becomes a short list of list blobs naming its chunks in order.
use super::keys::{BlobId, ID_LEN};
use super::pack::{KIND_DATA, KIND_LIST};
use super::Repo;
use crate::core::error::{CoreError, CoreResult};
use crate::core::fsio::{for_each_chunk_of, open_read};
use crate::core::page::{max_page_lsn, PAGE_SIZE};
use fastcdc::v2020::{Normalization, StreamCDC};
use rayon::prelude::*;
use std::path::Path;

/// Bytes cut and stored at once (spread over all cores).
const BATCH: usize = 2 << 20;
/// A list blob names at most this many chunks (256 MiB of heap at 64 KiB
/// runs), so a change at the end of a large file rewrites one short list.
pub const LIST_ENTRIES: usize = 4096;
pub const LIST_ENTRY_LEN: usize = ID_LEN + 4;

/// A chunk of a file: its id and length.
pub type ChunkRef = (BlobId, u32);

#[derive(Debug, Clone, Default)]
pub struct StoredFile {
    pub len: u64,
    pub lists: Vec<BlobId>,
    /// Highest page LSN (heaps only).
    pub max_lsn: u64,
    pub chunks: u64,
    pub new_chunks: u64,
}

fn store_batch(repo: &Repo, chunks: &[&[u8]], out: &mut StoredFile, refs: &mut Vec<ChunkRef>) -> CoreResult<()> {
    let stored: Vec<(BlobId, bool)> =
        chunks.par_iter().map(|c| repo.store_blob(KIND_DATA, c)).collect::<CoreResult<_>>()?;
    for (chunk, (id, new)) in chunks.iter().zip(stored) {
        refs.push((id, chunk.len() as u32));
        out.chunks += 1;
        out.new_chunks += new as u64;
    }
    Ok(())
}

/// The repository's content-defined chunker over `source` (its parameters and secret seed).
pub fn content_defined<R: std::io::Read>(repo: &Repo, source: R) -> StreamCDC<R> {
    let c = repo.config.chunking;
    StreamCDC::with_level_and_seed(source, c.cdc_min, c.cdc_avg, c.cdc_max, Normalization::Level1, repo.keys.chunker_seed())
}

/// Stores the file at `path`; `heap` for a page-aligned heap.
pub fn store_file(repo: &Repo, path: &Path, heap: bool) -> CoreResult<StoredFile> {
    let mut out = StoredFile::default();
    let mut refs = Vec::new();
    let chunking = repo.config.chunking;
    if heap {
        let run = chunking.heap_run_pages as usize * PAGE_SIZE;
        out.len = for_each_chunk_of(path, (BATCH / run).max(1) * run, |buf| {
            out.max_lsn = out.max_lsn.max(max_page_lsn(buf));
            let runs: Vec<&[u8]> = buf.chunks(run).collect();
            store_batch(repo, &runs, &mut out, &mut refs)?;
            crate::core::cancel::advance(buf.len() as u64);
            Ok(())
        })?;
    } else {
        let cdc = content_defined(repo, open_read(path)?);
        let mut batch: Vec<Vec<u8>> = Vec::new();
        let mut batch_bytes = 0;
        let mut flush = |batch: &mut Vec<Vec<u8>>, out: &mut StoredFile| -> CoreResult<()> {
            crate::core::cancel::check()?;
            let slices: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
            store_batch(repo, &slices, out, &mut refs)?;
            crate::core::cancel::advance(batch.iter().map(|c| c.len() as u64).sum());
            batch.clear();
            Ok(())
        };
        for chunk in cdc {
            let chunk = chunk.map_err(|e| CoreError::new("EIO", format!("cannot read {}: {e}", path.display())))?;
            out.len += chunk.length as u64;
            batch_bytes += chunk.length;
            batch.push(chunk.data);
            if batch_bytes >= BATCH {
                flush(&mut batch, &mut out)?;
                batch_bytes = 0;
            }
        }
        flush(&mut batch, &mut out)?;
    }
    out.lists = store_lists(repo, &refs)?;
    Ok(out)
}

fn store_lists(repo: &Repo, refs: &[ChunkRef]) -> CoreResult<Vec<BlobId>> {
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
    decode_list(&raw).ok_or_else(|| {
        CoreError::new("ERR_INTEGRITY", format!("chunk list {} is malformed", super::short(id)))
    })
}
