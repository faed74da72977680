//! Content maps: the XXH3-128 of every page of a heap, stored beside each
//! backup as `<heap>.pagemap`. The engine does not stamp every change with an
//! LSN, so an increment compares each page's hash with the chain's map as well
//! as its LSN; the map of the new state travels with the increment, so the
//! base's bytes never need to be read again. BLAKE3 stays the integrity hash
//! of files: XXH3 only detects change.
//!
//! File layout: `PWBPMAP1`, u64 LE page count, then one u128 LE per page.
use super::digest::{Expected, FileDigest};
use super::error::{CoreError, CoreResult};
use super::fsio;
use super::page::PAGE_SIZE;
use std::path::Path;
use std::sync::LazyLock;
use xxhash_rust::xxh3::xxh3_128;

pub type PageHash = u128;

const MAGIC: &[u8; 8] = b"PWBPMAP1";
const HEADER: usize = 16;
const ENTRY: usize = 16;

pub fn page_hash(page: &[u8]) -> PageHash {
    xxh3_128(page)
}

/// A page the file does not hold yet reads as zeros (files are zero-extended).
pub static ZERO_PAGE: LazyLock<PageHash> = LazyLock::new(|| page_hash(&[0u8; PAGE_SIZE]));

/// The chain's hash of page `index`, zeros beyond its end.
pub fn hash_at(map: &[PageHash], index: usize) -> PageHash {
    map.get(index).copied().unwrap_or(*ZERO_PAGE)
}

/// Hashes of the pages of a page-aligned buffer, appended to `into`.
pub fn hash_pages(pages: &[u8], into: &mut Vec<PageHash>) {
    into.extend(pages.chunks_exact(PAGE_SIZE).map(page_hash));
}

/// Size of the map file of a heap of `pages` pages.
pub fn map_len(pages: u64) -> u64 {
    HEADER as u64 + pages * ENTRY as u64
}

/// Writes a map file in any order of pages (ranges scanned on several
/// threads write their own parts), in bounded memory: the header goes in last.
pub struct MapWriter<'a> {
    file: std::fs::File,
    path: &'a Path,
}

impl<'a> MapWriter<'a> {
    pub fn create(path: &'a Path) -> CoreResult<Self> {
        Ok(MapWriter { file: fsio::create_new(path)?, path })
    }

    /// Writes the hashes of pages `first..first + hashes.len()`.
    pub fn put(&self, first: u64, hashes: &[PageHash]) -> CoreResult<()> {
        use std::os::unix::fs::FileExt;
        let bytes: Vec<u8> = hashes.iter().flat_map(|h| h.to_le_bytes()).collect();
        let offset = HEADER as u64 + first * ENTRY as u64;
        self.file.write_all_at(&bytes, offset).map_err(|e| CoreError::io("write", self.path, e))
    }

    /// Writes the header of a map of `pages` pages, makes the file durable and
    /// returns its digest (read back from the page cache in small reads: the
    /// map is 1/256 of its heap, no reason to spend a large buffer on it).
    pub fn finish(self, pages: u64) -> CoreResult<FileDigest> {
        use std::os::unix::fs::FileExt;
        let mut header = MAGIC.to_vec();
        header.extend_from_slice(&pages.to_le_bytes());
        let io = |what, e| CoreError::io(what, self.path, e);
        self.file.write_all_at(&header, 0).map_err(|e| io("write", e))?;
        self.file.set_len(map_len(pages)).map_err(|e| io("truncate", e))?;
        fsio::sync(&self.file, self.path)?;
        let mut hasher = blake3::Hasher::new();
        let len = fsio::for_each_chunk_of(self.path, SMALL_CHUNK, |chunk| {
            hasher.update(chunk);
            Ok(())
        })?;
        Ok(FileDigest { len, blake3_hex: hasher.finalize().to_hex().to_string() })
    }
}

/// Writes `hashes` as a new map file (0600, fsynced); returns its digest.
pub fn write_map(path: &Path, hashes: &[PageHash]) -> CoreResult<FileDigest> {
    let writer = MapWriter::create(path)?;
    for (i, part) in hashes.chunks(fsio::CHUNK / ENTRY).enumerate() {
        writer.put((i * (fsio::CHUNK / ENTRY)) as u64, part)?;
    }
    writer.finish(hashes.len() as u64)
}

/// Checks a stored map's length, BLAKE3 and header in one streamed pass,
/// keeping nothing; returns its page count.
pub fn check_map(path: &Path, expected: &Expected) -> CoreResult<u64> {
    let len = fsio::listed_len(path, expected.name, expected.artifact)?;
    expected.check_len(len)?;
    let mut hasher = blake3::Hasher::new();
    let mut head = Vec::with_capacity(HEADER);
    let read = fsio::for_each_chunk_of(path, SMALL_CHUNK, |chunk| {
        hasher.update(chunk);
        let want = HEADER - head.len();
        head.extend_from_slice(&chunk[..want.min(chunk.len())]);
        Ok(())
    })?;
    expected.check_len(read)?;
    expected.check_hash(hasher.finalize().to_hex().as_ref())?;
    let count = head.get(8..16).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
    match count {
        Some(pages) if head.starts_with(MAGIC) && map_len(pages) == len => Ok(pages),
        _ => Err(CoreError::new(
            "ERR_BAD_MANIFEST",
            format!("{} is not a content map (bad header or length)", expected.name),
        )),
    }
}

/// Reads a (checked) map's entries in page order from a given page on, in
/// bounded memory; past the map's end every page reads as a zero page.
pub struct MapReader {
    file: std::fs::File,
    pages: u64,
    next_page: u64,
    buf: Vec<u8>,
    at: usize,
}

/// Reads of map files: maps are small, and several are read at once.
const SMALL_CHUNK: usize = 64 << 10;

impl MapReader {
    pub fn open_at(path: &Path, pages: u64, first: u64) -> CoreResult<Self> {
        Ok(MapReader { file: fsio::open_read(path)?, pages, next_page: first, buf: Vec::new(), at: 0 })
    }

    pub fn next(&mut self, path: &Path) -> CoreResult<PageHash> {
        use std::os::unix::fs::FileExt;
        if self.next_page >= self.pages {
            self.next_page += 1;
            return Ok(*ZERO_PAGE);
        }
        if self.at == self.buf.len() {
            let count = ((self.pages - self.next_page) as usize).min(SMALL_CHUNK / ENTRY);
            self.buf.resize(count * ENTRY, 0);
            let offset = HEADER as u64 + self.next_page * ENTRY as u64;
            self.file.read_exact_at(&mut self.buf, offset).map_err(|e| CoreError::io("read", path, e))?;
            self.at = 0;
        }
        let entry = &self.buf[self.at..self.at + ENTRY];
        self.at += ENTRY;
        self.next_page += 1;
        Ok(u128::from_le_bytes(entry.try_into().expect("16 bytes")))
    }
}

/// Reads a whole map file after checking it (for comparisons that need random access).
pub fn read_map(path: &Path, expected: &Expected) -> CoreResult<Vec<PageHash>> {
    let pages = check_map(path, expected)?;
    let mut reader = MapReader::open_at(path, pages, 0)?;
    (0..pages).map(|_| reader.next(path)).collect()
}

/// What a heap's pages say about its format, gathered page by page: the
/// powdb-storage 0.29 superblock (page 0, `PHEAP` at byte 20, u16 version at
/// 25: 2 = no overflow chains, 3 = has them) and the first overflow page
/// (page type 3). A v2 superblock over overflow pages makes PowQL skip the
/// overflow rows.
#[derive(Debug, Default, Clone)]
pub struct HeapShape {
    superblock_version: Option<u16>,
    first_overflow: Option<u32>,
}

const PAGE_TYPE_OVERFLOW: u8 = 3;
const PAGE_TYPE_META: u8 = 5;

impl HeapShape {
    pub fn observe(&mut self, index: u32, page: &[u8]) {
        if index == 0 && page[4] == PAGE_TYPE_META && &page[20..25] == b"PHEAP" {
            self.superblock_version = Some(u16::from_le_bytes([page[25], page[26]]));
        } else if index > 0 && page[4] == PAGE_TYPE_OVERFLOW && self.first_overflow.is_none_or(|f| index < f) {
            self.first_overflow = Some(index);
        }
    }

    /// An inconsistency the engine would silently misread, with its page.
    pub fn problem(&self) -> Option<(u32, String)> {
        match (self.superblock_version, self.first_overflow) {
            (Some(2), Some(page)) => Some((
                page,
                "heap superblock says format 2 (no overflow chains) but this is an overflow page: \
                 the engine would skip its rows"
                    .to_string(),
            )),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::test_support::{pages, TempDir};

    #[test]
    fn a_map_round_trips_and_is_checked() {
        let dir = TempDir::new();
        let heap = pages(300, |i| i as u64);
        let mut hashes = Vec::new();
        hash_pages(&heap, &mut hashes);
        let digest = write_map(&dir.path("m"), &hashes).unwrap();
        assert_eq!(digest.len, 16 + 300 * 16);
        let expected =
            Expected { name: "T.heap.pagemap", len: digest.len, blake3_hex: &digest.blake3_hex, artifact: "backup" };
        assert_eq!(read_map(&dir.path("m"), &expected).unwrap(), hashes);

        let mut bytes = std::fs::read(dir.path("m")).unwrap();
        bytes[100] ^= 1;
        dir.write("m", &bytes);
        assert_eq!(read_map(&dir.path("m"), &expected).unwrap_err().code, "ERR_INTEGRITY");
        assert_eq!(hash_at(&hashes, 300), *ZERO_PAGE);
    }

    fn superblock(version: u16) -> Vec<u8> {
        let mut page = vec![0u8; PAGE_SIZE];
        page[4] = PAGE_TYPE_META;
        page[20..25].copy_from_slice(b"PHEAP");
        page[25..27].copy_from_slice(&version.to_le_bytes());
        page
    }

    #[test]
    fn a_v2_superblock_over_overflow_pages_is_a_problem() {
        let mut overflow = vec![0u8; PAGE_SIZE];
        overflow[4] = PAGE_TYPE_OVERFLOW;
        for (version, problem) in [(2, Some(7)), (3, None)] {
            let mut shape = HeapShape::default();
            shape.observe(0, &superblock(version));
            shape.observe(9, &overflow);
            shape.observe(7, &overflow);
            assert_eq!(shape.problem().map(|p| p.0), problem);
        }
        let mut plain = HeapShape::default();
        plain.observe(0, &superblock(2));
        assert!(plain.problem().is_none());
    }
}
