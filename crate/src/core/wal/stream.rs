//! `wal.log` read one record at a time, each checked (length, CRC), so a
//! log of any size is read in bounded memory.
use super::record::{UnitHeader, UNIT_HEADER_LEN};
use crate::core::error::{CoreError, CoreResult};
use crate::core::fsio::open_read;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

/// The file header: "PWAL", format version 1, flags 0.
const WAL_HEADER: &[u8; 8] = b"PWAL\x01\x00\x00\x00";

/// A damaged `wal.log`.
pub const ERR_BAD_WAL: &str = "ERR_BAD_WAL";

pub struct WalStream {
    input: BufReader<File>,
    path: PathBuf,
    /// Where the next record starts.
    offset: u64,
}

impl WalStream {
    /// Opens `path` past its header; a log without the 0.29 header is refused.
    pub fn open(path: &Path) -> CoreResult<WalStream> {
        let mut input = BufReader::with_capacity(1 << 16, open_read(path)?);
        let mut header = [0u8; 8];
        input.read_exact(&mut header).map_err(|e| CoreError::io("read the header of", path, e))?;
        if &header != WAL_HEADER {
            return Err(CoreError::new(ERR_BAD_WAL, format!("{}: not a PowDB 0.29 WAL (bad header)", path.display())));
        }
        Ok(WalStream { input, path: path.to_path_buf(), offset: WAL_HEADER.len() as u64 })
    }

    /// The next complete record, or `None` at the end. A torn tail (a record
    /// cut short, or a damaged last record) ends the log as it ends the
    /// engine's replay; damage with bytes after it is an error, because the
    /// records after it would be lost.
    pub fn next_record(&mut self) -> CoreResult<Option<(UnitHeader, Vec<u8>)>> {
        let mut raw = [0u8; UNIT_HEADER_LEN];
        if !self.fill(&mut raw)? {
            return Ok(None);
        }
        let header = UnitHeader::parse(&raw);
        let Some(len) = header.data_len() else { return self.damaged("a record length out of range") };
        let mut data = vec![0u8; len];
        if !self.fill(&mut data)? {
            return Ok(None);
        }
        if header.expected_crc(&data) != header.crc {
            return self.damaged("a CRC mismatch");
        }
        self.offset += (UNIT_HEADER_LEN + len) as u64;
        Ok(Some((header, data)))
    }

    /// Fills `buf` whole: false when the file ends first (a torn tail).
    fn fill(&mut self, buf: &mut [u8]) -> CoreResult<bool> {
        match self.input.read_exact(buf) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
            Err(e) => Err(CoreError::io("read", &self.path, e)),
        }
    }

    /// A bad record ends the log only where nothing follows it.
    fn damaged<T>(&mut self, why: &str) -> CoreResult<Option<T>> {
        let mut rest = [0u8; 1];
        let trailing = self.input.read(&mut rest).map_err(|e| CoreError::io("read", &self.path, e))?;
        if trailing == 0 {
            return Ok(None);
        }
        Err(CoreError::new(
            ERR_BAD_WAL,
            format!("{}: {why} at byte {} with more of the log after it", self.path.display(), self.offset),
        ))
    }
}
