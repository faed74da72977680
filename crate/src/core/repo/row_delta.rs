//! Row deltas (format 4): before a compression block is compressed, each
//! heap data page in it stores its rows as byte differences from the row
//! before, and its slot directory as differences from the slot before.
//! Consecutive rows of a table share their layout, and often their values
//! (ids and times that count up, repeated text), which zstd cannot see
//! across rows of different lengths or across counters: on PowDB heaps the
//! block then compresses several times smaller. A page the filter cannot
//! read as a well-formed data page (rows in slot order, none overlapping) is
//! stored as it is; the pages filtered are listed in a trailer after the
//! block's data, so that any page, whatever it holds, comes back exactly.
use crate::core::error::{CoreError, CoreResult};
use crate::core::page::PAGE_SIZE;

const DATA_PAGE: u8 = 1;
/// Rows start after the page header.
const ROWS_START: usize = 20;
/// The slot count is the page's last two bytes; slot `i` (offset, length)
/// lies four bytes below slot `i - 1`, the first at `SLOT_COUNT_AT - 4`.
const SLOT_COUNT_AT: usize = PAGE_SIZE - 2;
const TRAILER_MAGIC: &[u8; 4] = b"RDL1";

fn u16_at(page: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([page[at], page[at + 1]])
}

fn put_u16(page: &mut [u8], at: usize, v: u16) {
    page[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

fn slot_at(i: usize) -> usize {
    SLOT_COUNT_AT - 4 * (i + 1)
}

/// A slot's length that marks a deleted row (its offset is kept).
const DELETED: u16 = 0xffff;

/// The slots of a data page as (slot, offset, length) of its live rows, in
/// slot order, when they lie between the header and the slot directory
/// without overlapping and there are at least two.
fn rows(page: &[u8]) -> Option<Vec<(usize, usize, usize)>> {
    if page[4] != DATA_PAGE {
        return None;
    }
    let n = u16_at(page, SLOT_COUNT_AT) as usize;
    let directory = SLOT_COUNT_AT.checked_sub(4 * n).filter(|&d| d >= ROWS_START)?;
    let mut live = Vec::with_capacity(n);
    for i in 0..n {
        let (off, len) = (u16_at(page, slot_at(i)) as usize, u16_at(page, slot_at(i) + 2));
        if len == DELETED {
            continue;
        }
        let len = len as usize;
        if off < ROWS_START || off + len > directory {
            return None;
        }
        live.push((i, off, len));
    }
    let mut by_offset: Vec<(usize, usize)> = live.iter().map(|&(_, off, len)| (off, off + len)).collect();
    by_offset.sort_unstable();
    let apart = by_offset.windows(2).all(|w| w[0].1 <= w[1].0);
    (live.len() >= 2 && apart).then_some(live)
}

/// The first `m` bytes of the row at `off`, to change, and of the row at
/// `prev_off`: apart, as `rows` checked (so that the loop over them vectorizes).
fn row_pair(page: &mut [u8], off: usize, prev_off: usize, m: usize) -> (&mut [u8], &[u8]) {
    if prev_off < off {
        let (before, from) = page.split_at_mut(off);
        (&mut from[..m], &before[prev_off..prev_off + m])
    } else {
        let (before, from) = page.split_at_mut(prev_off);
        (&mut before[off..off + m], &from[..m])
    }
}

/// Filters one page in place, if it is a well-formed data page: each live
/// row but the first minus the live row before it (over their common
/// length), each live slot's offset but the first as its distance from the
/// end of the row before (lengths and deleted slots stay as they are).
fn encode_page(page: &mut [u8]) -> bool {
    let Some(rows) = rows(page) else { return false };
    // Backwards, so that the row before is still as it was.
    for w in rows.windows(2).rev() {
        let ((slot, off, len), (_, prev_off, prev_len)) = (w[1], w[0]);
        let (row, prev) = row_pair(page, off, prev_off, len.min(prev_len));
        row.iter_mut().zip(prev).for_each(|(b, p)| *b = b.wrapping_sub(*p));
        put_u16(page, slot_at(slot), (off as u16).wrapping_sub((prev_off + prev_len) as u16));
    }
    true
}

/// Undoes `encode_page`.
fn decode_page(page: &mut [u8]) -> CoreResult<()> {
    let n = u16_at(page, SLOT_COUNT_AT) as usize;
    if 4 * n > SLOT_COUNT_AT - ROWS_START {
        return Err(damaged());
    }
    let mut prev_end: Option<u16> = None;
    for i in 0..n {
        let len = u16_at(page, slot_at(i) + 2);
        if len == DELETED {
            continue;
        }
        let off = match prev_end {
            Some(end) => u16_at(page, slot_at(i)).wrapping_add(end),
            None => u16_at(page, slot_at(i)),
        };
        put_u16(page, slot_at(i), off);
        prev_end = Some(off.wrapping_add(len));
    }
    let rows = rows(page).ok_or_else(damaged)?;
    for w in rows.windows(2) {
        let ((_, off, len), (_, prev_off, prev_len)) = (w[1], w[0]);
        let (row, prev) = row_pair(page, off, prev_off, len.min(prev_len));
        row.iter_mut().zip(prev).for_each(|(b, p)| *b = b.wrapping_add(*p));
    }
    Ok(())
}

fn damaged() -> CoreError {
    CoreError::new("ERR_INTEGRITY", "a compression block's row deltas do not decode".to_string())
}

/// Filters the pages of `block` that `pages` names (block offsets of whole
/// 4096-byte pages, ascending), then appends the trailer listing those it
/// filtered: runs of consecutive pages, their count, and a magic.
pub fn encode(block: &mut Vec<u8>, pages: impl Iterator<Item = usize>) {
    let mut runs: Vec<(u32, u32)> = Vec::new();
    for at in pages {
        if !encode_page(&mut block[at..at + PAGE_SIZE]) {
            continue;
        }
        match runs.last_mut() {
            Some((start, count)) if *start as usize + *count as usize * PAGE_SIZE == at => *count += 1,
            _ => runs.push((at as u32, 1)),
        }
    }
    for (start, count) in &runs {
        block.extend_from_slice(&start.to_le_bytes());
        block.extend_from_slice(&count.to_le_bytes());
    }
    block.extend_from_slice(&(runs.len() as u32).to_le_bytes());
    block.extend_from_slice(TRAILER_MAGIC);
}

/// The most bytes `encode` appends to a block of `len` bytes.
pub fn max_trailer(len: usize) -> usize {
    8 + 8 * (len / PAGE_SIZE)
}

/// Undoes `encode` on a decompressed block: decodes the pages its trailer
/// lists and removes the trailer, leaving the block's `len` bytes.
pub fn decode(block: &mut Vec<u8>, len: usize) -> CoreResult<()> {
    let trailer = block.get(len..).filter(|t| t.len() >= 8 && t.ends_with(TRAILER_MAGIC)).ok_or_else(damaged)?;
    let runs = u32::from_le_bytes(trailer[trailer.len() - 8..trailer.len() - 4].try_into().expect("4 bytes")) as usize;
    if trailer.len() != 8 + 8 * runs {
        return Err(damaged());
    }
    let list: Vec<(usize, usize)> = trailer[..8 * runs]
        .chunks_exact(8)
        .map(|r| {
            let start = u32::from_le_bytes(r[..4].try_into().expect("4 bytes")) as usize;
            (start, u32::from_le_bytes(r[4..].try_into().expect("4 bytes")) as usize)
        })
        .collect();
    block.truncate(len);
    for (start, count) in list {
        let end = count.checked_mul(PAGE_SIZE).and_then(|n| n.checked_add(start)).filter(|&e| e <= len);
        let end = end.ok_or_else(damaged)?;
        for page in block[start..end].chunks_exact_mut(PAGE_SIZE) {
            decode_page(page)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::test_support::{engine_heap, Rng, Rows};

    fn round_trip(block: &[u8]) -> (Vec<u8>, usize) {
        let mut encoded = block.to_vec();
        encode(&mut encoded, (0..block.len() / PAGE_SIZE).map(|p| p * PAGE_SIZE));
        let filtered = block.chunks_exact(PAGE_SIZE).zip(encoded.chunks_exact(PAGE_SIZE)).filter(|(a, b)| a != b);
        let changed = filtered.count();
        assert!(encoded.len() <= block.len() + max_trailer(block.len()));
        let stored = encoded.clone();
        decode(&mut encoded, block.len()).unwrap();
        assert!(encoded == block, "a block comes back exactly");
        (stored, changed)
    }

    #[test]
    fn engine_heaps_come_back_exactly_and_most_pages_are_filtered() {
        for seed in [1, 2, 3] {
            let heap = engine_heap(seed, 3000, Rows::Overflow);
            let (_, changed) = round_trip(&heap);
            let pages = heap.chunks_exact(PAGE_SIZE).filter(|p| p[4] == DATA_PAGE).count();
            assert!(changed * 10 > pages * 9, "seed {seed}: {changed} of {pages} data pages filtered");
        }
    }

    fn compressed(block: &[u8]) -> usize {
        zstd::bulk::compress(block, 3).unwrap().len()
    }

    #[test]
    fn rows_that_count_up_compress_smaller_by_half_and_others_no_larger() {
        let heap = engine_heap(7, 8000, Rows::Regular);
        let (raw, rows) = (compressed(&heap), compressed(&round_trip(&heap).0));
        assert!(rows * 2 < raw, "regular rows: {rows} bytes with row deltas against {raw} without");
        let heap = engine_heap(8, 6000, Rows::Varied);
        let (raw, rows) = (compressed(&heap), compressed(&round_trip(&heap).0));
        assert!(rows < raw, "varied rows: {rows} bytes with row deltas against {raw} without");
    }

    #[test]
    fn any_page_comes_back_exactly_whatever_it_holds() {
        let mut rng = Rng(11);
        let heap = engine_heap(5, 800, Rows::Overflow);
        for round in 0..400 {
            // Engine pages with bytes flipped, slot directories of random
            // rows, and random bytes marked as data pages.
            let mut page = match round % 3 {
                0 => heap
                    .chunks_exact(PAGE_SIZE)
                    .nth(rng.below((heap.len() / PAGE_SIZE) as u64) as usize)
                    .unwrap()
                    .to_vec(),
                1 => {
                    let mut p = vec![0u8; PAGE_SIZE];
                    p[4] = DATA_PAGE;
                    let n = rng.below(200) as usize;
                    put_u16(&mut p, SLOT_COUNT_AT, n as u16);
                    for i in 0..n.min(1000) {
                        put_u16(&mut p, slot_at(i), rng.below(4096) as u16);
                        put_u16(&mut p, slot_at(i) + 2, rng.below(100) as u16);
                    }
                    p
                }
                _ => (0..PAGE_SIZE).map(|_| rng.next() as u8).collect(),
            };
            page[4] = DATA_PAGE;
            for _ in 0..rng.below(4) {
                let at = rng.below(PAGE_SIZE as u64) as usize;
                page[at] = rng.next() as u8;
            }
            round_trip(&page);
        }
    }

    #[test]
    fn a_damaged_trailer_or_page_is_an_integrity_error_never_a_panic() {
        let heap = engine_heap(9, 1500, Rows::Overflow);
        let (stored, _) = round_trip(&heap);
        let mut rng = Rng(3);
        for _ in 0..300 {
            let mut damaged = stored.clone();
            let at = match rng.below(2) {
                0 => heap.len() + rng.below((stored.len() - heap.len()) as u64) as usize,
                _ => rng.below(heap.len() as u64) as usize,
            };
            damaged[at] ^= 1 << rng.below(8);
            // A flip in the rows decodes to other bytes (the blob ids catch it); in the structure it fails.
            match decode(&mut damaged, heap.len()) {
                Ok(()) => assert!(damaged != heap),
                Err(e) => assert_eq!(e.code, "ERR_INTEGRITY"),
            }
        }
        let mut short = stored.clone();
        assert_eq!(decode(&mut short, heap.len() + 1).unwrap_err().code, "ERR_INTEGRITY");
    }
}
