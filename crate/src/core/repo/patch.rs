//! Delta restore of one file from the repository: only the chunks that the
//! destination's copy does not already hold are fetched (so a remote
//! repository sends only what is rewritten). A heap is compared run by run
//! (the destination's runs hashed into chunk ids) and patched in place; any
//! other file is cut by the repository's own chunker, and when it differs it
//! is rebuilt beside it from its own chunks and the fetched ones.
use super::cdc::{for_each_round, read_at, Params, Source, Split};
use super::hints::{fast_hash, Parent};
use super::keys::BlobId;
use super::lists::{read_list, ChunkRef};
use super::restore_file::{for_each_chunk, Chunks};
use super::Repo;
use crate::core::error::{CoreError, CoreResult};
use crate::core::fsio::{self, create_new};
use crate::core::page::PAGE_SIZE;
use crate::core::patch::PatchOutcome;
use rayon::prelude::*;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

/// Runs compared at once (2 MiB of heap at 64 KiB runs).
const PATCH_BATCH: usize = 32;

/// What a delta restore of one repository file did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RepoPatch {
    pub outcome: PatchOutcome,
    /// Rebuilt into `temp` (to be renamed over the destination).
    pub rebuilt: bool,
    pub chunks_fetched: u64,
    pub bytes_fetched: u64,
}

/// Every chunk of the file `lists` name, with its offset.
fn chunks_of(repo: &Repo, lists: &[BlobId]) -> CoreResult<Vec<(ChunkRef, u64)>> {
    let mut out = Vec::new();
    let mut offset = 0u64;
    for list in lists {
        for chunk in read_list(repo, list)? {
            out.push((chunk, offset));
            offset += chunk.1 as u64;
        }
    }
    Ok(out)
}

/// Fetches `wanted` (in file order) and writes each chunk where `place` says.
fn fetch_into(
    repo: &Repo,
    wanted: &[(ChunkRef, u64)],
    mut place: impl FnMut(&[u8], u64) -> CoreResult<()>,
) -> CoreResult<u64> {
    let refs: Vec<ChunkRef> = wanted.iter().map(|(r, _)| *r).collect();
    let mut next = 0usize;
    for_each_chunk(repo, Chunks::Refs(&refs), |mut data| {
        while !data.is_empty() {
            let ((_, len), offset) = wanted[next];
            let (chunk, rest) = data.split_at(len as usize);
            place(chunk, offset)?;
            data = rest;
            next += 1;
        }
        Ok(())
    })
}

fn open_rw(path: &Path) -> CoreResult<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| CoreError::io("open", path, e))
}

fn wrong_length(path: &Path, got: u64, len: u64) -> CoreError {
    CoreError::new("ERR_INTEGRITY", format!("{} restored as {got} bytes but its backup says {len}", path.display()))
}

/// A heap: its runs compared with the destination's, differing runs fetched, and their differing pages written in place.
fn patch_heap(
    repo: &Repo,
    chunks: &[(ChunkRef, u64)],
    len: u64,
    dest: &Path,
    known: Option<&Parent>,
) -> CoreResult<RepoPatch> {
    if !dest.exists() {
        create_new(dest)?;
    }
    let file = open_rw(dest)?;
    let dest_len = file.metadata().map_err(|e| CoreError::io("stat", dest, e))?.len();
    let mut wanted = Vec::new();
    let mut buf = fsio::buffer(0);
    // Compare a batch of runs at a time: by their change hints (XXH3) when the
    // backup has them, else by their ids (keyed BLAKE3) on all cores.
    for (b, batch) in chunks.chunks(PATCH_BATCH).enumerate() {
        crate::core::cancel::check()?;
        let start = batch[0].1;
        let end = batch.last().map(|((_, l), o)| o + *l as u64).unwrap_or(start);
        if buf.len() < (end - start) as usize {
            buf = fsio::buffer((end - start) as usize);
        }
        let bytes = &mut buf[..(end - start) as usize];
        let have = dest_len.saturating_sub(start).min(end - start) as usize;
        bytes[have..].fill(0);
        file.read_exact_at(&mut bytes[..have], start).map_err(|e| CoreError::io("read", dest, e))?;
        let bytes = &*bytes;
        let differs = |i: usize, ((id, l), o): &(ChunkRef, u64)| {
            let run = &bytes[(o - start) as usize..(o - start) as usize + *l as usize];
            o + *l as u64 > dest_len
                || match known {
                    Some(k) => k.entry(b * PATCH_BATCH + i).is_none_or(|(hash, _)| fast_hash(run) != hash),
                    None => repo.keys.id(run) != *id,
                }
        };
        let differ: Vec<bool> = match known {
            Some(_) => batch.iter().enumerate().map(|(i, c)| differs(i, c)).collect(),
            None => batch.par_iter().enumerate().map(|(i, c)| differs(i, c)).collect(),
        };
        wanted.extend(batch.iter().zip(differ).filter(|(_, d)| *d).map(|(c, _)| *c));
        crate::core::cancel::advance(bytes.len() as u64);
    }
    if dest_len != len {
        file.set_len(len).map_err(|e| CoreError::io("resize", dest, e))?;
    }
    // A run differs as a whole; only its pages that differ are written.
    let mut written = 0u64;
    let mut have = Vec::new();
    let fetched = fetch_into(repo, &wanted, |chunk, offset| {
        have.resize(chunk.len(), 0);
        file.read_exact_at(&mut have, offset).map_err(|e| CoreError::io("read", dest, e))?;
        for (i, (new, old)) in chunk.chunks(PAGE_SIZE).zip(have.chunks(PAGE_SIZE)).enumerate() {
            if new != old {
                let at = offset + (i * PAGE_SIZE) as u64;
                file.write_all_at(new, at).map_err(|e| CoreError::io("write", dest, e))?;
                written += new.len() as u64;
            }
        }
        Ok(())
    })?;
    fsio::sync(&file, dest)?;
    let page = PAGE_SIZE as u64;
    Ok(RepoPatch {
        outcome: PatchOutcome {
            pages_compared: dest_len.min(len).div_ceil(page),
            pages_rewritten: written.div_ceil(page),
            bytes_written: written,
        },
        rebuilt: false,
        chunks_fetched: wanted.len() as u64,
        bytes_fetched: fetched,
    })
}

/// Cuts the destination as the repository's chunker would (following the
/// backup's chunks where its change hints match): whether it already holds
/// exactly `chunks`, and where each chunk id it has starts.
fn cut_destination(
    repo: &Repo,
    chunks: &[(ChunkRef, u64)],
    len: u64,
    dest: &Path,
    known: Option<&Parent>,
) -> CoreResult<(bool, HashMap<BlobId, u64>)> {
    let mut local: HashMap<BlobId, u64> = HashMap::new();
    let mut same = true;
    let mut dest_len = 0u64;
    let file = fsio::open_read(dest)?;
    let size = file.metadata().map_err(|e| CoreError::io("stat", dest, e))?.len();
    let source = Source { file: &file, path: dest, len: size };
    let mut at = 0usize;
    let mut buf = fsio::buffer(0);
    for_each_round(Params::of(repo), &source, Split::on(rayon::current_num_threads()), known, |start, cuts| {
        let end = *cuts.last().expect("a round cuts at least one chunk");
        if buf.len() < (end - start) as usize {
            buf = fsio::buffer((end - start) as usize);
        }
        let bytes = &mut buf[..(end - start) as usize];
        read_at(&source, bytes, start)?;
        let mut from = start;
        for &cut in cuts {
            let piece = &bytes[(from - start) as usize..(cut - start) as usize];
            let id = match known {
                Some(k) => k.position(fast_hash(piece), piece.len()).and_then(|i| k.id(i)),
                None => Some(repo.keys.id(piece)),
            };
            same &= id.is_some_and(|id| {
                chunks.get(at).is_some_and(|((want, l), _)| *want == id && *l as usize == piece.len())
            });
            if let Some(id) = id {
                local.entry(id).or_insert(from);
            }
            at += 1;
            from = cut;
        }
        crate::core::cancel::advance(end - start);
        dest_len = end;
        Ok(())
    })?;
    same &= at == chunks.len() && dest_len == len;
    Ok((same, local))
}

/// Any other file: unchanged when the repository's chunker cuts the
/// destination into the same chunks; else rebuilt into `temp` from the
/// destination's own chunks where it has them and fetched ones elsewhere.
/// With the backup's change hints, the destination's pieces are known by
/// their XXH3 and the chunker follows the backup's chunks where they match.
fn patch_whole(
    repo: &Repo,
    chunks: &[(ChunkRef, u64)],
    len: u64,
    dest: &Path,
    temp: &Path,
    known: Option<&Parent>,
) -> CoreResult<RepoPatch> {
    let (same, local) =
        if dest.exists() { cut_destination(repo, chunks, len, dest, known)? } else { (false, HashMap::new()) };
    if same {
        return Ok(RepoPatch { outcome: PatchOutcome::default(), ..RepoPatch::default() });
    }
    let out = create_new(temp)?;
    out.set_len(len).map_err(|e| CoreError::io("extend", temp, e))?;
    let source = if local.is_empty() { None } else { Some(fsio::open_read(dest)?) };
    let mut wanted = Vec::new();
    let mut copied = 0u64;
    let mut buf = Vec::new();
    for &((id, l), offset) in chunks {
        match (local.get(&id), &source) {
            (Some(&from), Some(src)) => {
                buf.resize(l as usize, 0);
                src.read_exact_at(&mut buf, from).map_err(|e| CoreError::io("read", dest, e))?;
                out.write_all_at(&buf, offset).map_err(|e| CoreError::io("write", temp, e))?;
                copied += l as u64;
            }
            _ => wanted.push(((id, l), offset)),
        }
    }
    let fetched = fetch_into(repo, &wanted, |chunk, offset| {
        out.write_all_at(chunk, offset).map_err(|e| CoreError::io("write", temp, e))
    })?;
    if copied + fetched != len {
        return Err(wrong_length(temp, copied + fetched, len));
    }
    fsio::sync(&out, temp)?;
    Ok(RepoPatch {
        outcome: PatchOutcome { pages_compared: 0, pages_rewritten: 0, bytes_written: len },
        rebuilt: true,
        chunks_fetched: wanted.len() as u64,
        bytes_fetched: fetched,
    })
}

/// Brings `dest` to the file `lists` make (`len` bytes): a heap patched in
/// place, any other file rebuilt into `temp` when it differs (see `rebuilt`).
/// With `hints` (the file's change hints) the destination is compared by
/// XXH3 rather than by chunk ids.
pub fn patch_file(
    repo: &Repo,
    lists: &[BlobId],
    hints: Option<&[BlobId]>,
    len: u64,
    dest: &Path,
    temp: &Path,
    heap: bool,
) -> CoreResult<RepoPatch> {
    let chunks = chunks_of(repo, lists)?;
    let total = chunks.last().map(|((_, l), o)| o + *l as u64).unwrap_or(0);
    if total != len {
        return Err(wrong_length(dest, total, len));
    }
    let known = hints.and_then(|h| Parent::load(repo, lists, h, !heap));
    if heap {
        patch_heap(repo, &chunks, len, dest, known.as_ref())
    } else {
        patch_whole(repo, &chunks, len, dest, temp, known.as_ref())
    }
}
