//! Restoring a file from the repository: its chunks fetched in ranges (the
//! chunks of one file mostly lie side by side in a pack), opened and checked
//! on all cores, and written in order.
use super::keys::BlobId;
use super::pack::Entry;
use super::store::{read_list, ChunkRef};
use super::{short, Repo};
use crate::core::error::{CoreError, CoreResult};
use crate::core::fsio::{create_new, Sink};
use rayon::prelude::*;
use std::path::Path;

/// Chunks fetched and written at once (about 2 MiB of heap runs: memory stays
/// flat, and rayon still spreads each batch over every core).
const BATCH: usize = 32;
/// Neighbouring chunks are read in one request when the gap is this small.
const MAX_GAP: u64 = 64 << 10;

/// One read of a pack and the chunks inside it.
struct Range {
    pack: String,
    start: u64,
    end: u64,
    items: Vec<(usize, Entry)>,
}

fn locate(repo: &Repo, refs: &[ChunkRef]) -> CoreResult<Vec<Range>> {
    let index = repo.index();
    let mut ranges: Vec<Range> = Vec::new();
    for (at, (id, len)) in refs.iter().enumerate() {
        let (pack, entry) = index.get(id).ok_or_else(|| missing_blob(repo, id))?;
        if entry.raw_len != *len {
            return Err(CoreError::new("ERR_INTEGRITY", format!("chunk {} has the wrong length", short(id))));
        }
        match ranges.last_mut() {
            Some(r) if r.pack == pack && entry.offset as u64 >= r.end && entry.offset as u64 <= r.end + MAX_GAP => {
                r.end = entry.end();
                r.items.push((at, entry));
            }
            _ => ranges.push(Range { pack: pack.to_string(), start: entry.offset as u64, end: entry.end(), items: vec![(at, entry)] }),
        }
    }
    Ok(ranges)
}

pub fn missing_blob(repo: &Repo, id: &BlobId) -> CoreError {
    CoreError::new(
        "ERR_MISSING_FILE",
        format!("chunk {} is missing from repository {} (no index lists it)", short(id), repo.location()),
    )
}

/// The content of `refs`, in order.
pub fn fetch(repo: &Repo, refs: &[ChunkRef]) -> CoreResult<Vec<Vec<u8>>> {
    let ranges = locate(repo, refs)?;
    let fetched: Vec<Vec<u8>> = ranges
        .par_iter()
        .map(|r| repo.storage.get_range(&r.pack, r.start, (r.end - r.start) as usize))
        .collect::<CoreResult<_>>()?;
    let jobs: Vec<(usize, &Range, &Vec<u8>, Entry)> = ranges
        .iter()
        .zip(&fetched)
        .flat_map(|(r, bytes)| r.items.iter().map(move |(at, e)| (*at, r, bytes, *e)))
        .collect();
    let mut out: Vec<(usize, Vec<u8>)> = jobs
        .par_iter()
        .map(|(at, r, bytes, e)| {
            let from = (e.offset as u64 - r.start) as usize;
            repo.decode_blob(e, &bytes[from..from + e.stored_len as usize], &r.pack).map(|data| (*at, data))
        })
        .collect::<CoreResult<_>>()?;
    out.sort_by_key(|(at, _)| *at);
    Ok(out.into_iter().map(|(_, data)| data).collect())
}

/// Writes the file made of `lists` to the new file `dest` (fsynced), checking
/// every chunk and the length; with `hash`, returns its BLAKE3.
pub fn restore_file(repo: &Repo, lists: &[BlobId], len: u64, dest: &Path, hash: bool) -> CoreResult<Option<String>> {
    let mut sink = Sink::new(create_new(dest)?, dest);
    let mut hasher = hash.then(blake3::Hasher::new);
    let mut written = 0u64;
    for list in lists {
        let refs = read_list(repo, list)?;
        for batch in refs.chunks(BATCH) {
            crate::core::cancel::check()?;
            for data in fetch(repo, batch)? {
                sink.append(&data)?;
                if let Some(h) = hasher.as_mut() {
                    h.update(&data);
                }
                written += data.len() as u64;
            }
        }
    }
    if written != len {
        return Err(CoreError::new(
            "ERR_INTEGRITY",
            format!("{} restored as {written} bytes but its backup says {len}", dest.display()),
        ));
    }
    sink.finish()?;
    Ok(hasher.map(|h| h.finalize().to_hex().to_string()))
}
