//! Writing a `wal.log` that replays archived history: the engine's first
//! read-write open of the restored directory then applies exactly the
//! transactions committed up to the cut (see powdb-sync.md, "Replaying").
use super::record::{Boundaries, UnitHeader};
use super::segment::read_segment;
use crate::core::error::{CoreError, CoreResult};
use crate::core::fsio::{create_new, Sink};
use std::path::{Path, PathBuf};

/// The 8-byte header of a 0.5+ `wal.log`: "PWAL", version 1, flags 0.
pub const WAL_HEADER: [u8; 8] = *b"PWAL\x01\x00\x00\x00";

/// Where a replay stops and what it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalCut {
    /// The LSN the restored directory reaches: the last record written.
    pub cut_lsn: u64,
    /// Records written (LSNs `after + 1 ..= cut_lsn`).
    pub units: u64,
    pub bytes: u64,
}

/// Calls `each` with every unit after `after_lsn`, in order, across
/// `segments` (which must continue one another without a gap from `after_lsn + 1`).
fn units_after(
    segments: &[PathBuf],
    after_lsn: u64,
    mut each: impl FnMut(&UnitHeader, &[u8]) -> CoreResult<()>,
) -> CoreResult<()> {
    let mut next = after_lsn + 1;
    for path in segments {
        read_segment(path, |h, raw| {
            if h.lsn < next {
                return Ok(());
            }
            if h.lsn != next {
                return Err(CoreError::new(
                    "ERR_ARCHIVE_GAP",
                    format!("{}: archived history jumps from LSN {} to {}", path.display(), next - 1, h.lsn),
                ));
            }
            next += 1;
            each(h, raw)
        })?;
    }
    Ok(())
}

/// The highest LSN in `(after_lsn, target_lsn]` after which no transaction is
/// open, or `after_lsn` when there is none (a target inside the first
/// transaction lands on the base).
pub fn cut_at_or_before(segments: &[PathBuf], after_lsn: u64, target_lsn: u64) -> CoreResult<u64> {
    let mut boundaries = Boundaries::default();
    let mut cut = after_lsn;
    units_after(segments, after_lsn, |h, _| {
        if h.lsn <= target_lsn && boundaries.observe(h) {
            cut = h.lsn;
        }
        Ok(())
    })?;
    Ok(cut)
}

/// Writes `out` (a new file): the WAL header, then every archived record
/// with `after_lsn < lsn <= cut`, bytes unchanged; fsynced. `cut` comes from
/// [`cut_at_or_before`].
pub fn write_wal(segments: &[PathBuf], after_lsn: u64, cut: u64, out: &Path) -> CoreResult<WalCut> {
    let mut sink = Sink::new(create_new(out)?, out);
    sink.append(&WAL_HEADER)?;
    let mut written = WalCut { cut_lsn: after_lsn, units: 0, bytes: WAL_HEADER.len() as u64 };
    units_after(segments, after_lsn, |h, raw| {
        if h.lsn > cut {
            return Ok(());
        }
        sink.append(raw)?;
        written.cut_lsn = h.lsn;
        written.units += 1;
        written.bytes += raw.len() as u64;
        Ok(())
    })?;
    if written.cut_lsn != cut {
        return Err(CoreError::new(
            "ERR_ARCHIVE_GAP",
            format!("archived history ends at LSN {}, before the cut at {cut}", written.cut_lsn),
        ));
    }
    sink.finish()?;
    Ok(written)
}
