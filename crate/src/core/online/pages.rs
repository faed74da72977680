//! Reading the pages of a heap that a live server is writing (powdb-online.md
//! §2.2). The server writes whole 4096-byte pages with `pwrite`, and a
//! concurrent `pread` can see half of an old page and half of a new one; the
//! engine fails closed on such a page at open, and WAL replay cannot mend it.
//! So every page image is checked before it is kept, and a torn one is read
//! again after a short sleep (the writer finishes within microseconds).
use crate::core::error::{CoreError, CoreResult};
use crate::core::page::{page_crc, PAGE_SIZE};
use std::io;
use std::path::Path;
use std::time::Duration;

/// Pages read per `pread`: few syscalls, bounded memory.
pub const CHUNK_PAGES: usize = 64;
/// Re-reads of one torn page before giving up, and the first sleep between
/// them (doubling, capped at 20 ms: about 100 ms in all).
const TORN_RETRIES: u32 = 8;
const FIRST_SLEEP: Duration = Duration::from_millis(1);
const MAX_SLEEP: Duration = Duration::from_millis(20);

/// Whether a page image read from a live heap can be kept: with flag bit 0
/// set (every page a 0.29 server flushes, the page-0 superblock included)
/// its CRC32 must match; with type byte 0 (allocated, never written) it must
/// be all zero. Anything else is a torn read.
pub fn is_whole(page: &[u8]) -> bool {
    debug_assert_eq!(page.len(), PAGE_SIZE);
    if page[5] & 1 != 0 {
        u32::from_le_bytes([page[16], page[17], page[18], page[19]]) == page_crc(page)
    } else {
        page[4] == 0 && page.iter().all(|&b| b == 0)
    }
}

/// Where pages are read from: a file, or in tests a file that tears reads.
pub trait PageSource {
    /// Reads at `offset` into `buf` until it is full or the end of the file;
    /// returns the bytes read.
    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
}

impl PageSource for std::fs::File {
    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let mut filled = 0;
        while filled < buf.len() {
            match FileExt::read_at(self, &mut buf[filled..], offset + filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(filled)
    }
}

/// Reads whole, checked pages from a live heap.
pub struct PageReader<'a, S: PageSource> {
    source: S,
    path: &'a Path,
    /// Torn page images read again so far.
    pub torn_rereads: u64,
}

impl<'a, S: PageSource> PageReader<'a, S> {
    pub fn new(source: S, path: &'a Path) -> Self {
        PageReader { source, path, torn_rereads: 0 }
    }

    /// Reads up to `buf.len() / PAGE_SIZE` pages from page `first`, each one
    /// whole; returns how many (fewer at the end of the file; a trailing part
    /// of a page, a file being extended, counts as absent).
    pub fn read_pages(&mut self, first: u64, buf: &mut [u8]) -> CoreResult<usize> {
        let got = self.read(buf, first)? / PAGE_SIZE;
        for i in 0..got {
            let page = &mut buf[i * PAGE_SIZE..(i + 1) * PAGE_SIZE];
            if !is_whole(page) && !self.reread(first + i as u64, page)? {
                return Ok(i); // the file shrank under us: the rest is gone
            }
        }
        Ok(got)
    }

    /// Reads a torn page again until it is whole; false if it is no longer
    /// in the file. Fails once `TORN_RETRIES` reads were all torn.
    fn reread(&mut self, index: u64, page: &mut [u8]) -> CoreResult<bool> {
        let mut sleep = FIRST_SLEEP;
        for _ in 0..TORN_RETRIES {
            std::thread::sleep(sleep);
            sleep = (sleep * 2).min(MAX_SLEEP);
            self.torn_rereads += 1;
            if self.read(page, index)? < PAGE_SIZE {
                return Ok(false);
            }
            if is_whole(page) {
                return Ok(true);
            }
        }
        Err(CoreError::new(
            "ERR_PAGE_CRC",
            format!(
                "{}: page {index} failed its CRC32 check on {} reads in a row: the page is damaged, or \
                 rewritten without pause; check the database (powdb-cli verify once it is stopped) and run again",
                self.path.display(),
                TORN_RETRIES + 1
            ),
        ))
    }

    fn read(&mut self, buf: &mut [u8], first_page: u64) -> CoreResult<usize> {
        crate::core::cancel::check()?;
        self.source.read_at(buf, first_page * PAGE_SIZE as u64).map_err(|e| CoreError::io("read", self.path, e))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A source over `bytes` whose first `tear` reads of page `page` come back
    /// with the second half of the next page spliced in, as a read racing a
    /// `pwrite` can.
    pub struct Tearing {
        pub bytes: Vec<u8>,
        pub page: u64,
        pub tear: u32,
    }

    impl PageSource for Tearing {
        fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
            let start = (offset as usize).min(self.bytes.len());
            let n = buf.len().min(self.bytes.len() - start);
            buf[..n].copy_from_slice(&self.bytes[start..start + n]);
            let at = self.page as usize * PAGE_SIZE;
            if self.tear > 0 && start <= at && at + PAGE_SIZE <= start + n {
                self.tear -= 1;
                let torn = at - start;
                let other = (at + PAGE_SIZE + PAGE_SIZE / 2) % self.bytes.len();
                buf[torn + PAGE_SIZE / 2..torn + PAGE_SIZE].copy_from_slice(&self.bytes[other..other + PAGE_SIZE / 2]);
            }
            Ok(n)
        }
    }

    #[test]
    fn a_zero_page_is_whole_and_a_zero_typed_page_with_bytes_is_not() {
        let mut page = vec![0u8; PAGE_SIZE];
        assert!(is_whole(&page));
        page[100] = 1;
        assert!(!is_whole(&page));
        page[100] = 0;
        page[4] = 1; // typed, no CRC flag: a 0.29 server never leaves one on disk
        assert!(!is_whole(&page));
    }
}
