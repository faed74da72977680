//! Reading a powdb-sync retained segment (`retained-<start>-<end>.prul`)
//! in bounded memory, checking what powdb-sync checks on read: the header,
//! every unit's CRC and type, contiguous non-zero LSNs matching the header's
//! range and count, and the footer CRC over every byte before it.
use super::record::{is_commit_point, UnitHeader, OVERFLOW_FREE, OVERFLOW_WRITE, UNIT_HEADER_LEN};
use crate::core::error::{CoreError, CoreResult};
use crate::core::fsio::open_read;
use std::io::{BufReader, Read};
use std::path::Path;

const MAGIC: &[u8; 4] = b"PRUL";
const FOOTER_MAGIC: &[u8; 4] = b"RULF";
pub const HEADER_LEN: usize = 56;
const FOOTER_LEN: u64 = 8;
pub const SEGMENT_FORMAT_VERSION: u16 = 1;
pub const WAL_FORMAT_VERSION: u16 = 1;
/// powdb-sync refuses to read larger segments.
const MAX_SEGMENT_LEN: u64 = 1 << 30;
/// The newest catalog format PowDB 0.29 writes.
const MAX_CATALOG_VERSION: u16 = 7;

/// A segment's header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    pub wal_format_version: u16,
    pub catalog_version: u16,
    pub units: u32,
    pub start_lsn: u64,
    pub end_lsn: u64,
    pub primary_generation: u64,
    pub database_id: [u8; 16],
}

/// What a checked segment holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentSummary {
    pub header: SegmentHeader,
    pub len: u64,
    pub blake3_hex: String,
    /// The highest commit point (see `is_commit_point`): the newest LSN a replay can stop at.
    pub last_boundary: Option<u64>,
}

fn bad(path: &Path, why: impl std::fmt::Display) -> CoreError {
    CoreError::new("ERR_BAD_SEGMENT", format!("{}: {why}", path.display()))
}

/// Reads exactly, hashing what it reads (CRC up to the footer, BLAKE3 of it all).
struct Tracked<R> {
    inner: R,
    crc: crc32fast::Hasher,
    blake: blake3::Hasher,
    pos: u64,
}

impl<R: Read> Tracked<R> {
    fn take(&mut self, buf: &mut [u8], path: &Path) -> CoreResult<()> {
        crate::core::cancel::check()?;
        self.inner.read_exact(buf).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => bad(path, "truncated"),
            _ => CoreError::io("read", path, e),
        })?;
        self.crc.update(buf);
        self.blake.update(buf);
        self.pos += buf.len() as u64;
        Ok(())
    }
}

fn parse_header(raw: &[u8; HEADER_LEN], path: &Path) -> CoreResult<SegmentHeader> {
    let u16_at = |at: usize| u16::from_le_bytes(raw[at..at + 2].try_into().expect("2 bytes"));
    let u32_at = |at: usize| u32::from_le_bytes(raw[at..at + 4].try_into().expect("4 bytes"));
    let u64_at = |at: usize| u64::from_le_bytes(raw[at..at + 8].try_into().expect("8 bytes"));
    if &raw[0..4] != MAGIC {
        return Err(bad(path, "retained segment magic mismatch"));
    }
    if u16_at(4) != SEGMENT_FORMAT_VERSION {
        return Err(bad(path, format!("unsupported retained segment format version {}", u16_at(4))));
    }
    if u16_at(6) != 0 {
        return Err(bad(path, "retained segment reserved field must be zero"));
    }
    let header = SegmentHeader {
        wal_format_version: u16_at(8),
        catalog_version: u16_at(10),
        units: u32_at(12),
        start_lsn: u64_at(16),
        end_lsn: u64_at(24),
        primary_generation: u64_at(32),
        database_id: raw[40..56].try_into().expect("16 bytes"),
    };
    if header.wal_format_version != WAL_FORMAT_VERSION {
        return Err(bad(path, format!("unsupported WAL format {}", header.wal_format_version)));
    }
    if header.catalog_version == 0 || header.catalog_version > MAX_CATALOG_VERSION {
        return Err(bad(path, format!("unsupported catalog format v{}", header.catalog_version)));
    }
    if header.primary_generation == 0 || header.database_id == [0; 16] {
        return Err(bad(path, "retained segment identity must be non-zero"));
    }
    if header.units == 0 {
        return Err(bad(path, "retained segment must contain at least one unit"));
    }
    Ok(header)
}

/// Checks the segment at `path` unit by unit, calling `each` with every unit
/// and its raw bytes (header then data) in LSN order. Memory: one unit.
pub fn read_segment(
    path: &Path,
    mut each: impl FnMut(&UnitHeader, &[u8]) -> CoreResult<()>,
) -> CoreResult<SegmentSummary> {
    let file = open_read(path)?;
    let len = file.metadata().map_err(|e| CoreError::io("stat", path, e))?.len();
    if len > MAX_SEGMENT_LEN {
        return Err(bad(path, format!("{len} bytes is over powdb-sync's 1 GiB limit")));
    }
    if len < (HEADER_LEN as u64) + FOOTER_LEN {
        return Err(bad(path, "retained segment is truncated"));
    }
    let footer_start = len - FOOTER_LEN;
    let mut input = Tracked {
        inner: BufReader::with_capacity(1 << 20, file),
        crc: crc32fast::Hasher::new(),
        blake: blake3::Hasher::new(),
        pos: 0,
    };
    let mut raw_header = [0u8; HEADER_LEN];
    input.take(&mut raw_header, path)?;
    let header = parse_header(&raw_header, path)?;

    let mut unit = Vec::new();
    let mut last_boundary = None;
    let mut expected_lsn = header.start_lsn;
    for _ in 0..header.units {
        if input.pos + UNIT_HEADER_LEN as u64 > footer_start {
            return Err(bad(path, "retained segment record count exceeds file"));
        }
        unit.resize(UNIT_HEADER_LEN, 0);
        input.take(&mut unit[..UNIT_HEADER_LEN], path)?;
        let h = UnitHeader::parse(unit[..UNIT_HEADER_LEN].try_into().expect("header"));
        let data_len = h.data_len().ok_or_else(|| bad(path, format!("unit at LSN {} has a bad length", h.lsn)))?;
        if input.pos + data_len as u64 > footer_start {
            return Err(bad(path, "retained unit extends beyond segment"));
        }
        unit.resize(UNIT_HEADER_LEN + data_len, 0);
        input.take(&mut unit[UNIT_HEADER_LEN..], path)?;
        if h.kind == OVERFLOW_WRITE || h.kind == OVERFLOW_FREE {
            // powdb-sync 0.29 neither writes nor reads these (its overflow bug); a segment holding one
            // comes from another writer, and no 0.29 tool could check it: say so rather than "unknown".
            return Err(bad(
                path,
                format!(
                    "retained unit at LSN {} is an overflow record (type {}), which powdb-sync 0.29 cannot archive \
                     or read back; see Continuous archiving in docs/online.md",
                    h.lsn, h.kind
                ),
            ));
        }
        if !(1..=10).contains(&h.kind) {
            return Err(bad(path, format!("unknown retained unit record type {} at LSN {}", h.kind, h.lsn)));
        }
        if h.crc != h.expected_crc(&unit[UNIT_HEADER_LEN..]) {
            return Err(bad(path, format!("retained unit CRC mismatch at LSN {}", h.lsn)));
        }
        if h.lsn == 0 || h.lsn != expected_lsn {
            return Err(bad(
                path,
                format!("unit LSN {} where {} was expected (LSNs must be contiguous)", h.lsn, expected_lsn),
            ));
        }
        expected_lsn = h.lsn.wrapping_add(1);
        if is_commit_point(&h) {
            last_boundary = Some(h.lsn);
        }
        each(&h, &unit)?;
    }
    if input.pos != footer_start {
        return Err(bad(path, "retained segment has trailing bytes"));
    }
    if expected_lsn.wrapping_sub(1) != header.end_lsn {
        return Err(bad(path, "retained segment LSN range does not match records"));
    }
    let crc = input.crc.clone().finalize();
    let mut footer = [0u8; FOOTER_LEN as usize];
    input.take(&mut footer, path)?;
    if &footer[..4] != FOOTER_MAGIC {
        return Err(bad(path, "retained segment footer magic mismatch"));
    }
    if u32::from_le_bytes(footer[4..].try_into().expect("4 bytes")) != crc {
        return Err(bad(path, "retained segment footer CRC mismatch"));
    }
    Ok(SegmentSummary { header, len, blake3_hex: input.blake.finalize().to_hex().to_string(), last_boundary })
}

/// Checks a segment without keeping its units.
pub fn inspect_segment(path: &Path) -> CoreResult<SegmentSummary> {
    read_segment(path, |_, _| Ok(()))
}
