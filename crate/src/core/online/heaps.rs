//! The staged copies of a live directory's heaps, kept up to date pass after
//! pass. A pass copies, page by page (`pages.rs`), every heap that may have
//! changed since its last copy, and writes only the pages that differ from the
//! staged ones (known by a hash per page, so staging is never read back).
//!
//! "May have changed" is decided from `stat`: a file whose length, mtime,
//! ctime and inode are those seen before its last copy has not been written
//! since. The one blind spot is the filesystem's timestamp granularity: a
//! write in the same clock tick as that `stat` leaves the mtime as it was. So
//! a copy whose file had been written shortly before its `stat` ("racy", as
//! git calls it) is taken as changed at the next look.
use super::pages::{PageReader, PageSource, CHUNK_PAGES};
use crate::core::error::{CoreError, CoreResult};
use crate::core::fsio;
use crate::core::page::PAGE_SIZE;
use std::collections::BTreeMap;
use std::fs::{File, Metadata, OpenOptions};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// How recent a write must be, at the `stat` before a copy, for the copy to be
/// "racy": well above a Linux timestamp tick (a jiffy, at most 10 ms), or 2 s
/// on a filesystem that keeps whole seconds.
const RACY_FINE: Duration = Duration::from_millis(100);
const RACY_COARSE: Duration = Duration::from_secs(2);

/// What `stat` says of a file, as far as change detection needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileStamp {
    len: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    ino: u64,
}

impl FileStamp {
    fn of(meta: &Metadata) -> FileStamp {
        let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
        FileStamp {
            len: meta.len(),
            mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
            ctime_ns: ns(meta.ctime(), meta.ctime_nsec()),
            ino: meta.ino(),
        }
    }

    /// Whether the file was written so shortly before `now` that a later
    /// write could still carry the same timestamps.
    fn racy(&self, now: SystemTime) -> bool {
        let now_ns = now.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i128);
        let coarse = self.mtime_ns % 1_000_000_000 == 0 && self.ctime_ns % 1_000_000_000 == 0;
        let margin = if coarse { RACY_COARSE } else { RACY_FINE }.as_nanos() as i128;
        now_ns - self.mtime_ns.max(self.ctime_ns) < margin
    }
}

/// One staged heap: the stamp seen before its last copy, and a hash per page.
struct Staged {
    stamp: FileStamp,
    racy: bool,
    pages: Vec<u64>,
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PassStats {
    /// Heaps read in this pass.
    pub files_read: u32,
    pub bytes_read: u64,
    /// Pages written that were staged before with other bytes.
    pub pages_recopied: u64,
    /// Pages written that were not staged before.
    pub pages_added: u64,
    pub torn_rereads: u64,
    pub elapsed: Duration,
}

/// The staged heaps of one stage run.
pub struct StagedHeaps {
    data_dir: PathBuf,
    staging: PathBuf,
    heaps: BTreeMap<String, Staged>,
}

/// The names of the heaps in `dir`, sorted.
pub fn list_heaps(dir: &Path) -> CoreResult<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| CoreError::io("list", dir, e))? {
        let entry = entry.map_err(|e| CoreError::io("list", dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".heap") && entry.file_type().is_ok_and(|t| t.is_file()) {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

fn stat(path: &Path) -> CoreResult<Option<FileStamp>> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) => Ok(Some(FileStamp::of(&meta))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CoreError::io("stat", path, e)),
    }
}

impl StagedHeaps {
    pub fn new(data_dir: &Path, staging: &Path) -> Self {
        StagedHeaps { data_dir: data_dir.to_path_buf(), staging: staging.to_path_buf(), heaps: BTreeMap::new() }
    }

    /// Staged pages in all.
    pub fn pages(&self) -> u64 {
        self.heaps.values().map(|h| h.pages.len() as u64).sum()
    }

    /// The heaps in the data directory (now) that may differ from their
    /// staged copy, with their lengths; staged heaps no longer there count
    /// with length 0.
    pub fn changed(&self) -> CoreResult<Vec<(String, u64)>> {
        let live = list_heaps(&self.data_dir)?;
        let mut out = Vec::new();
        for name in &live {
            let now = stat(&self.data_dir.join(name))?;
            match (self.heaps.get(name), now) {
                (Some(s), Some(now)) if !s.racy && s.stamp == now => {}
                (_, now) => out.push((name.clone(), now.map_or(0, |n| n.len))),
            }
        }
        out.extend(self.heaps.keys().filter(|n| !live.contains(n)).map(|n| (n.clone(), 0)));
        Ok(out)
    }

    /// Brings every heap that may have changed up to date; `stop` is asked
    /// between chunks (a deadline under a freeze) and ends the pass with
    /// `Err` when it says so.
    pub fn pass(&mut self, stop: &dyn Fn() -> Option<CoreError>) -> CoreResult<PassStats> {
        let started = Instant::now();
        let mut stats = PassStats::default();
        let changed = self.changed()?;
        for (name, _) in changed {
            let src = self.data_dir.join(&name);
            match fsio::open_read(&src) {
                Ok(file) => self.copy(&name, file, &src, &mut stats, stop)?,
                Err(e) if e.code == "ENOENT" => self.forget(&name)?,
                Err(e) => return Err(e),
            }
        }
        stats.elapsed = started.elapsed();
        Ok(stats)
    }

    /// Removes the staged copy of a heap that is gone from the data directory.
    fn forget(&mut self, name: &str) -> CoreResult<()> {
        self.heaps.remove(name);
        let path = self.staging.join(name);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(CoreError::io("remove", &path, e)),
            _ => Ok(()),
        }
    }

    /// Copies one heap, writing the pages whose hash differs from the staged
    /// one, and cuts the staged file to the pages read.
    fn copy(
        &mut self,
        name: &str,
        source: impl PageSource,
        src: &Path,
        stats: &mut PassStats,
        stop: &dyn Fn() -> Option<CoreError>,
    ) -> CoreResult<()> {
        let meta = std::fs::symlink_metadata(src).map_err(|e| CoreError::io("stat", src, e))?;
        let (stamp, racy) = (FileStamp::of(&meta), FileStamp::of(&meta).racy(SystemTime::now()));
        let dst = self.staging.join(name);
        let out = open_staged(&dst)?;
        let mut hashes = self.heaps.remove(name).map(|s| s.pages).unwrap_or_default();
        let mut reader = PageReader::new(source, src);
        let mut buf = fsio::buffer(CHUNK_PAGES * PAGE_SIZE);
        let mut next = 0u64;
        loop {
            if let Some(e) = stop() {
                return Err(e);
            }
            let got = reader.read_pages(next, &mut buf)?;
            write_differing(&out, &dst, next, &buf[..got * PAGE_SIZE], &mut hashes, stats)?;
            stats.bytes_read += (got * PAGE_SIZE) as u64;
            next += got as u64;
            if got < CHUNK_PAGES {
                break;
            }
        }
        hashes.truncate(next as usize);
        out.set_len(next * PAGE_SIZE as u64).map_err(|e| CoreError::io("truncate", &dst, e))?;
        stats.files_read += 1;
        stats.torn_rereads += reader.torn_rereads;
        self.heaps.insert(name.to_string(), Staged { stamp, racy, pages: hashes });
        Ok(())
    }

    /// fsyncs every staged heap.
    pub fn sync(&self) -> CoreResult<()> {
        for name in self.heaps.keys() {
            let path = self.staging.join(name);
            fsio::sync(&fsio::open_read(&path)?, &path)?;
        }
        Ok(())
    }
}

/// Opens (creating it 0600) a staged heap for positioned writes.
fn open_staged(path: &Path) -> CoreResult<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| CoreError::io("open", path, e))
}

/// Writes the pages of `chunk` (from page `first`) whose hash differs from
/// `hashes`, updating them and the counts.
fn write_differing(
    out: &File,
    path: &Path,
    first: u64,
    chunk: &[u8],
    hashes: &mut Vec<u64>,
    stats: &mut PassStats,
) -> CoreResult<()> {
    for (i, page) in chunk.chunks_exact(PAGE_SIZE).enumerate() {
        let index = first as usize + i;
        let hash = xxhash_rust::xxh3::xxh3_64(page);
        match hashes.get_mut(index) {
            Some(h) if *h == hash => continue,
            Some(h) => {
                *h = hash;
                stats.pages_recopied += 1;
            }
            None => {
                hashes.push(hash);
                stats.pages_added += 1;
            }
        }
        out.write_all_at(page, (index * PAGE_SIZE) as u64).map_err(|e| CoreError::io("write", path, e))?;
    }
    Ok(())
}

#[cfg(test)]
impl StagedHeaps {
    /// A pass over `name` read through `source` (a tearing one in tests).
    pub fn copy_from(&mut self, name: &str, source: impl PageSource, stats: &mut PassStats) -> CoreResult<()> {
        let src = self.data_dir.join(name);
        self.copy(name, source, &src, stats, &|| None)
    }
}
