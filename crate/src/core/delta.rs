//! Page deltas: extracting the pages changed since the base into a
//! `<name>.delta` file. A page changed when its LSN is newer than the base's
//! or its content hash differs from the base's content map: the engine does
//! not stamp every change (see pagemap.rs).
use super::cancel;
use super::digest::FileDigest;
use super::error::{CoreError, CoreResult};
use super::fsio::{self, Sink};
use super::page::{page_lsn, PAGE_SIZE, RECORD_SIZE};
use super::pagemap::{hash_at, page_hash, MapReader, MapWriter, PageHash};
use std::path::Path;

/// The `Pages` entry of an increment, as computed or as read from a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeltaSpec {
    pub total_pages: u32,
    pub page_indices: Vec<u32>,
    pub delta_len: u64,
    pub blake3_hex: String,
}

/// A backup-side delta, the highest page LSN of the whole heap and the
/// content map of the heap as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeltaOutcome {
    /// None when no page changed: no delta file is written.
    pub delta: Option<DeltaSpec>,
    pub max_page_lsn: u64,
    pub map: FileDigest,
}

/// The base's content map of a heap.
#[derive(Clone, Copy)]
pub enum BaseMap<'a> {
    /// A stored `.pagemap` already checked (`check_map`), with its page count:
    /// read range by range, never whole.
    Stored { path: &'a Path, pages: u64 },
    /// Computed from the base's pages (a base without maps).
    Computed(&'a [PageHash]),
}

/// What the base holds of a heap: its source LSN and the content map.
#[derive(Clone, Copy)]
pub struct Base<'a> {
    pub lsn: u64,
    pub map: BaseMap<'a>,
}

impl Base<'_> {
    fn pages(&self) -> u64 {
        match self.map {
            BaseMap::Stored { pages, .. } => pages,
            BaseMap::Computed(map) => map.len() as u64,
        }
    }
}

/// The base's hashes of consecutive pages from `first` on.
enum BaseHashes<'a> {
    Stored(MapReader, &'a Path),
    Computed(&'a [PageHash], usize),
}

impl<'a> BaseHashes<'a> {
    fn at(base: &Base<'a>, first: u32) -> CoreResult<Self> {
        Ok(match base.map {
            BaseMap::Stored { path, pages } => BaseHashes::Stored(MapReader::open_at(path, pages, first as u64)?, path),
            BaseMap::Computed(map) => BaseHashes::Computed(map, first as usize),
        })
    }

    fn next(&mut self) -> CoreResult<PageHash> {
        match self {
            BaseHashes::Stored(reader, path) => reader.next(path),
            BaseHashes::Computed(map, at) => {
                *at += 1;
                Ok(hash_at(map, *at - 1))
            }
        }
    }
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

/// Scans the heap at `heap` and writes every page that changed since `base`
/// to `delta_path`, indices ascending, and the heap's new content map to
/// `map_path`. A heap that grew with only zero pages still ships its last
/// page, so that the increment records its new length.
///
/// The scan is the hot path of an incremental backup: it reads ranges of the
/// heap on all cores, hashing every page and remembering the indices of
/// changed ones; those few pages are then read again and written out in order.
pub fn write_delta(heap: &Path, delta_path: &Path, base: Base, map_path: &Path) -> CoreResult<DeltaOutcome> {
    let len = fsio::open_read(heap)?.metadata().map_err(|e| CoreError::io("stat", heap, e))?.len();
    if len % PAGE_SIZE as u64 != 0 {
        return Err(not_paged(heap));
    }
    let total_pages = u32::try_from(len / PAGE_SIZE as u64).map_err(|_| too_many_pages(heap))?;
    let threads = if len < PARALLEL_SCAN_MIN { 1 } else { std::thread::available_parallelism().map_or(1, |n| n.get()) };
    let map = MapWriter::create(map_path)?;
    let mut scan = scan_ranges(heap, total_pages, &base, &map, threads)?;
    if scan.changed.is_empty() && total_pages as u64 > base.pages() {
        let last = total_pages - 1;
        scan.push(last, last_page_hash(heap, last)?);
    }
    let mut writer = DeltaWriter {
        path: delta_path,
        out: None,
        batch: Vec::with_capacity(fsio::CHUNK + RECORD_SIZE),
        hasher: blake3::Hasher::new(),
        indices: Vec::new(),
    };
    copy_pages(heap, &scan, &mut writer)?;
    let delta = writer.finish(total_pages)?;
    Ok(DeltaOutcome { delta, max_page_lsn: scan.max_lsn, map: map.finish(total_pages as u64)? })
}

fn last_page_hash(heap: &Path, index: u32) -> CoreResult<PageHash> {
    let mut page = fsio::buffer(PAGE_SIZE);
    read_pages(&fsio::open_read(heap)?, heap, index, &mut page)?;
    Ok(page_hash(&page))
}

/// What a scan of (part of) a heap found: the changed pages, the low half of
/// the hash each had when scanned (to notice a page changing before it is
/// copied; half is plenty and keeps the list small), and the highest LSN.
#[derive(Default)]
struct Scan {
    changed: Vec<u32>,
    scanned: Vec<u64>,
    max_lsn: u64,
}

impl Scan {
    fn push(&mut self, index: u32, hash: PageHash) {
        self.changed.push(index);
        self.scanned.push(hash as u64);
    }
}

/// Scans the heap in `threads` contiguous ranges at once; each writes its
/// part of the new content map.
fn scan_ranges(heap: &Path, total_pages: u32, base: &Base, map: &MapWriter, threads: usize) -> CoreResult<Scan> {
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
                scope.spawn(move || cancel::with(token, || scan_range(heap, start, end, base, map)))
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("scan thread panicked")).collect::<Vec<_>>()
    });
    let parts = results.into_iter().collect::<CoreResult<Vec<_>>>()?;
    let count = parts.iter().map(|p| p.changed.len()).sum();
    let mut all = Scan { changed: Vec::with_capacity(count), scanned: Vec::with_capacity(count), max_lsn: 0 };
    for part in parts {
        all.changed.extend(part.changed);
        all.scanned.extend(part.scanned);
        all.max_lsn = all.max_lsn.max(part.max_lsn);
    }
    Ok(all)
}

fn scan_range(heap: &Path, start: u32, end: u32, base: &Base, map: &MapWriter) -> CoreResult<Scan> {
    let file = fsio::open_read(heap)?;
    let mut buf = fsio::buffer(fsio::CHUNK);
    let mut base_hashes = BaseHashes::at(base, start)?;
    let mut hashes = Vec::with_capacity(fsio::CHUNK / PAGE_SIZE);
    let mut scan = Scan::default();
    let mut page = start;
    while page < end {
        let count = (end - page).min((fsio::CHUNK / PAGE_SIZE) as u32);
        let bytes = &mut buf[..count as usize * PAGE_SIZE];
        read_pages(&file, heap, page, bytes)?;
        cancel::advance(bytes.len() as u64);
        hashes.clear();
        for (i, p) in bytes.chunks_exact(PAGE_SIZE).enumerate() {
            let (hash, lsn, base_hash) = (page_hash(p), page_lsn(p), base_hashes.next()?);
            scan.max_lsn = scan.max_lsn.max(lsn);
            if lsn > base.lsn || hash != base_hash {
                scan.push(page + i as u32, hash);
            }
            hashes.push(hash);
        }
        map.put(page as u64, &hashes)?;
        page += count;
    }
    Ok(scan)
}

fn read_pages(file: &std::fs::File, heap: &Path, first: u32, into: &mut [u8]) -> CoreResult<()> {
    use std::os::unix::fs::FileExt;
    cancel::check()?;
    file.read_exact_at(into, first as u64 * PAGE_SIZE as u64).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => changed_under_us(heap),
        _ => CoreError::io("read", heap, e),
    })
}

pub(crate) fn changed_under_us(heap: &Path) -> CoreError {
    CoreError::new("ERR_SOURCE_CHANGED", format!("{} changed while it was being backed up", heap.display()))
}

/// Reads the changed pages again, in runs of consecutive indices, into the delta.
fn copy_pages(heap: &Path, scan: &Scan, writer: &mut DeltaWriter) -> CoreResult<()> {
    let changed = &scan.changed;
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
            // The page must still be the one the scan hashed into the map.
            let index = changed[at + i];
            if page_hash(page) as u64 != scan.scanned[at + i] {
                return Err(changed_under_us(heap));
            }
            writer.push(index, page)?;
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
        format!("delta for {} has length {len} but {count} page records expected {expected}", target.display()),
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::core::pagemap::hash_pages;
    use crate::core::test_support::{pages, read, TempDir};

    /// The content map of a heap's bytes.
    pub(crate) fn map_of(heap: &[u8]) -> Vec<PageHash> {
        let mut hashes = Vec::new();
        hash_pages(heap, &mut hashes);
        hashes
    }

    fn changed_after_50(i: usize) -> u64 {
        if i % 100 == 7 {
            60 + i as u64
        } else {
            50
        }
    }

    #[test]
    fn ships_pages_newer_than_the_base_and_writes_the_new_map() {
        let dir = TempDir::new();
        let heap = pages(400, changed_after_50);
        let base_map = map_of(&pages(400, |_| 50));
        let src = dir.write("T.heap", &heap);
        let out = write_delta(
            &src,
            &dir.path("T.heap.delta"),
            Base { lsn: 50, map: BaseMap::Computed(&base_map) },
            &dir.path("m"),
        )
        .unwrap();
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
        assert_eq!(out.map.blake3_hex, blake3::hash(&read(&dir.path("m"))).to_hex().to_string());
    }

    #[test]
    fn a_stored_base_map_is_read_range_by_range() {
        let dir = TempDir::new();
        let old = pages(700, |_| 9); // above the parallel-scan size: two ranges, two readers
        let mut new = old.clone();
        for index in [1usize, 300, 699] {
            new[index * PAGE_SIZE + 99] ^= 1;
        }
        let big = [new.clone(), vec![0u8; 16 << 20]].concat();
        let stored = crate::core::pagemap::write_map(&dir.path("base.map"), &map_of(&old)).unwrap();
        let src = dir.write("T.heap", &big);
        let base = Base { lsn: 9, map: BaseMap::Stored { path: &dir.path("base.map"), pages: 700 } };
        let out = write_delta(&src, &dir.path("d"), base, &dir.path("m")).unwrap();
        assert_eq!(out.delta.unwrap().page_indices, vec![1, 300, 699]); // zero pages past the base's end match
        assert_eq!(
            read(&dir.path("m")),
            read(&{
                crate::core::pagemap::write_map(&dir.path("expected"), &map_of(&big)).unwrap();
                dir.path("expected")
            })
        );
        assert!(stored.len > 0);
    }

    #[test]
    fn ships_pages_whose_content_changed_under_an_old_lsn() {
        let dir = TempDir::new();
        let old = pages(50, |_| 9);
        let mut new = old.clone();
        new[3 * PAGE_SIZE + 100] ^= 1; // an update the engine did not stamp
        new[..4].copy_from_slice(&7u32.to_le_bytes()); // page 0: header rewritten, LSN 0 kept
        let src = dir.write("T.heap", &new);
        let out =
            write_delta(&src, &dir.path("d"), Base { lsn: 9, map: BaseMap::Computed(&map_of(&old)) }, &dir.path("m"))
                .unwrap();
        assert_eq!(out.delta.unwrap().page_indices, vec![0, 3]);
    }

    #[test]
    fn no_changed_page_writes_no_delta_unless_the_heap_grew() {
        let dir = TempDir::new();
        let heap = pages(10, |_| 5);
        let src = dir.write("T.heap", &heap);
        let out =
            write_delta(&src, &dir.path("d"), Base { lsn: 5, map: BaseMap::Computed(&map_of(&heap)) }, &dir.path("m"))
                .unwrap();
        assert_eq!(out.delta, None);
        assert_eq!(out.max_page_lsn, 5);
        assert!(!dir.path("d").exists());

        let mut grown = heap.clone();
        grown.resize(12 * PAGE_SIZE, 0);
        let src = dir.write("T.heap", &grown);
        let out =
            write_delta(&src, &dir.path("d"), Base { lsn: 5, map: BaseMap::Computed(&map_of(&heap)) }, &dir.path("m2"))
                .unwrap();
        let spec = out.delta.unwrap();
        assert_eq!((spec.total_pages, spec.page_indices), (12, vec![11]));
    }

    #[test]
    fn refuses_a_heap_that_is_not_page_aligned() {
        let dir = TempDir::new();
        let src = dir.write("T.heap", &[0u8; 5000]);
        let err = write_delta(&src, &dir.path("d"), Base { lsn: 0, map: BaseMap::Computed(&[]) }, &dir.path("m"))
            .unwrap_err();
        assert_eq!(err.code, "ERR_NOT_PAGED");
    }
}
