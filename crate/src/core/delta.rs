//! Page deltas: extracting the pages changed since a base LSN into a
//! `<name>.delta` file, and writing them back at their offsets.
use super::cancel;
use super::error::{CoreError, CoreResult};
use super::fsio::{self, Sink};
use super::page::{page_lsn, PAGE_SIZE, RECORD_SIZE};
use std::path::Path;

/// The `Pages` entry of an increment, as computed or as read from a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeltaSpec {
    pub total_pages: u32,
    pub page_indices: Vec<u32>,
    pub delta_len: u64,
    pub blake3_hex: String,
}

/// A backup-side delta and the highest page LSN of the whole heap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeltaOutcome {
    /// None when no page is newer than the base: no delta file is written.
    pub delta: Option<DeltaSpec>,
    pub max_page_lsn: u64,
}

/// Writes delta records lazily (the file exists only once a page qualifies),
/// batching them into large writes.
struct DeltaWriter<'a> {
    path: &'a Path,
    out: Option<Sink<'a>>,
    batch: Vec<u8>,
    hasher: blake3::Hasher,
    indices: Vec<u32>,
}

impl DeltaWriter<'_> {
    fn push(&mut self, index: u32, page: &[u8]) -> CoreResult<()> {
        if self.out.is_none() {
            self.out = Some(Sink::new(fsio::create_new(self.path)?, self.path));
        }
        self.batch.extend_from_slice(&index.to_le_bytes());
        self.batch.extend_from_slice(page);
        self.indices.push(index);
        if self.batch.len() >= fsio::CHUNK {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> CoreResult<()> {
        if let Some(out) = self.out.as_mut() {
            self.hasher.update(&self.batch);
            out.append(&self.batch)?;
            self.batch.clear();
        }
        Ok(())
    }

    fn finish(mut self, total_pages: u32) -> CoreResult<Option<DeltaSpec>> {
        self.flush()?;
        let Some(out) = self.out else { return Ok(None) };
        out.finish()?;
        Ok(Some(DeltaSpec {
            total_pages,
            delta_len: self.indices.len() as u64 * RECORD_SIZE as u64,
            page_indices: self.indices,
            blake3_hex: self.hasher.finalize().to_hex().to_string(),
        }))
    }
}

/// Heaps smaller than this are scanned by one thread.
const PARALLEL_SCAN_MIN: u64 = 64 << 20;

/// Scans the heap at `heap` and writes every page whose LSN is strictly
/// greater than `base_lsn` to `delta_path`, indices ascending.
///
/// The scan is the hot path of an incremental backup: it reads ranges of the
/// heap on all cores and only remembers the indices of changed pages; those
/// few pages are then read again and written out in order.
pub fn write_delta(heap: &Path, delta_path: &Path, base_lsn: u64) -> CoreResult<DeltaOutcome> {
    let len = fsio::open_read(heap)?.metadata().map_err(|e| CoreError::io("stat", heap, e))?.len();
    if len % PAGE_SIZE as u64 != 0 {
        return Err(not_paged(heap));
    }
    let total_pages = u32::try_from(len / PAGE_SIZE as u64).map_err(|_| too_many_pages(heap))?;
    let threads = if len < PARALLEL_SCAN_MIN { 1 } else { std::thread::available_parallelism().map_or(1, |n| n.get()) };
    let (changed, max_page_lsn) = scan_ranges(heap, total_pages, base_lsn, threads)?;
    let mut writer = DeltaWriter {
        path: delta_path,
        out: None,
        batch: Vec::with_capacity(fsio::CHUNK + RECORD_SIZE),
        hasher: blake3::Hasher::new(),
        indices: Vec::new(),
    };
    copy_pages(heap, &changed, base_lsn, &mut writer)?;
    Ok(DeltaOutcome { delta: writer.finish(total_pages)?, max_page_lsn })
}

/// Indices of pages whose LSN exceeds `base_lsn`, and the highest page LSN,
/// scanned in `threads` contiguous ranges at once.
fn scan_ranges(heap: &Path, total_pages: u32, base_lsn: u64, threads: usize) -> CoreResult<(Vec<u32>, u64)> {
    let chunk_pages = (fsio::CHUNK / PAGE_SIZE) as u32;
    let per_thread = total_pages.div_ceil(threads as u32).div_ceil(chunk_pages) * chunk_pages;
    let ranges: Vec<(u32, u32)> = (0..threads as u32)
        .map(|t| (t * per_thread, ((t + 1) * per_thread).min(total_pages)))
        .filter(|(start, end)| start < end)
        .collect();
    let token = cancel::current();
    let results = std::thread::scope(|scope| {
        let handles: Vec<_> = ranges
            .iter()
            .map(|&(start, end)| {
                let token = token.clone();
                scope.spawn(move || cancel::with(token, || scan_range(heap, start, end, base_lsn)))
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("scan thread panicked")).collect::<Vec<_>>()
    });
    let mut changed = Vec::new();
    let mut max_lsn = 0;
    for result in results {
        let (indices, lsn) = result?;
        changed.extend(indices);
        max_lsn = max_lsn.max(lsn);
    }
    Ok((changed, max_lsn))
}

fn scan_range(heap: &Path, start: u32, end: u32, base_lsn: u64) -> CoreResult<(Vec<u32>, u64)> {
    let file = fsio::open_read(heap)?;
    let mut buf = fsio::buffer(fsio::CHUNK);
    let (mut changed, mut max_lsn) = (Vec::new(), 0u64);
    let mut page = start;
    while page < end {
        let count = (end - page).min((fsio::CHUNK / PAGE_SIZE) as u32);
        let bytes = &mut buf[..count as usize * PAGE_SIZE];
        read_pages(&file, heap, page, bytes)?;
        for (i, p) in bytes.chunks_exact(PAGE_SIZE).enumerate() {
            let lsn = page_lsn(p);
            max_lsn = max_lsn.max(lsn);
            if lsn > base_lsn {
                changed.push(page + i as u32);
            }
        }
        page += count;
    }
    Ok((changed, max_lsn))
}

fn read_pages(file: &std::fs::File, heap: &Path, first: u32, into: &mut [u8]) -> CoreResult<()> {
    use std::os::unix::fs::FileExt;
    cancel::check()?;
    file.read_exact_at(into, first as u64 * PAGE_SIZE as u64).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => changed_under_us(heap),
        _ => CoreError::io("read", heap, e),
    })
}

fn changed_under_us(heap: &Path) -> CoreError {
    CoreError::new("ERR_SOURCE_CHANGED", format!("{} changed while it was being backed up", heap.display()))
}

/// Reads the changed pages again, in runs of consecutive indices, into the delta.
fn copy_pages(heap: &Path, changed: &[u32], base_lsn: u64, writer: &mut DeltaWriter) -> CoreResult<()> {
    let file = fsio::open_read(heap)?;
    let max_run = fsio::CHUNK / PAGE_SIZE;
    let mut buf = fsio::buffer(fsio::CHUNK);
    let mut at = 0;
    while at < changed.len() {
        let mut run = 1;
        while at + run < changed.len() && run < max_run && changed[at + run] == changed[at] + run as u32 {
            run += 1;
        }
        let bytes = &mut buf[..run * PAGE_SIZE];
        read_pages(&file, heap, changed[at], bytes)?;
        for (i, page) in bytes.chunks_exact(PAGE_SIZE).enumerate() {
            // The page must still be the one the scan saw newer than the base.
            if page_lsn(page) <= base_lsn {
                return Err(changed_under_us(heap));
            }
            writer.push(changed[at] + i as u32, page)?;
        }
        at += run;
    }
    Ok(())
}

fn not_paged(heap: &Path) -> CoreError {
    CoreError::new("ERR_NOT_PAGED", format!("{} is not a whole number of 4096-byte pages", heap.display()))
}

fn too_many_pages(heap: &Path) -> CoreError {
    CoreError::new("ERR_NOT_PAGED", format!("{} has more pages than a u32 index can name", heap.display()))
}

/// Checks a manifest's page list before any delta byte is read.
pub(crate) fn check_spec(spec: &DeltaSpec, delta_name: &str, target: &Path) -> CoreResult<()> {
    let expected_len = spec.page_indices.len() as u64 * RECORD_SIZE as u64;
    if spec.delta_len != expected_len {
        return Err(bad_delta(target, spec.delta_len, spec.page_indices.len(), expected_len));
    }
    let mut previous: Option<u32> = None;
    for &index in &spec.page_indices {
        if index >= spec.total_pages {
            return Err(CoreError::new(
                "ERR_BAD_MANIFEST",
                format!("{delta_name} lists page {index} but the heap has {} pages", spec.total_pages),
            ));
        }
        if previous.is_some_and(|p| p >= index) {
            return Err(CoreError::new(
                "ERR_BAD_MANIFEST",
                format!("{delta_name} lists page indices out of ascending order at {index}"),
            ));
        }
        previous = Some(index);
    }
    Ok(())
}

pub(crate) fn bad_delta(target: &Path, len: u64, count: usize, expected: u64) -> CoreError {
    CoreError::new(
        "ERR_BAD_DELTA",
        format!(
            "delta for {} has length {len} but {count} page records expected {expected}",
            target.display()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::test_support::{pages, read, TempDir};

    fn changed_after_50(i: usize) -> u64 {
        if i % 100 == 7 { 60 + i as u64 } else { 50 }
    }

    #[test]
    fn ships_only_pages_strictly_newer_than_the_base() {
        let dir = TempDir::new();
        let heap = pages(400, changed_after_50);
        let src = dir.write("T.heap", &heap);
        let out = write_delta(&src, &dir.path("T.heap.delta"), 50).unwrap();
        let spec = out.delta.unwrap();
        assert_eq!(spec.page_indices, vec![7, 107, 207, 307]);
        assert_eq!(spec.total_pages, 400);
        assert_eq!(out.max_page_lsn, 367);
        let delta = read(&dir.path("T.heap.delta"));
        assert_eq!(delta.len() as u64, spec.delta_len);
        assert_eq!(spec.delta_len, 4 * RECORD_SIZE as u64);
        assert_eq!(&delta[..4], &7u32.to_le_bytes());
        assert_eq!(&delta[4..4 + PAGE_SIZE], &heap[7 * PAGE_SIZE..8 * PAGE_SIZE]);
        assert_eq!(spec.blake3_hex, blake3::hash(&delta).to_hex().to_string());
    }

    #[test]
    fn no_changed_page_writes_no_file() {
        let dir = TempDir::new();
        let src = dir.write("T.heap", &pages(10, |_| 5));
        let out = write_delta(&src, &dir.path("d"), 5).unwrap();
        assert_eq!(out.delta, None);
        assert_eq!(out.max_page_lsn, 5);
        assert!(!dir.path("d").exists());
    }

    #[test]
    fn refuses_a_heap_that_is_not_page_aligned() {
        let dir = TempDir::new();
        let src = dir.write("T.heap", &[0u8; 5000]);
        assert_eq!(write_delta(&src, &dir.path("d"), 0).unwrap_err().code, "ERR_NOT_PAGED");
    }
}
