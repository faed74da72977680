//! PowDB heap page layout (see powdb-format.md §2).

pub const PAGE_SIZE: usize = 4096;
/// A delta record: u32 LE page index followed by the page bytes.
pub const RECORD_SIZE: usize = 4 + PAGE_SIZE;

/// The u64 LSN stamped in bytes [8..16] of every page; 0 means never written.
pub fn page_lsn(page: &[u8]) -> u64 {
    u64::from_le_bytes(page[8..16].try_into().expect("page holds 16 header bytes"))
}

/// Highest page LSN in a page-aligned buffer.
pub fn max_page_lsn(pages: &[u8]) -> u64 {
    pages.chunks_exact(PAGE_SIZE).map(page_lsn).max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_little_endian_lsn_at_offset_8() {
        let mut page = vec![0u8; PAGE_SIZE];
        page[8..16].copy_from_slice(&0x0102_0304_0506_0708u64.to_le_bytes());
        assert_eq!(page_lsn(&page), 0x0102_0304_0506_0708);
    }

    #[test]
    fn max_over_pages_and_zero_for_empty() {
        let mut pages = vec![0u8; PAGE_SIZE * 3];
        pages[PAGE_SIZE + 8] = 9;
        pages[2 * PAGE_SIZE + 8] = 4;
        assert_eq!(max_page_lsn(&pages), 9);
        assert_eq!(max_page_lsn(&[]), 0);
    }
}

/// Engine page format versions this build knows (flags bits 4-7).
pub const MAX_PAGE_FORMAT: u8 = 1;
const FLAG_HAS_CRC: u8 = 1;

/// CRC-32 of a page with its CRC field [16..20] taken as zero.
pub fn page_crc(page: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&page[..16]);
    h.update(&[0; 4]);
    h.update(&page[20..]);
    h.finalize()
}

/// What is wrong with a page, if anything: an unknown format version, a CRC
/// mismatch (only when the page says it has a CRC), or an LSN above `max_lsn`.
pub fn page_problem(page: &[u8], max_lsn: u64) -> Option<(&'static str, String)> {
    let flags = page[5];
    let version = flags >> 4;
    if version > MAX_PAGE_FORMAT {
        return Some(("ERR_PAGE_FORMAT", format!("unsupported page format version: {version}")));
    }
    if flags & FLAG_HAS_CRC != 0 {
        let stored = u32::from_le_bytes(page[16..20].try_into().expect("4 bytes"));
        if stored != page_crc(page) {
            return Some(("ERR_PAGE_CRC", "page CRC32 mismatch".to_string()));
        }
    }
    let lsn = page_lsn(page);
    if lsn > max_lsn {
        return Some(("ERR_PAGE_LSN", format!("page LSN {lsn} is above the manifest's source_lsn {max_lsn}")));
    }
    None
}

#[cfg(test)]
mod check_tests {
    use super::*;

    fn page_with_crc(lsn: u64) -> Vec<u8> {
        let mut page = vec![7u8; PAGE_SIZE];
        page[5] = 0x10 | FLAG_HAS_CRC;
        page[8..16].copy_from_slice(&lsn.to_le_bytes());
        let crc = page_crc(&page);
        page[16..20].copy_from_slice(&crc.to_le_bytes());
        page
    }

    #[test]
    fn accepts_good_and_zero_pages() {
        assert_eq!(page_problem(&page_with_crc(5), 5), None);
        assert_eq!(page_problem(&[0u8; PAGE_SIZE], 0), None);
    }

    #[test]
    fn finds_crc_format_and_lsn_problems() {
        let mut bad = page_with_crc(5);
        bad[100] ^= 1;
        assert_eq!(page_problem(&bad, 5).unwrap().0, "ERR_PAGE_CRC");
        let mut future = page_with_crc(5);
        future[5] = 0x20;
        assert_eq!(page_problem(&future, 5).unwrap().0, "ERR_PAGE_FORMAT");
        assert_eq!(page_problem(&page_with_crc(6), 5).unwrap().0, "ERR_PAGE_LSN");
    }
}
