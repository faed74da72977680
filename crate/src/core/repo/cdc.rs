//! Content-defined cut points of a file, found on all cores and identical
//! to one sequential FastCDC pass (StreamCDC's, which it replaces: that one
//! runs on one core and moves its buffer for every chunk).
//!
//! The file is taken in rounds. In a round each thread cuts its own segment
//! from the segment's start, as if a chunk began there, and goes on a little
//! past the next segment's start. A cut decision depends only on the bytes
//! since the previous cut, so once the thread of segment k cuts where the
//! thread of segment k+1 also cut, the sequential pass would continue exactly
//! as segment k+1's thread did: the cut points are spliced there. Where no
//! common cut turns up (not seen in practice), the segment is cut again
//! sequentially from the last certain cut.
use super::hints::{fast_hash, Parent};
use super::Repo;
use crate::core::error::{CoreError, CoreResult};
use crate::core::fsio;
use fastcdc::v2020::{FastCDC, Normalization};
use rayon::prelude::*;
use std::collections::HashSet;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Bytes each thread cuts per round, at most.
const SEGMENT: u64 = 32 << 20;
/// Bytes read at once by a cutting thread.
const WINDOW: usize = 4 << 20;
/// How far past the next segment's start a thread cuts, in largest chunks
/// (two chunkers fall into step within a few chunks).
const OVERLAP_CHUNKS: u64 = 16;

/// The chunker's parameters for one repository.
#[derive(Clone, Copy)]
pub struct Params {
    min: u32,
    avg: u32,
    max: u32,
    seed: u64,
}

impl Params {
    pub fn of(repo: &Repo) -> Params {
        let c = repo.config.chunking;
        Params { min: c.cdc_min, avg: c.cdc_avg, max: c.cdc_max, seed: repo.keys.chunker_seed() }
    }

    /// A window must hold several largest chunks for the cutting to make progress.
    fn window(&self) -> usize {
        WINDOW.max(4 * self.max as usize)
    }
}

/// The file being cut: its length and a descriptor for positioned reads.
pub struct Source<'a> {
    pub file: &'a File,
    pub path: &'a Path,
    pub len: u64,
}

/// How the file is split between threads: bytes per thread and round, and
/// how far past the next segment's start a thread cuts, in largest chunks.
#[derive(Clone, Copy)]
pub struct Split {
    pub threads: usize,
    pub segment: u64,
    pub overlap_chunks: u64,
}

impl Split {
    pub fn on(threads: usize) -> Split {
        Split { threads: threads.max(1), segment: SEGMENT, overlap_chunks: OVERLAP_CHUNKS }
    }
}

/// Calls `each` with the cut points (chunk ends) of the file, round after
/// round, in order, each round with the cut it starts from; the last call
/// ends at the file's length.
pub fn for_each_round(
    params: Params,
    source: &Source,
    split: Split,
    parent: Option<&Parent>,
    mut each: impl FnMut(u64, &[u64]) -> CoreResult<()>,
) -> CoreResult<()> {
    let mut start = 0;
    while start < source.len {
        crate::core::cancel::check()?;
        let limit = source.len.min(start + split.segment * split.threads as u64);
        let cuts = round(params, source, start, limit, split, parent)?;
        let end = *cuts.last().expect("a round cuts at least one chunk");
        each(start, &cuts)?;
        start = end;
    }
    Ok(())
}

/// The true cut points after `start` (itself a cut) up to the last one
/// certain before `limit` (or the file's end when `limit` is the file's length).
fn round(
    params: Params,
    source: &Source,
    start: u64,
    limit: u64,
    split: Split,
    parent: Option<&Parent>,
) -> CoreResult<Vec<u64>> {
    let segments = (limit - start).div_ceil(split.segment).clamp(1, split.threads as u64);
    let span = (limit - start).div_ceil(segments);
    let overlap = split.overlap_chunks * params.max as u64;
    let parts: Vec<Vec<u64>> = (0..segments)
        .into_par_iter()
        .map(|k| {
            let from = start + k * span;
            let to = if k + 1 == segments { limit } else { (from + span + overlap).min(limit) };
            cut_range(params, source, from, to, parent)
        })
        .collect::<CoreResult<_>>()?;
    let mut cuts = parts[0].clone();
    for part in &parts[1..] {
        let theirs: HashSet<u64> = part.iter().copied().collect();
        match cuts.iter().position(|c| theirs.contains(c)) {
            Some(at) => {
                let joint = cuts[at];
                cuts.truncate(at + 1);
                cuts.extend(part.iter().copied().filter(|&c| c > joint));
            }
            // No common cut: cut sequentially from the last certain cut to the round's end.
            None => {
                let from = cuts.last().copied().unwrap_or(start);
                cuts.extend(cut_range(params, source, from, limit, parent)?);
                break;
            }
        }
    }
    Ok(cuts)
}

/// Follows the parent backup's chunks of the file through a stretch that
/// did not change, so the gear hash need not run over it: chunk `j` of the
/// parent ends here where it did there when its bytes and the byte after it
/// are the same (the chunker's decision at a cut reads that one byte more),
/// as the hashes of chunks `j` and `j + 1` show; the parent's last chunk,
/// which its file's end cut, only at the file's end.
struct Follow<'a> {
    parent: &'a Parent,
    /// The parent's chunk expected to start at this offset of the file, and
    /// whether its hash was already found to match there.
    next: Option<(u64, usize, bool)>,
}

impl Follow<'_> {
    /// The end (in `window`) of the chunk at `offset`, when it is the parent's.
    fn skip(&mut self, window: &[u8], offset: usize, pos: u64, file_len: u64) -> Option<usize> {
        let (expected_at, j, checked) = self.next.take()?;
        let (hash, len) = self.parent.entry(j)?;
        let end = offset + len;
        if expected_at != pos || end > window.len() || (!checked && fast_hash(&window[offset..end]) != hash) {
            return None;
        }
        if j + 1 == self.parent.count() {
            return (pos + len as u64 == file_len).then_some(end);
        }
        let (next_hash, next_len) = self.parent.entry(j + 1)?;
        if end + next_len > window.len() || fast_hash(&window[end..end + next_len]) != next_hash {
            return None;
        }
        self.next = Some((pos + len as u64, j + 1, true));
        Some(end)
    }

    /// After the chunker cut `chunk` ending at `end`: where the parent had
    /// that chunk, its next chunk is expected next.
    fn found(&mut self, chunk: &[u8], end: u64) {
        self.next = self.parent.position(fast_hash(chunk), chunk.len()).map(|i| (end, i + 1, false));
    }
}

/// Cut points after `from` (taken as a cut) that are certain with the bytes
/// up to `to`: every cut before `to`, and `to` itself only at the file's end.
fn cut_range(params: Params, source: &Source, from: u64, to: u64, parent: Option<&Parent>) -> CoreResult<Vec<u64>> {
    let mut cuts = Vec::new();
    let mut buf = fsio::buffer(params.window());
    let mut follow = parent.map(|parent| Follow { parent, next: None });
    let mut at = from;
    while at < to {
        let len = ((to - at) as usize).min(buf.len());
        read_at(source, &mut buf[..len], at)?;
        let window = &buf[..len];
        let last = at + len as u64 == to;
        let chunker = FastCDC::with_level_and_seed(
            window,
            params.min,
            params.avg,
            params.max,
            Normalization::Level1,
            params.seed,
        );
        let mut offset = 0;
        while offset < len {
            let pos = at + offset as u64;
            if let Some(end) = follow.as_mut().and_then(|f| f.skip(window, offset, pos, source.len)) {
                cuts.push(at + end as u64);
                offset = end;
                continue;
            }
            let (_, end) = chunker.cut(offset, len - offset);
            // Inside the window a cut is what an unbounded pass finds; at its end only
            // at the file's end or as a largest chunk (more bytes could move it).
            let certain = end < len || (last && to == source.len) || end - offset == params.max as usize;
            if !certain {
                break;
            }
            if let Some(f) = follow.as_mut() {
                f.found(&window[offset..end], at + end as u64);
            }
            cuts.push(at + end as u64);
            offset = end;
        }
        // A window holds several largest chunks, so only the range's last one can end
        // without a cut: its tail is cut by the next round.
        if last || offset == 0 {
            break;
        }
        at += offset as u64;
    }
    Ok(cuts)
}

pub fn read_at(source: &Source, into: &mut [u8], offset: u64) -> CoreResult<()> {
    crate::core::cancel::check()?;
    source.file.read_exact_at(into, offset).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => crate::core::delta::changed_under_us(source.path),
        _ => CoreError::io("read", source.path, e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::test_support::TempDir;
    use fastcdc::v2020::StreamCDC;

    const PARAMS: Params = Params { min: 2 << 10, avg: 8 << 10, max: 32 << 10, seed: 0x5eed };

    fn sequential(data: &[u8]) -> Vec<u64> {
        let cdc = StreamCDC::with_level_and_seed(
            data,
            PARAMS.min,
            PARAMS.avg,
            PARAMS.max,
            Normalization::Level1,
            PARAMS.seed,
        );
        cdc.map(|c| {
            let c = c.unwrap();
            c.offset + c.length as u64
        })
        .collect()
    }

    fn parallel(path: &Path, len: u64, split: Split, parent: Option<&Parent>) -> Vec<u64> {
        let file = File::open(path).unwrap();
        let source = Source { file: &file, path, len };
        let mut all = Vec::new();
        let mut expected_start = 0;
        for_each_round(PARAMS, &source, split, parent, |start, cuts| {
            assert_eq!(start, expected_start);
            expected_start = *cuts.last().unwrap();
            all.extend_from_slice(cuts);
            Ok(())
        })
        .unwrap();
        all
    }

    /// Random bytes with runs of zeros (largest chunks) and a repeated block.
    fn data(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed | 1;
        let mut out: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let zeros = len / 3;
        out[zeros..zeros + (len / 10)].fill(0);
        let (a, b) = out.split_at_mut(len / 2);
        b[..len / 8].copy_from_slice(&a[..len / 8]);
        out
    }

    #[test]
    fn parallel_cuts_equal_one_sequential_pass() {
        let dir = TempDir::new();
        for (seed, len) in [(1, 0usize), (2, 100), (3, 2048), (4, 70_000), (5, 3 << 20), (6, 5_000_321)] {
            let bytes = data(seed, len);
            let path = dir.write(&format!("f{seed}"), &bytes);
            let want = sequential(&bytes);
            for (threads, segment, overlap) in
                [(1, SEGMENT, 16), (2, 1 << 20, 16), (5, 300 << 10, 16), (3, 200 << 10, 1), (4, 256 << 10, 0)]
            {
                let split = Split { threads, segment, overlap_chunks: overlap };
                assert_eq!(
                    parallel(&path, len as u64, split, None),
                    want,
                    "len {len}, {threads} threads, segment {segment}, overlap {overlap}"
                );
            }
        }
    }

    /// The parent's chunks of the file before a change, with their hashes.
    fn parent_of(data: &[u8]) -> Parent {
        let mut start = 0usize;
        let (chunks, hashes) = sequential(data)
            .into_iter()
            .map(|end| {
                let chunk = &data[start..end as usize];
                start = end as usize;
                (([0u8; 32], chunk.len() as u32), fast_hash(chunk))
            })
            .unzip();
        Parent::of(chunks, hashes)
    }

    /// Following the parent's chunks through unchanged stretches cuts exactly
    /// where the chunker does: after insertions, deletions, a changed byte in
    /// a chunk and changed bytes right after the parent's cuts (which its
    /// decision to cut there read).
    #[test]
    fn following_the_parent_cuts_where_the_chunker_does() {
        let dir = TempDir::new();
        let old = data(7, 4_000_000);
        let old_cuts = sequential(&old);
        let parent = parent_of(&old);
        let mut new = old.clone();
        for &cut in old_cuts.iter().step_by(9).take(30) {
            if (cut as usize) < new.len() {
                new[cut as usize] ^= 0x5a;
            }
        }
        new[1_000_000] ^= 1;
        new.splice(2_000_000..2_000_000, data(8, 70_000));
        new.drain(3_000_000..3_050_000);
        new.extend_from_slice(&data(9, 100_000));
        for (name, bytes) in [("same", &old), ("changed", &new)] {
            let path = dir.write(name, bytes);
            let want = sequential(bytes);
            for (threads, segment) in [(1, SEGMENT), (2, 1 << 20), (3, 700 << 10)] {
                let split = Split { threads, segment, overlap_chunks: OVERLAP_CHUNKS };
                let got = parallel(&path, bytes.len() as u64, split, Some(&parent));
                assert!(got == want, "{name}: {threads} threads, segment {segment}: cuts differ");
            }
        }
    }
}
