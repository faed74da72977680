//! Reads a 0.29 heap file's raw pages (never through the engine): the heap
//! format of its page-0 superblock and how many overflow pages it holds.
//!
//! powdb-storage 0.29.0 (`heap.rs`, `page.rs`), all integers little-endian:
//! - every page: `[0..4]` page_id, `[4]` page_type (1 Data, 2 Index,
//!   3 Overflow, 4 Wal, 5 Meta), `[5]` flags, `[6..8]` free_start,
//!   `[8..16]` LSN, `[16..20]` CRC-32; 20-byte header.
//! - page 0 superblock (page_type 5 Meta, LSN 0): `[20..25]` `PHEAP`,
//!   `[25..27]` heap format version u16, `[27..29]` flags (0),
//!   `[29..31]` page size (4096), `[31..35]` first data page (1).
//!   Version 2 (`HEAP_FORMAT_VERSION`): no overflow chain has ever been
//!   written. Version 3 (`HEAP_FORMAT_VERSION_WITH_OVERFLOW`): written in
//!   place (CRC re-stamped, LSN still 0) by the first overflow chain
//!   write; it never goes back to 2, even when every chain is freed.
//!   Any other version is refused (`unsupported heap format version`).
//!   A page 0 that is not Meta is a legacy pre-0.5 heap with no superblock,
//!   which the engine treats as version 1.
//! - overflow page (page_type 3): `[20..24]` next page u32 (`u32::MAX` =
//!   end of chain), `[24..26]` chunk length u16, `[26..28]` reserved,
//!   `[28..]` up to 4068 payload bytes.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

const PAGE_SIZE: usize = 4096;
const PAGE_TYPE_OVERFLOW: u8 = 3;
const PAGE_TYPE_META: u8 = 5;
const HEAP_MAGIC: &[u8; 5] = b"PHEAP";
const VERSION_OFFSET: usize = 25;

pub struct HeapInfo {
    /// Superblock heap format (1 for a legacy heap without superblock);
    /// `None` when the file has no complete page 0.
    pub format: Option<u16>,
    /// Pages whose page_type is Overflow, live or freed (a freed chain page
    /// keeps its type until reused).
    pub overflow_pages: u64,
}

pub fn inspect(path: &Path) -> io::Result<HeapInfo> {
    let mut file = File::open(path)?;
    let mut page = [0u8; PAGE_SIZE];
    let mut info = HeapInfo { format: None, overflow_pages: 0 };
    let mut index = 0u64;
    while read_page(&mut file, &mut page)? {
        if index == 0 {
            info.format = Some(superblock_version(&page));
        }
        if page[4] == PAGE_TYPE_OVERFLOW {
            info.overflow_pages += 1;
        }
        index += 1;
    }
    Ok(info)
}

fn superblock_version(page: &[u8; PAGE_SIZE]) -> u16 {
    if page[4] != PAGE_TYPE_META || &page[20..25] != HEAP_MAGIC {
        return 1;
    }
    u16::from_le_bytes([page[VERSION_OFFSET], page[VERSION_OFFSET + 1]])
}

/// Fills `page`; false at end of file. A trailing partial page is ignored
/// here: the engine already refused to open such a heap.
fn read_page(file: &mut File, page: &mut [u8; PAGE_SIZE]) -> io::Result<bool> {
    let mut filled = 0;
    while filled < PAGE_SIZE {
        match file.read(&mut page[filled..])? {
            0 => return Ok(false),
            n => filled += n,
        }
    }
    Ok(true)
}
