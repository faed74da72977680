//! Bounds-checked little-endian reads over a catalog file, each failure an
//! `ERR_CATALOG` naming the byte offset and what was being read.
use super::ERR_CATALOG;
use crate::core::error::{CoreError, CoreResult};

pub(super) struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// The file's name, for messages.
    file: &'static str,
}

impl<'a> Cursor<'a> {
    pub(super) fn new(bytes: &'a [u8], pos: usize, file: &'static str) -> Self {
        Cursor { bytes, pos, file }
    }

    /// An error at `offset` of this file.
    pub(super) fn error(&self, offset: usize, what: String) -> CoreError {
        malformed(self.file, offset, what)
    }

    pub(super) fn pos(&self) -> usize {
        self.pos
    }

    /// The bytes from `start` (at most the position) to the position.
    pub(super) fn since(&self, start: usize) -> &'a [u8] {
        &self.bytes[start.min(self.pos)..self.pos]
    }

    pub(super) fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    pub(super) fn take(&mut self, n: usize, what: &str) -> CoreResult<&'a [u8]> {
        if n > self.remaining() {
            return Err(self.error(self.pos, format!("truncated {what} ({n} bytes needed, {} left)", self.remaining())));
        }
        let slice = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(slice)
    }

    pub(super) fn u8(&mut self, what: &str) -> CoreResult<u8> {
        Ok(self.take(1, what)?[0])
    }

    pub(super) fn u16(&mut self, what: &str) -> CoreResult<u16> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    pub(super) fn u32(&mut self, what: &str) -> CoreResult<u32> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(super) fn u64(&mut self, what: &str) -> CoreResult<u64> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8, what)?);
        Ok(u64::from_le_bytes(b))
    }

    /// A `u32` length, then that many bytes of UTF-8.
    pub(super) fn string(&mut self, what: &str) -> CoreResult<String> {
        let start = self.pos;
        let len = self.u32(what)? as usize;
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| self.error(start, format!("{what} is not UTF-8")))
    }

    /// A count read from the file, refused when the bytes left cannot hold
    /// that many items of at least `min_item` bytes: a damaged count must
    /// not size an allocation.
    pub(super) fn count(&mut self, value: usize, min_item: usize, what: &str) -> CoreResult<usize> {
        if value.saturating_mul(min_item) > self.remaining() {
            return Err(self.error(self.pos, format!("implausible {what} count {value}")));
        }
        Ok(value)
    }
}

/// A file that does not parse: its offset and what is wrong there.
fn malformed(file: &str, offset: usize, what: String) -> CoreError {
    CoreError::new(ERR_CATALOG, format!("{file} is damaged at byte {offset}: {what}"))
}

/// Appends a `u32` length and the bytes of `value`.
pub(super) fn put_string(out: &mut Vec<u8>, value: &str) {
    out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    out.extend_from_slice(value.as_bytes());
}
