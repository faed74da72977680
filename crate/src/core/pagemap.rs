//! Content maps: the XXH3-128 of every page of a heap, stored beside each
//! backup as `<heap>.pagemap`. The engine does not stamp every change with an
//! LSN, so an increment compares each page's hash with the chain's map as well
//! as its LSN; the map of the new state travels with the increment, so the
//! base's bytes never need to be read again. BLAKE3 stays the integrity hash
//! of files: XXH3 only detects change.
//!
//! File layout: `PWBPMAP1`, u64 LE page count, then one u128 LE per page.
use super::digest::{hash_chunk, Expected, FileDigest};
use super::error::{CoreError, CoreResult};
use super::fsio::{self, Sink};
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

/// Writes `hashes` as a new map file (0600, fsynced); returns its digest.
pub fn write_map(path: &Path, hashes: &[PageHash]) -> CoreResult<FileDigest> {
    let mut out = Sink::new(fsio::create_new(path)?, path);
    let mut hasher = blake3::Hasher::new();
    let mut buf = Vec::with_capacity(fsio::CHUNK);
    buf.extend_from_slice(MAGIC);
    buf.extend_from_slice(&(hashes.len() as u64).to_le_bytes());
    for hash in hashes {
        buf.extend_from_slice(&hash.to_le_bytes());
        if buf.len() >= fsio::CHUNK {
            hasher.update(&buf);
            out.append(&buf)?;
            buf.clear();
        }
    }
    hasher.update(&buf);
    out.append(&buf)?;
    out.finish()?;
    Ok(FileDigest { len: map_len(hashes.len() as u64), blake3_hex: hasher.finalize().to_hex().to_string() })
}

/// Reads a map file after checking its length, BLAKE3 and header, decoding
/// it chunk by chunk (chunks are whole entries: CHUNK is a multiple of 16).
pub fn read_map(path: &Path, expected: &Expected) -> CoreResult<Vec<PageHash>> {
    let len = fsio::listed_len(path, expected.name, expected.artifact)?;
    expected.check_len(len)?;
    let bad = || CoreError::new("ERR_BAD_MANIFEST", format!("{} is not a content map (bad header or length)", expected.name));
    if len < HEADER as u64 || !(len - HEADER as u64).is_multiple_of(ENTRY as u64) {
        return Err(bad());
    }
    let mut hasher = blake3::Hasher::new();
    let mut hashes = Vec::with_capacity(((len - HEADER as u64) / ENTRY as u64) as usize);
    let mut header_ok = None;
    let read = fsio::for_each_chunk(path, |chunk| {
        hash_chunk(&mut hasher, chunk);
        let entries = match header_ok {
            None if chunk.len() < HEADER => {
                header_ok = Some(false);
                &chunk[..0]
            }
            None => {
                let count = u64::from_le_bytes(chunk[8..16].try_into().expect("8 bytes"));
                header_ok = Some(chunk.starts_with(MAGIC) && map_len(count) == len);
                &chunk[HEADER..]
            }
            Some(_) => chunk,
        };
        hashes.extend(entries.chunks_exact(ENTRY).map(|e| u128::from_le_bytes(e.try_into().expect("16 bytes"))));
        Ok(())
    })?;
    expected.check_len(read)?;
    expected.check_hash(hasher.finalize().to_hex().as_ref())?;
    if header_ok != Some(true) {
        return Err(bad());
    }
    Ok(hashes)
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
        let expected = Expected { name: "T.heap.pagemap", len: digest.len, blake3_hex: &digest.blake3_hex, artifact: "backup" };
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
