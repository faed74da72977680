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
