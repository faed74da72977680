//! Backing a file up into the repository: cut into chunks (heaps into
//! page-aligned runs, other files by content), each stored once; the file
//! becomes a short list of list blobs naming its chunks in order.
use super::cdc::{for_each_round, read_at, Params, Source, Split};
use super::hints::{fast_hash, store_hints, FastHash, Parent};
use super::keys::BlobId;
use super::lists::{store_lists, ChunkRef};
use super::pack::KIND_DATA;
use super::Repo;
use crate::core::error::{CoreError, CoreResult};
use crate::core::fsio::{buffer, for_each_chunk_ahead, open_read};
use crate::core::page::{max_page_lsn, PAGE_SIZE};
use rayon::prelude::*;
use std::path::Path;

/// Bytes cut and stored at once (spread over all cores).
const BATCH: usize = 2 << 20;
#[derive(Debug, Clone, Default)]
pub struct StoredFile {
    pub len: u64,
    pub lists: Vec<BlobId>,
    /// Highest page LSN (heaps only).
    pub max_lsn: u64,
    pub chunks: u64,
    pub new_chunks: u64,
    /// Chunks whose id came from the parent's, unhashed (their fast hash matched).
    pub reused: u64,
    /// The lists of the file's change hints, when asked for.
    pub hints: Option<Vec<BlobId>>,
}

/// How a file is stored: cut into page runs (a heap) or by content, and
/// what its parent backup holds of it (to reuse unchanged chunks' ids).
#[derive(Default)]
pub struct FileOptions {
    pub heap: bool,
    pub parent: Option<Parent>,
    /// Store the change hints of the file (for the next increment).
    pub hints: bool,
}

/// A chunk cut from the file: its bytes and its position in the file's chunks.
struct Cut<'a> {
    index: usize,
    data: &'a [u8],
}

/// Stores a batch of chunks: with a parent, each keeps the parent's id when
/// its fast hash says it did not change (checked on this thread: far
/// cheaper than handing the chunk to another); the rest are hashed for their
/// ids on all cores and stored unless the repository has them.
fn store_batch(
    repo: &Repo,
    options: &FileOptions,
    chunks: &[Cut],
    out: &mut StoredFile,
    refs: &mut Vec<ChunkRef>,
    hashes: &mut Vec<FastHash>,
) -> CoreResult<()> {
    let store = |c: &Cut| {
        let hash = if options.hints { fast_hash(c.data) } else { 0 };
        repo.store_blob(KIND_DATA, c.data).map(|(id, new)| (id, Some(new), hash))
    };
    let stored: Vec<(BlobId, Option<bool>, FastHash)> = match &options.parent {
        None => chunks.par_iter().map(store).collect::<CoreResult<_>>()?,
        Some(parent) => {
            let mut stored: Vec<Option<(BlobId, Option<bool>, FastHash)>> = chunks
                .iter()
                .map(|c| {
                    let hash = fast_hash(c.data);
                    let len = c.data.len();
                    let id =
                        if options.heap { parent.at(repo, c.index, hash, len) } else { parent.find(repo, hash, len) };
                    id.map(|id| (id, None, hash))
                })
                .collect();
            let changed: Vec<usize> = (0..chunks.len()).filter(|&i| stored[i].is_none()).collect();
            let fresh: Vec<_> = changed.par_iter().map(|&i| store(&chunks[i])).collect::<CoreResult<_>>()?;
            for (i, result) in changed.into_iter().zip(fresh) {
                stored[i] = Some(result);
            }
            stored.into_iter().map(|s| s.expect("every chunk reused or stored")).collect()
        }
    };
    for (chunk, (id, new, hash)) in chunks.iter().zip(stored) {
        refs.push((id, chunk.data.len() as u32));
        hashes.push(hash);
        out.chunks += 1;
        out.new_chunks += (new == Some(true)) as u64;
        out.reused += new.is_none() as u64;
    }
    Ok(())
}

/// Stores the file at `path`.
pub fn store_file(repo: &Repo, path: &Path, options: &FileOptions) -> CoreResult<StoredFile> {
    let mut out = StoredFile::default();
    let mut refs = Vec::new();
    let mut hashes = Vec::new();
    let chunking = repo.config.chunking;
    if options.heap {
        let run = chunking.heap_run_pages as usize * PAGE_SIZE;
        // Read ahead on a thread of its own: the next batch comes from the page
        // cache while every core cuts and compresses this one.
        out.len = for_each_chunk_ahead(open_read(path)?, path, (BATCH / run).max(1) * run, |buf| {
            out.max_lsn = out.max_lsn.max(max_page_lsn(buf));
            let first = refs.len();
            let runs: Vec<Cut> = buf.chunks(run).enumerate().map(|(i, data)| Cut { index: first + i, data }).collect();
            store_batch(repo, options, &runs, &mut out, &mut refs, &mut hashes)?;
            crate::core::cancel::advance(buf.len() as u64);
            Ok(())
        })?;
    } else {
        let file = open_read(path)?;
        let len = file.metadata().map_err(|e| CoreError::io("stat", path, e))?.len();
        let source = Source { file: &file, path, len };
        let params = Params::of(repo);
        let mut buf = buffer(BATCH.max(chunking.cdc_max as usize));
        for_each_round(
            params,
            &source,
            Split::on(rayon::current_num_threads()),
            options.parent.as_ref(),
            |start, cuts| {
                // Batches of whole chunks, up to BATCH bytes each (or one larger chunk).
                let mut from = start;
                let mut next = 0;
                while next < cuts.len() {
                    let first = next;
                    next += 1;
                    while next < cuts.len() && cuts[next] - from <= BATCH as u64 {
                        next += 1;
                    }
                    let bytes = &mut buf[..(cuts[next - 1] - from) as usize];
                    read_at(&source, bytes, from)?;
                    let mut at = from;
                    let chunks: Vec<Cut> = (first..next)
                        .map(|i| {
                            let data = &bytes[(at - from) as usize..(cuts[i] - from) as usize];
                            at = cuts[i];
                            Cut { index: refs.len() + i - first, data }
                        })
                        .collect();
                    store_batch(repo, options, &chunks, &mut out, &mut refs, &mut hashes)?;
                    crate::core::cancel::advance(bytes.len() as u64);
                    from = cuts[next - 1];
                }
                Ok(())
            },
        )?;
        out.len = len;
    }
    out.lists = store_lists(repo, &refs)?;
    if options.hints {
        out.hints = Some(store_hints(repo, &hashes)?);
    }
    Ok(out)
}
