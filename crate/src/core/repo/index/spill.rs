//! A sorted table of fixed-size records on an anonymous temporary file, for
//! sets too large to hold in memory (the index of a repository of millions
//! of blobs). Records are radix-partitioned by key byte into bucket runs on a
//! scratch file through bounded buffers, each bucket is then sorted in memory
//! (a bucket too large for that is partitioned again by its next key byte),
//! and the table is written in key order. Memory holds only the fence (the
//! first 8 key bytes of every page), so a lookup is a binary search of the
//! fence and one read of one page. The files are never mapped: mapped pages
//! would count as the process's resident memory.
//!
//! When several records have one key, the one pushed first is kept: runs are
//! appended and read back in push order, and the sort is stable.
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::FileExt;

/// The table's page: one lookup reads one (two only when 8-byte key
/// prefixes collide across a page boundary).
pub const PAGE: usize = 4096;
/// Buckets per partition: one key byte.
const FANOUT: usize = 256;
/// Bytes of a key kept in the fence.
const PREFIX: usize = 8;

/// Memory bounds: `buffer` bytes a bucket buffers before it is written as
/// a run (256 of them at most), buckets of up to `sort` bytes are sorted in
/// memory, and the fence keeps at most `fence` entries (beyond, one entry
/// covers a span of several pages, read together).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub buffer: usize,
    pub sort: usize,
    pub fence: usize,
}

impl Default for Limits {
    /// 8 MiB of run buffers, buckets sorted 8 MiB at a time, a fence of up
    /// to 16 MiB (a page a lookup up to 2 million pages: 128 million
    /// 64-byte records).
    fn default() -> Self {
        Limits { buffer: 32 << 10, sort: 8 << 20, fence: 2 << 20 }
    }
}

/// An anonymous temporary file: unlinked as it is opened, so nothing is left
/// behind, even when the process is killed.
fn anonymous() -> io::Result<File> {
    tempfile::tempfile()
}

/// The scratch file that bucket runs are appended to.
struct Scratch {
    file: File,
    len: u64,
}

/// One run of a bucket on the scratch file: offset and length.
type Run = (u64, usize);

impl Scratch {
    fn append(&mut self, bytes: &[u8]) -> io::Result<Run> {
        self.file.write_all_at(bytes, self.len)?;
        let run = (self.len, bytes.len());
        self.len += bytes.len() as u64;
        Ok(run)
    }
}

/// Records split by their key byte at `depth` into 256 buckets, each a list
/// of runs on the scratch file, in the order the records came.
struct Partition {
    depth: usize,
    buffers: Vec<Vec<u8>>,
    runs: Vec<Vec<Run>>,
}

impl Partition {
    fn new(depth: usize) -> Partition {
        Partition { depth, buffers: vec![Vec::new(); FANOUT], runs: vec![Vec::new(); FANOUT] }
    }

    fn push(&mut self, scratch: &mut Scratch, buffer: usize, rec: &[u8]) -> io::Result<()> {
        let bucket = rec[self.depth] as usize;
        let buf = &mut self.buffers[bucket];
        if buf.capacity() == 0 {
            buf.reserve_exact(buffer.max(rec.len()));
        }
        buf.extend_from_slice(rec);
        if buf.len() + rec.len() > buffer {
            self.runs[bucket].push(scratch.append(buf)?);
            buf.clear();
        }
        Ok(())
    }

    /// Writes what is still buffered; the runs of every bucket, by key byte.
    fn close(self, scratch: &mut Scratch) -> io::Result<Vec<Vec<Run>>> {
        let mut runs = self.runs;
        for (bucket, buf) in self.buffers.into_iter().enumerate() {
            if !buf.is_empty() {
                runs[bucket].push(scratch.append(&buf)?);
            }
        }
        Ok(runs)
    }
}

/// Builds a `Table` from records pushed in any order.
pub struct Sorter {
    rec_len: usize,
    key_len: usize,
    limits: Limits,
    scratch: Scratch,
    top: Partition,
}

impl Sorter {
    /// Records of `rec_len` bytes (a power of two up to a page) whose first
    /// `key_len` bytes (at least 8) are the key.
    pub fn new(rec_len: usize, key_len: usize, limits: Limits) -> io::Result<Sorter> {
        assert!(rec_len.is_power_of_two() && rec_len <= PAGE && (PREFIX..=rec_len).contains(&key_len));
        let scratch = Scratch { file: anonymous()?, len: 0 };
        Ok(Sorter { rec_len, key_len, limits, scratch, top: Partition::new(0) })
    }

    pub fn push(&mut self, rec: &[u8]) -> io::Result<()> {
        debug_assert_eq!(rec.len(), self.rec_len);
        self.top.push(&mut self.scratch, self.limits.buffer, rec)
    }

    /// The table, one record a key (the first pushed); the scratch file goes.
    pub fn finish(mut self) -> io::Result<Table> {
        let top = std::mem::replace(&mut self.top, Partition::new(0));
        let buckets = top.close(&mut self.scratch)?;
        let mut out = TableWriter::new(self.rec_len, self.key_len, self.limits.fence)?;
        for runs in buckets {
            self.sort_bucket(&self.scratch, &runs, 1, &mut out)?;
        }
        out.finish()
    }

    /// Writes the records of one bucket (all equal in their first `depth`
    /// key bytes), whose runs are on `source`, in key order.
    fn sort_bucket(&self, source: &Scratch, runs: &[Run], depth: usize, out: &mut TableWriter) -> io::Result<()> {
        let total: usize = runs.iter().map(|r| r.1).sum();
        let Some(&(first, _)) = runs.first() else {
            return Ok(());
        };
        if depth == self.key_len {
            // Every key is the same: the first record pushed is the one kept.
            let mut rec = vec![0u8; self.rec_len];
            source.file.read_exact_at(&mut rec, first)?;
            return out.push(&rec);
        }
        if total <= self.limits.sort {
            let mut data = vec![0u8; total];
            let mut at = 0;
            for &(offset, len) in runs {
                source.file.read_exact_at(&mut data[at..at + len], offset)?;
                at += len;
            }
            let (rec, key) = (self.rec_len, self.key_len);
            let mut order: Vec<u32> = (0..(total / rec) as u32).collect();
            let key_of = |i: u32| &data[i as usize * rec..i as usize * rec + key];
            order.sort_by(|&a, &b| key_of(a).cmp(key_of(b))); // stable: the first pushed stays first
            return order.into_iter().try_for_each(|i| out.push(&data[i as usize * rec..(i as usize + 1) * rec]));
        }
        // Too large to sort at once: partitioned by the next key byte, on a
        // scratch file of its own that goes once this bucket is written (so
        // the temporary disk holds one bucket's copy, not every bucket's).
        let mut scratch = Scratch { file: anonymous()?, len: 0 };
        let mut part = Partition::new(depth);
        let mut buf = Vec::new();
        for &(offset, len) in runs {
            buf.resize(len, 0);
            source.file.read_exact_at(&mut buf, offset)?;
            for rec in buf.chunks_exact(self.rec_len) {
                part.push(&mut scratch, self.limits.buffer, rec)?;
            }
        }
        drop(buf);
        for sub in part.close(&mut scratch)? {
            self.sort_bucket(&scratch, &sub, depth + 1, out)?;
        }
        Ok(())
    }
}

fn prefix(key: &[u8]) -> u64 {
    u64::from_be_bytes(key[..PREFIX].try_into().expect("8 bytes"))
}

/// Writes records in key order, skipping a key already written, and keeps
/// the key prefix of the first record of every page (of every group of
/// pages, once there are more pages than the fence's budget).
struct TableWriter {
    out: BufWriter<File>,
    rec_len: usize,
    key_len: usize,
    max_fence: usize,
    count: u64,
    /// Pages a fence entry covers (doubled whenever the fence reaches its budget).
    group: u64,
    fence: Vec<u64>,
    last: Vec<u8>,
}

impl TableWriter {
    fn new(rec_len: usize, key_len: usize, max_fence: usize) -> io::Result<TableWriter> {
        let out = BufWriter::with_capacity(1 << 20, anonymous()?);
        let max_fence = max_fence.max(2);
        Ok(TableWriter { out, rec_len, key_len, max_fence, count: 0, group: 1, fence: Vec::new(), last: Vec::new() })
    }

    fn push(&mut self, rec: &[u8]) -> io::Result<()> {
        let key = &rec[..self.key_len];
        if self.count > 0 && self.last == key {
            return Ok(()); // a later copy of a key: the first written wins
        }
        let per_page = (PAGE / self.rec_len) as u64;
        if self.count.is_multiple_of(per_page * self.group) {
            if self.fence.len() == self.max_fence {
                // At its budget: every other entry goes, each now covers twice the pages.
                let mut at = 0;
                self.fence.retain(|_| {
                    at += 1;
                    at % 2 == 1
                });
                self.group *= 2;
            }
            if self.count.is_multiple_of(per_page * self.group) {
                self.fence.push(prefix(key));
            }
        }
        self.out.write_all(rec)?;
        self.last.clear();
        self.last.extend_from_slice(key);
        self.count += 1;
        Ok(())
    }

    fn finish(self) -> io::Result<Table> {
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        let mut fence = self.fence;
        fence.shrink_to_fit();
        Ok(Table {
            file,
            rec_len: self.rec_len,
            key_len: self.key_len,
            count: self.count,
            span: self.group as usize * PAGE,
            fence,
        })
    }
}

/// Records sorted by key, one per key, on an anonymous file.
pub struct Table {
    file: File,
    rec_len: usize,
    key_len: usize,
    count: u64,
    /// Bytes of the table an entry of the fence covers (whole pages).
    span: usize,
    /// The key prefix of each span's first record.
    fence: Vec<u64>,
}

impl Table {
    pub fn len(&self) -> u64 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// `f` of the record whose key is `key`, if there is one.
    pub fn find<R>(&self, key: &[u8], f: impl FnOnce(&[u8]) -> R) -> io::Result<Option<R>> {
        let p = prefix(key);
        // Spans before `end` start at or below `p`; a key with prefix `p` is in
        // the last of them, or (prefixes equal across a boundary) in the span
        // before the first one starting at `p`.
        let end = self.fence.partition_point(|&f| f <= p);
        let start = self.fence.partition_point(|&f| f < p).saturating_sub(1).min(end.saturating_sub(1));
        let mut page = [0u8; PAGE];
        let mut wide = Vec::new();
        for number in (start..end).rev() {
            let offset = (number * self.span) as u64;
            let len = (self.count * self.rec_len as u64 - offset).min(self.span as u64) as usize;
            let buf = if len <= PAGE {
                &mut page[..len]
            } else {
                wide.resize(len, 0);
                &mut wide[..]
            };
            self.file.read_exact_at(buf, offset)?;
            if let Some(at) = self.search(buf, key) {
                return Ok(Some(f(&buf[at..at + self.rec_len])));
            }
        }
        Ok(None)
    }

    /// The offset of `key`'s record in a run of sorted records.
    fn search(&self, run: &[u8], key: &[u8]) -> Option<usize> {
        let (mut lo, mut hi) = (0, run.len() / self.rec_len);
        while lo < hi {
            let mid = (lo + hi) / 2;
            let at = mid * self.rec_len;
            match run[at..at + self.key_len].cmp(key) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(at),
            }
        }
        None
    }

    /// The fence, for tests that break it on purpose.
    #[cfg(test)]
    pub fn fence_mut(&mut self) -> &mut Vec<u64> {
        &mut self.fence
    }
}
