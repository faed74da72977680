//! Restoring a file from the repository: its chunks fetched in ranges (the
//! chunks of one file mostly lie side by side in a pack), opened and checked
//! on all cores, and written in order.
use super::block::{open_batch, BlockCache, Stored};
use super::index::Index;
use super::keys::BlobId;
use super::lists::{read_list, ChunkRef};
use super::pack::{Entry, PACK_TARGET};
use super::{short, Repo};
use crate::core::error::{CoreError, CoreResult};
use crate::core::fsio::{create_new, Sink};
use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender};

/// Chunks opened and handed to the writer at once (about 2 MiB of heap
/// runs: memory stays flat, and rayon still spreads each batch over every core).
const BATCH: usize = 32;
/// How chunks are fetched: stored bytes at once, the longest single read,
/// and the largest gap between neighbouring chunks read in one request.
#[derive(Clone, Copy)]
pub(super) struct FetchPlan {
    pub budget: u64,
    pub max_range: u64,
    pub max_gap: u64,
}

/// A local disk: 2 MiB at once in reads of at most 2 MiB, skipping gaps
/// over 64 KiB. An object store, where every request costs a round trip and
/// server time: reads of a quarter pack, as many as there are requests in
/// flight, reading through gaps of up to 1 MiB (another file's chunks that
/// a concurrent backup packed in between; reading them is cheaper than a
/// round trip).
pub(super) fn fetch_plan(repo: &Repo) -> FetchPlan {
    if repo.storage.is_remote() {
        let read = PACK_TARGET as u64 / 4;
        FetchPlan { budget: repo.storage.transfers() as u64 * read, max_range: read, max_gap: 1 << 20 }
    } else {
        FetchPlan { budget: 2 << 20, max_range: 2 << 20, max_gap: 64 << 10 }
    }
}

/// Where a restore that reads pack by pack writes a chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Place {
    pub file: u32,
    pub len: u32,
    pub offset: u64,
}

/// One read of a pack and the chunks inside it, in the order they are
/// visited; with `places` (one per entry), where each goes.
pub(super) struct Range {
    pub pack: String,
    pub start: u64,
    pub end: u64,
    pub entries: Vec<Entry>,
    pub places: Vec<Place>,
}

/// Reads done together, with what they brought.
pub(super) struct Window {
    ranges: Vec<Range>,
    fetched: Vec<Vec<u8>>,
}

impl Range {
    pub fn new(pack: &str, entry: Entry) -> Range {
        Range {
            pack: pack.to_string(),
            start: entry.offset as u64,
            end: entry.end(),
            entries: vec![entry],
            places: Vec::new(),
        }
    }

    /// Whether one read of this range can bring `entry` too (same pack):
    /// after its start (chunks are opened wherever they lie in the read),
    /// through a gap of at most `max_gap`, within `max_range` in all.
    pub fn reaches(&self, entry: &Entry, plan: FetchPlan) -> bool {
        let offset = entry.offset as u64;
        offset >= self.start
            && offset <= self.end + plan.max_gap
            && self.end.max(entry.end()) - self.start <= plan.max_range
    }

    pub fn take(&mut self, entry: Entry) {
        self.end = self.end.max(entry.end());
        self.entries.push(entry);
    }
}

/// Fetches `ranges` together (an object store's requests in flight at once).
pub(super) fn fetch_window(repo: &Repo, ranges: Vec<Range>) -> CoreResult<Window> {
    let reads: Vec<(&str, u64, usize)> =
        ranges.iter().map(|r| (r.pack.as_str(), r.start, (r.end - r.start) as usize)).collect();
    Ok(Window { fetched: repo.storage.get_ranges(&reads)?, ranges })
}

/// Opened chunks, in order, and where each goes (empty unless planned so).
pub(super) struct Batch {
    pub data: Vec<u8>,
    pub places: Vec<Place>,
}

/// The reads for the first chunks of `refs`, up to about `budget` stored
/// bytes; returns them and how many chunks they cover (at least one).
fn locate(repo: &Repo, refs: &[ChunkRef], plan: FetchPlan) -> CoreResult<(Vec<Range>, usize)> {
    let index = repo.index();
    let mut ranges: Vec<Range> = Vec::new();
    let mut total = 0u64;
    for (at, (id, len)) in refs.iter().enumerate() {
        let (pack, entry) = index.get(id).ok_or_else(|| missing_blob(repo, &index, id))?;
        if entry.raw_len != *len {
            return Err(CoreError::new("ERR_INTEGRITY", format!("chunk {} has the wrong length", short(id))));
        }
        match ranges.last_mut() {
            Some(r) if r.pack == pack && r.reaches(&entry, plan) => {
                total += entry.end().saturating_sub(r.end);
                r.take(entry);
            }
            _ if at > 0 && total >= plan.budget => return Ok((ranges, at)),
            _ => {
                total += entry.end() - entry.offset as u64;
                ranges.push(Range::new(pack, entry));
            }
        }
    }
    Ok((ranges, refs.len()))
}

pub fn missing_blob(repo: &Repo, index: &Index, id: &BlobId) -> CoreError {
    if index.is_lost(id) {
        return super::damage::damaged_blob(repo, id);
    }
    CoreError::new(
        "ERR_MISSING_FILE",
        format!("chunk {} is missing from repository {} (no index lists it)", short(id), repo.location()),
    )
}

/// The chunks a fetch covers: the whole file its lists name, or chosen chunks.
#[derive(Clone, Copy)]
pub enum Chunks<'a> {
    Lists(&'a [BlobId]),
    Refs(&'a [ChunkRef]),
}

/// Fetches the chunks of `refs` window by window, in order; false after a
/// failure (sent on) or when nobody listens any more.
fn fetch_refs(repo: &Repo, refs: &[ChunkRef], windows: &SyncSender<CoreResult<Window>>) -> bool {
    let plan = fetch_plan(repo);
    let mut start = 0;
    while start < refs.len() {
        let window = crate::core::cancel::check().and_then(|()| {
            let (ranges, covered) = locate(repo, &refs[start..], plan)?;
            start += covered;
            fetch_window(repo, ranges)
        });
        let failed = window.is_err();
        if windows.send(window).is_err() || failed {
            return false;
        }
    }
    true
}

/// Fetches `chunks` window by window, in order; stops at the first failure
/// (sent on) or when nobody listens any more.
fn fetch_windows(repo: &Repo, chunks: Chunks, windows: &SyncSender<CoreResult<Window>>) {
    match chunks {
        Chunks::Refs(refs) => {
            fetch_refs(repo, refs, windows);
        }
        Chunks::Lists(lists) => {
            for list in lists {
                let refs = match read_list(repo, list) {
                    Ok(refs) => refs,
                    Err(e) => return drop(windows.send(Err(e))),
                };
                if !fetch_refs(repo, &refs, windows) {
                    return;
                }
            }
        }
    }
}

/// Opens the chunks of each window on all cores, each checked against its
/// id, into one buffer per batch (large enough for the allocator to map and
/// unmap it, rather than fragment its arenas with chunks that cross threads),
/// and hands the batches on in order.
fn open_windows(
    repo: &Repo,
    windows: Receiver<CoreResult<Window>>,
    batches: &SyncSender<CoreResult<Batch>>,
    spare: &Receiver<Vec<u8>>,
) {
    // The last blocks opened: the next window usually goes on in them.
    let mut blocks = BlockCache::new(2);
    for window in windows {
        let window = match window {
            Ok(w) => w,
            Err(e) => return drop(batches.send(Err(e))),
        };
        let chunks: Vec<(&Range, &[u8], &Entry)> = window
            .ranges
            .iter()
            .zip(&window.fetched)
            .flat_map(|(r, bytes)| r.entries.iter().map(move |e| (r, bytes.as_slice(), e)))
            .collect();
        let mut places = window.ranges.iter().flat_map(|r| r.places.iter().copied());
        for batch in chunks.chunks(BATCH) {
            let places: Vec<Place> = places.by_ref().take(batch.len()).collect();
            let len = batch.iter().map(|(_, _, e)| e.raw_len as usize).sum();
            let mut out = spare.try_recv().unwrap_or_default();
            out.resize(len, 0);
            let mut slots: Vec<&mut [u8]> = Vec::with_capacity(batch.len());
            let mut rest = out.as_mut_slice();
            for (_, _, e) in batch {
                let (slot, tail) = rest.split_at_mut(e.raw_len as usize);
                slots.push(slot);
                rest = tail;
            }
            let stored: Vec<Stored> = batch
                .iter()
                .map(|(r, bytes, e)| {
                    let from = (e.offset as u64 - r.start) as usize;
                    (r.pack.as_str(), &bytes[from..from + e.stored_len as usize], *e)
                })
                .collect();
            let opened = open_batch(repo, &stored, slots, &mut blocks);
            let failed = opened.is_err();
            if batches.send(opened.map(|()| Batch { data: out, places })).is_err() || failed {
                return;
            }
        }
    }
}

/// Calls `visit` with the content of `chunks` (a file's lists, or chosen
/// chunks), in order, a batch of chunks at a time (each chunk checked against its id); returns
/// the bytes visited.
pub fn for_each_chunk(repo: &Repo, chunks: Chunks, mut visit: impl FnMut(&[u8]) -> CoreResult<()>) -> CoreResult<u64> {
    pipeline(repo, |windows| fetch_windows(repo, chunks, windows), |batch| visit(&batch.data))
}

/// Runs `fetch` (which sends windows, in order) and calls `visit` with their
/// chunks opened, a batch at a time; returns the bytes visited. Three
/// stages overlap: one thread fetches the next window, another opens the
/// current one, and `visit` handles what is opened. A stage that fails or
/// stops listening ends the ones before it (their channel closes).
pub(super) fn pipeline(
    repo: &Repo,
    fetch: impl FnOnce(&SyncSender<CoreResult<Window>>) + Send,
    mut visit: impl FnMut(&Batch) -> CoreResult<()>,
) -> CoreResult<u64> {
    let token = crate::core::cancel::current();
    let (windows, fetched) = std::sync::mpsc::sync_channel::<CoreResult<Window>>(0);
    let (batches, received) = std::sync::mpsc::sync_channel::<CoreResult<Batch>>(1);
    // Visited batches' buffers go back to the opener: a fresh buffer per batch
    // costs a page fault per 4 KiB (about a second of system time per GiB here).
    let (recycle, spare) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::scope(|scope| {
        let fetch_token = token.clone();
        scope.spawn(move || crate::core::cancel::with(fetch_token, || fetch(&windows)));
        scope.spawn(move || crate::core::cancel::with(token, || open_windows(repo, fetched, &batches, &spare)));
        let mut done = 0u64;
        for batch in received {
            let batch = batch?;
            visit(&batch)?;
            crate::core::cancel::advance(batch.data.len() as u64);
            done += batch.data.len() as u64;
            let _ = recycle.send(batch.data);
        }
        Ok(done)
    })
}

pub(super) fn wrong_length(what: &str, got: u64, len: u64) -> CoreError {
    CoreError::new("ERR_INTEGRITY", format!("{what} restored as {got} bytes but its backup says {len}"))
}

/// Writes the file made of `lists` to the new file `dest` (fsynced), checking
/// every chunk and the length; with `hash`, returns its BLAKE3.
pub fn restore_file(repo: &Repo, lists: &[BlobId], len: u64, dest: &Path, hash: bool) -> CoreResult<Option<String>> {
    let mut sink = Sink::new(create_new(dest)?, dest);
    let mut hasher = hash.then(blake3::Hasher::new);
    let written = for_each_chunk(repo, Chunks::Lists(lists), |data| {
        if let Some(h) = hasher.as_mut() {
            h.update(data);
        }
        sink.append(data)
    })?;
    if written != len {
        return Err(wrong_length(&dest.display().to_string(), written, len));
    }
    sink.finish()?;
    Ok(hasher.map(|h| h.finalize().to_hex().to_string()))
}

/// How a file in a data directory differs from its backup.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Comparison {
    pub source_len: u64,
    pub equal: bool,
    /// Heaps: the first differing pages (pages on one side only included).
    pub differing: Vec<u64>,
    pub differing_count: u64,
}

/// Pages listed by index at most; the rest are only counted.
const LISTED_PAGES: usize = 100;

/// Compares the file made of `lists` with `source` without writing anything;
/// a heap page by page, any other file as a whole.
pub fn compare_file(repo: &Repo, lists: &[BlobId], len: u64, source: &Path, heap: bool) -> CoreResult<Comparison> {
    use std::os::unix::fs::FileExt;
    let file = std::fs::File::open(source).map_err(|e| CoreError::io("open", source, e))?;
    let source_len = file.metadata().map_err(|e| CoreError::io("stat", source, e))?.len();
    let mut out = Comparison { source_len, ..Comparison::default() };
    let mut differ = |page: u64| {
        if out.differing.len() < LISTED_PAGES {
            out.differing.push(page);
        }
        out.differing_count += 1;
    };
    let mut theirs = Vec::new();
    let mut at = 0u64;
    let mut same = true;
    let read = for_each_chunk(repo, Chunks::Lists(lists), |ours| {
        theirs.resize(ours.len(), 0);
        let n = ours.len().min(source_len.saturating_sub(at) as usize);
        file.read_exact_at(&mut theirs[..n], at).map_err(|e| CoreError::io("read", source, e))?;
        theirs[n..].fill(0);
        if heap {
            for (i, (a, b)) in ours.chunks(PAGE).zip(theirs.chunks(PAGE)).enumerate() {
                let page = at / PAGE as u64 + i as u64;
                if a != b || (page + 1) * PAGE as u64 > source_len {
                    differ(page);
                }
            }
        } else if n < ours.len() || ours != &theirs[..] {
            same = false;
        }
        at += ours.len() as u64;
        Ok(())
    })?;
    if read != len {
        return Err(wrong_length(&source.display().to_string(), read, len));
    }
    if heap {
        (len.div_ceil(PAGE as u64)..source_len.div_ceil(PAGE as u64)).for_each(&mut differ);
    }
    out.equal = source_len == len && same && out.differing_count == 0;
    Ok(out)
}

const PAGE: usize = 4096;
