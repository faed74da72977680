//! Writing a `wal.log` that replays archived history: the engine's first
//! read-write open of the restored directory then applies exactly the
//! transactions committed up to the cut (see powdb-sync.md, "Replaying").
use super::record::{is_commit_point, UnitHeader, COMMIT, DDL_ADD_COLUMN};
use super::segment::read_segment;
use crate::core::error::{CoreError, CoreResult};
use crate::core::fsio::{create_new, Sink};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// The 8-byte header of a 0.5+ `wal.log`: "PWAL", version 1, flags 0.
pub const WAL_HEADER: [u8; 8] = *b"PWAL\x01\x00\x00\x00";

/// Where a replay stops and what it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalCut {
    /// The LSN the restored directory reaches.
    pub cut_lsn: u64,
    /// Records written: those of transactions committed by the cut, and those outside any transaction.
    pub units: u64,
    pub bytes: u64,
    /// The first `alter table add column` replayed, if any (PowDB 0.29 may fail to replay rows after it).
    pub add_column_lsn: Option<u64>,
}

/// Calls `each(segment, unit, raw bytes)` for every unit after `after_lsn`, in
/// order, across `segments` (which must continue one another without a gap
/// from `after_lsn + 1`); returns the last LSN seen.
fn units_after(
    segments: &[PathBuf],
    after_lsn: u64,
    mut each: impl FnMut(usize, &UnitHeader, &[u8]) -> CoreResult<()>,
) -> CoreResult<u64> {
    let mut next = after_lsn + 1;
    for (i, path) in segments.iter().enumerate() {
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
            each(i, h, raw)
        })?;
    }
    Ok(next - 1)
}

/// Where a replay from `after_lsn` may stop for a target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cut {
    /// The last commit point in `(after_lsn, target]`, or `after_lsn` (a
    /// target inside the first transaction lands on the base).
    pub lsn: u64,
    /// The first `alter table add column` at or before `lsn`, if any:
    /// PowDB 0.29 does not replay rows written after it correctly (rows can
    /// be lost, or the open fails).
    pub add_column: Option<u64>,
    /// The last commit point before that alter (`after_lsn` if none): how far a replay is safe.
    pub safe: u64,
}

pub fn cut_at_or_before(segments: &[PathBuf], after_lsn: u64, target_lsn: u64) -> CoreResult<Cut> {
    let mut cut = Cut { lsn: after_lsn, add_column: None, safe: after_lsn };
    units_after(segments, after_lsn, |_, h, _| {
        if h.lsn > target_lsn {
            return Ok(());
        }
        if h.kind == DDL_ADD_COLUMN && cut.add_column.is_none() {
            cut.add_column = Some(h.lsn);
        }
        if is_commit_point(h) {
            cut.lsn = h.lsn;
            if cut.add_column.is_none() {
                cut.safe = h.lsn;
            }
        }
        Ok(())
    })?;
    if cut.add_column.is_some_and(|lsn| lsn > cut.lsn) {
        cut.add_column = None; // inside the transaction the cut leaves out
    }
    Ok(cut)
}

/// Per segment, the transactions whose Commit is at or before `cut`.
fn committed_by(segments: &[PathBuf], after_lsn: u64, cut: u64) -> CoreResult<Vec<HashSet<u64>>> {
    let mut committed = vec![HashSet::new(); segments.len()];
    units_after(segments, after_lsn, |i, h, _| {
        if h.kind == COMMIT && h.lsn <= cut {
            committed[i].insert(h.tx_id);
        }
        Ok(())
    })?;
    Ok(committed)
}

/// Writes `out` (a new file): the WAL header, then, bytes unchanged, every
/// archived record with `after_lsn < lsn <= cut` that belongs to no
/// transaction or to one committed in its segment by the cut; fsynced.
/// Leaving out the records of transactions not committed by the cut matters:
/// the engine matches a Commit to rows by transaction id, ids restart at
/// every open (so they repeat across segments), and a transaction never spans
/// segments (a checkpoint, which ends a segment, refuses to run inside one).
/// `cut` comes from [`cut_at_or_before`].
pub fn write_wal(segments: &[PathBuf], after_lsn: u64, cut: u64, out: &Path) -> CoreResult<WalCut> {
    let committed = committed_by(segments, after_lsn, cut)?;
    let mut sink = Sink::new(create_new(out)?, out);
    sink.append(&WAL_HEADER)?;
    let mut written = WalCut { cut_lsn: cut, units: 0, bytes: WAL_HEADER.len() as u64, add_column_lsn: None };
    let last = units_after(segments, after_lsn, |i, h, raw| {
        if h.lsn > cut || (h.tx_id != 0 && !committed[i].contains(&h.tx_id)) {
            return Ok(());
        }
        sink.append(raw)?;
        written.units += 1;
        written.bytes += raw.len() as u64;
        if h.kind == DDL_ADD_COLUMN && written.add_column_lsn.is_none() {
            written.add_column_lsn = Some(h.lsn);
        }
        Ok(())
    })?;
    if last < cut {
        return Err(CoreError::new(
            "ERR_ARCHIVE_GAP",
            format!("archived history ends at LSN {last}, before the cut at {cut}"),
        ));
    }
    sink.finish()?;
    Ok(written)
}
