//! A look at a sync-enabled directory's `wal.log` for the records
//! powdb-sync 0.29 cannot archive (values too large to store inline), so
//! that a backup or an archive run can say why history stopped.
use super::record::{UnitHeader, OVERFLOW_FREE, OVERFLOW_WRITE, UNIT_HEADER_LEN};
use crate::core::error::{CoreError, CoreResult};
use crate::core::fsio::open_read;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

/// The LSN and type of the first overflow record in `wal.log`, if any.
/// Reads record headers only, and stops quietly at a torn or damaged tail
/// (a live server may be appending).
pub fn first_overflow_record(path: &Path) -> CoreResult<Option<(u64, u8)>> {
    let file = match open_read(path) {
        Ok(file) => file,
        Err(e) if e.code == "ENOENT" => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut input = BufReader::with_capacity(1 << 16, file);
    let mut magic = [0u8; 8];
    let mut at = 0u64;
    if input.read_exact(&mut magic).is_ok() && &magic[..4] == b"PWAL" {
        at = 8;
    }
    input.seek(SeekFrom::Start(at)).map_err(|e| CoreError::io("seek", path, e))?;
    let mut raw = [0u8; UNIT_HEADER_LEN];
    loop {
        crate::core::cancel::check()?;
        if input.read_exact(&mut raw).is_err() {
            return Ok(None);
        }
        let h = UnitHeader::parse(&raw);
        let Some(data_len) = h.data_len() else { return Ok(None) };
        if h.kind == OVERFLOW_WRITE || h.kind == OVERFLOW_FREE {
            return Ok(Some((h.lsn, h.kind)));
        }
        if input.seek_relative(data_len as i64).is_err() {
            return Ok(None);
        }
    }
}
