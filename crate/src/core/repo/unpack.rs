//! Opening a restore's chunks where each goes (restore_files.rs plans the
//! places). Every chunk has its file and offset, so the order in which they
//! are opened does not matter: a window's chunks are cut into pieces (a
//! compression block and the chunks it holds, or about a megabyte of chunks
//! stored alone), every core opens whole pieces with no step in lock, and
//! one writer thread writes each piece as it comes. Opening batches in
//! order, every core waited at each batch's end for the slowest block, and
//! the writer copied batches that had left the cache: about a quarter of
//! the two cores stood idle in a restore.
use super::pack::Entry;
use super::restore_file::{Place, Window};
use super::{short, Repo};
use crate::core::error::{CoreError, CoreResult};
use crate::core::fsio::Sink;
use rayon::prelude::*;
use std::ops::Range as Span;
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::Mutex;

/// Chunks stored alone (not in a block) opened together, in raw bytes.
const PIECE_BYTES: usize = 1 << 20;
/// Pieces opened and not yet written: bounds memory at a few megabytes.
const PIECES_IN_FLIGHT: usize = 4;

/// What a piece opens: one block's chunks, or chunks stored alone.
struct Work<'w> {
    pack: &'w str,
    /// Each chunk's stored bytes (a block's chunks share them), entry and place.
    chunks: Vec<(&'w [u8], &'w Entry, Place)>,
}

/// Opened chunks: `data` and, for each, its bytes in it and where it goes.
struct Piece {
    data: Vec<u8>,
    parts: Vec<(Span<usize>, Place)>,
}

/// Runs `fetch` (which sends windows of planned ranges) on a thread of its
/// own, opens the chunks of every window and writes each at its place in
/// `sinks`; returns the raw bytes written.
pub(super) fn unpack(
    repo: &Repo,
    fetch: impl FnOnce(&SyncSender<CoreResult<Window>>) + Send,
    sinks: &mut [Sink],
) -> CoreResult<u64> {
    let token = crate::core::cancel::current();
    let (windows, fetched) = std::sync::mpsc::sync_channel::<CoreResult<Window>>(0);
    let (pieces, received) = std::sync::mpsc::sync_channel::<Piece>(PIECES_IN_FLIGHT);
    let spare: Mutex<Vec<Vec<u8>>> = Mutex::default();
    std::thread::scope(|scope| {
        let fetch_token = token.clone();
        scope.spawn(move || crate::core::cancel::with(fetch_token, || fetch(&windows)));
        let writer = scope.spawn(|| crate::core::cancel::with(token, || write_pieces(received, sinks, &spare)));
        let opened = open_windows(repo, fetched, &pieces, &spare);
        drop(pieces);
        let written = writer.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        // The writer's failure first: the openers then only saw it stop listening.
        let written = written?;
        opened.map(|()| written)
    })
}

fn open_windows(
    repo: &Repo,
    fetched: Receiver<CoreResult<Window>>,
    pieces: &SyncSender<Piece>,
    spare: &Mutex<Vec<Vec<u8>>>,
) -> CoreResult<()> {
    for window in fetched {
        let window = window?;
        work_of(&window).into_par_iter().try_for_each(|work| {
            let buffer = spare.lock().unwrap_or_else(|p| p.into_inner()).pop().unwrap_or_default();
            let piece = open(repo, work, buffer)?;
            pieces.send(piece).map_err(|_| CoreError::new("ERR_ABORTED", "the restore's writer stopped"))
        })?;
    }
    Ok(())
}

/// A window's chunks cut into pieces: a block's chunks together (they lie
/// side by side in the window), chunks stored alone up to `PIECE_BYTES`.
fn work_of(window: &Window) -> Vec<Work<'_>> {
    let mut work: Vec<Work> = Vec::new();
    let mut alone = 0usize;
    for (range, bytes) in window.ranges.iter().zip(&window.fetched) {
        for (entry, place) in range.entries.iter().zip(&range.places) {
            let from = (entry.offset as u64 - range.start) as usize;
            let stored = &bytes[from..from + entry.stored_len as usize];
            let joins = work.last().filter(|w| w.pack == range.pack).and_then(|w| w.chunks.last()).is_some_and(
                |(_, last, _)| match entry.in_block() {
                    true => last.in_block() && last.offset == entry.offset,
                    false => !last.in_block() && alone + entry.raw_len as usize <= PIECE_BYTES,
                },
            );
            if !joins {
                work.push(Work { pack: &range.pack, chunks: Vec::new() });
                alone = 0;
            }
            alone += entry.raw_len as usize;
            work.last_mut().expect("pushed above").chunks.push((stored, entry, *place));
        }
    }
    work
}

/// Opens a piece's chunks into `buffer`, each checked against its id: a
/// block once, its chunks read where they lie in it (not copied).
fn open(repo: &Repo, work: Work, buffer: Vec<u8>) -> CoreResult<Piece> {
    let Work { pack, chunks } = work;
    let (_, first, _) = chunks[0];
    if first.in_block() {
        let data = repo.open_block_into(first, chunks[0].0, pack, buffer)?;
        let mut parts = Vec::with_capacity(chunks.len());
        for (_, entry, place) in chunks {
            let span = entry.inner as usize..entry.inner as usize + entry.raw_len as usize;
            match data.get(span.clone()) {
                Some(bytes) if repo.keys.id(bytes) == entry.id => parts.push((span, place)),
                _ => return Err(mismatch(entry, pack)),
            }
        }
        return Ok(Piece { data, parts });
    }
    let mut data = buffer;
    data.resize(chunks.iter().map(|(_, e, _)| e.raw_len as usize).sum(), 0);
    let mut parts = Vec::with_capacity(chunks.len());
    let mut at = 0;
    for (stored, entry, place) in chunks {
        let span = at..at + entry.raw_len as usize;
        repo.decode_blob_into(entry, stored, pack, &mut data[span.clone()])?;
        at = span.end;
        parts.push((span, place));
    }
    Ok(Piece { data, parts })
}

fn mismatch(entry: &Entry, pack: &str) -> CoreError {
    CoreError::new("ERR_INTEGRITY", format!("blob {} in pack {pack} does not match its id", short(&entry.id)))
}

/// Writes each piece's chunks at their places (neighbours in one write) and
/// hands its buffer back; returns the bytes written.
fn write_pieces(received: Receiver<Piece>, sinks: &mut [Sink], spare: &Mutex<Vec<Vec<u8>>>) -> CoreResult<u64> {
    let mut written = 0u64;
    for piece in received {
        let mut parts = piece.parts.iter().peekable();
        while let Some((span, place)) = parts.next() {
            let (mut end, mut len) = (span.end, place.len as u64);
            while let Some((s, p)) =
                parts.next_if(|(s, p)| s.start == end && p.file == place.file && p.offset == place.offset + len)
            {
                end = s.end;
                len += p.len as u64;
            }
            sinks[place.file as usize].write_at(&piece.data[span.start..end], place.offset)?;
        }
        let bytes: u64 = piece.parts.iter().map(|(s, _)| s.len() as u64).sum();
        crate::core::cancel::advance(bytes);
        written += bytes;
        spare.lock().unwrap_or_else(|p| p.into_inner()).push(piece.data);
    }
    Ok(written)
}
