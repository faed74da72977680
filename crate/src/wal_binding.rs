#![cfg_attr(test, allow(dead_code))] // napi-derive compiles registration out of test builds
//! The WAL-archive side of the binding: checking retained segments and
//! writing the `wal.log` of a point-in-time restore, off the JS thread.
use crate::binding::{job, u64_arg, Job};
use crate::core::wal::replay::{cut_at_or_before, write_wal, Cut, WalCut};
use crate::core::wal::scan::first_overflow_record;
use crate::core::wal::segment::{inspect_segment, SegmentSummary};
use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::path::PathBuf;

/// A checked retained segment.
#[napi(object, object_from_js = false)]
pub struct SegmentInfo {
    pub start_lsn: u64,
    pub end_lsn: u64,
    pub units: u32,
    /// 32 lowercase hex digits.
    pub database_id: String,
    pub primary_generation: u64,
    pub wal_format_version: u32,
    pub catalog_version: u32,
    pub len: u64,
    pub blake3_hex: String,
    /// The highest LSN after which no transaction is open, if any.
    pub last_boundary: Option<u64>,
}

impl From<SegmentSummary> for SegmentInfo {
    fn from(s: SegmentSummary) -> Self {
        let h = s.header;
        SegmentInfo {
            start_lsn: h.start_lsn,
            end_lsn: h.end_lsn,
            units: h.units,
            database_id: h.database_id.iter().map(|b| format!("{b:02x}")).collect(),
            primary_generation: h.primary_generation,
            wal_format_version: h.wal_format_version.into(),
            catalog_version: h.catalog_version.into(),
            len: s.len,
            blake3_hex: s.blake3_hex,
            last_boundary: s.last_boundary,
        }
    }
}

/// Reads and checks a retained segment (`ERR_BAD_SEGMENT` names what is wrong).
#[napi(ts_return_type = "Promise<SegmentInfo>")]
pub fn inspect_retained_segment(path: String, cancel: Option<u32>) -> AsyncTask<Job<SegmentSummary, SegmentInfo>> {
    job(cancel, move || inspect_segment(&PathBuf::from(path)), SegmentInfo::from)
}

/// Where a replay stops, and how far it is safe (see `Cut`).
#[napi(object, object_from_js = false)]
pub struct WalCutResult {
    pub lsn: u64,
    pub add_column: Option<u64>,
    pub safe: u64,
}

/// Where a replay of `segments` after `afterLsn` stops for `targetLsn`: the
/// last commit point at or before it, and the first add column before that.
#[napi(ts_return_type = "Promise<WalCutResult>")]
pub fn wal_cut(
    segments: Vec<String>,
    after_lsn: BigInt,
    target_lsn: BigInt,
    cancel: Option<u32>,
) -> Result<AsyncTask<Job<Cut, WalCutResult>>> {
    let after = u64_arg("afterLsn", &after_lsn)?;
    let target = u64_arg("targetLsn", &target_lsn)?;
    let paths: Vec<PathBuf> = segments.into_iter().map(PathBuf::from).collect();
    Ok(job(
        cancel,
        move || cut_at_or_before(&paths, after, target),
        |c| WalCutResult { lsn: c.lsn, add_column: c.add_column, safe: c.safe },
    ))
}

#[napi(object, object_from_js = false)]
pub struct WalWritten {
    pub cut_lsn: u64,
    pub units: u64,
    pub bytes: u64,
    /// The first `alter table add column` replayed, if any.
    pub add_column_lsn: Option<u64>,
}

/// Writes `out`: the WAL header and every archived record after `afterLsn` up to `cutLsn`, fsynced.
#[napi(ts_return_type = "Promise<WalWritten>")]
pub fn write_replay_wal(
    segments: Vec<String>,
    after_lsn: BigInt,
    cut_lsn: BigInt,
    out: String,
    cancel: Option<u32>,
) -> Result<AsyncTask<Job<WalCut, WalWritten>>> {
    let after = u64_arg("afterLsn", &after_lsn)?;
    let cut = u64_arg("cutLsn", &cut_lsn)?;
    let paths: Vec<PathBuf> = segments.into_iter().map(PathBuf::from).collect();
    Ok(job(
        cancel,
        move || write_wal(&paths, after, cut, &PathBuf::from(out)),
        |w| WalWritten { cut_lsn: w.cut_lsn, units: w.units, bytes: w.bytes, add_column_lsn: w.add_column_lsn },
    ))
}

#[napi(object, object_from_js = false)]
pub struct OverflowRecord {
    pub lsn: u64,
    pub kind: u32,
}

/// A found overflow record: (LSN, type).
type Found = Option<(u64, u8)>;

/// The first record of `wal.log` that powdb-sync 0.29 cannot archive, if any.
#[napi(ts_return_type = "Promise<OverflowRecord | null>")]
pub fn wal_overflow_record(path: String) -> AsyncTask<Job<Found, Option<OverflowRecord>>> {
    job(
        None,
        move || first_overflow_record(&PathBuf::from(path)),
        |found| found.map(|(lsn, kind)| OverflowRecord { lsn, kind: kind.into() }),
    )
}
