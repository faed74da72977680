//! Page deltas: extracting the pages changed since a base LSN into a
//! `<name>.delta` file, and writing them back at their offsets.
use super::digest::Expected;
use super::error::{CoreError, CoreResult};
use super::fsio;
use super::page::{page_lsn, PAGE_SIZE, RECORD_SIZE};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

/// The `Pages` entry of an increment, as computed or as read from a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeltaSpec {
    pub total_pages: u32,
    pub page_indices: Vec<u32>,
    pub delta_len: u64,
    pub blake3_hex: String,
}

/// A backup-side delta and the highest page LSN of the whole heap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeltaOutcome {
    /// None when no page is newer than the base: no delta file is written.
    pub delta: Option<DeltaSpec>,
    pub max_page_lsn: u64,
}

/// Writes delta records lazily: the file exists only once a page qualifies.
struct DeltaWriter<'a> {
    path: &'a Path,
    out: Option<BufWriter<File>>,
    hasher: blake3::Hasher,
    indices: Vec<u32>,
}

impl DeltaWriter<'_> {
    fn push(&mut self, index: u32, page: &[u8]) -> CoreResult<()> {
        if self.out.is_none() {
            let file = fsio::create_new(self.path)?;
            self.out = Some(BufWriter::with_capacity(fsio::CHUNK, file));
        }
        let out = self.out.as_mut().expect("opened above");
        let header = index.to_le_bytes();
        for part in [&header[..], page] {
            self.hasher.update(part);
            out.write_all(part).map_err(|e| CoreError::io("write", self.path, e))?;
        }
        self.indices.push(index);
        Ok(())
    }

    fn finish(self, total_pages: u32) -> CoreResult<Option<DeltaSpec>> {
        let Some(out) = self.out else { return Ok(None) };
        let file = out.into_inner().map_err(|e| CoreError::io("write", self.path, e.into_error()))?;
        fsio::sync(&file, self.path)?;
        Ok(Some(DeltaSpec {
            total_pages,
            delta_len: self.indices.len() as u64 * RECORD_SIZE as u64,
            page_indices: self.indices,
            blake3_hex: self.hasher.finalize().to_hex().to_string(),
        }))
    }
}

/// Scans the heap at `heap` and writes every page whose LSN is strictly
/// greater than `base_lsn` to `delta_path`, indices ascending.
pub fn write_delta(heap: &Path, delta_path: &Path, base_lsn: u64) -> CoreResult<DeltaOutcome> {
    let mut writer =
        DeltaWriter { path: delta_path, out: None, hasher: blake3::Hasher::new(), indices: Vec::new() };
    let mut next_index: u64 = 0;
    let mut max_lsn = 0u64;
    let len = fsio::for_each_chunk(heap, |chunk| {
        if chunk.len() % PAGE_SIZE != 0 {
            return Err(not_paged(heap));
        }
        for page in chunk.chunks_exact(PAGE_SIZE) {
            let lsn = page_lsn(page);
            max_lsn = max_lsn.max(lsn);
            if lsn > base_lsn {
                let index = u32::try_from(next_index).map_err(|_| too_many_pages(heap))?;
                writer.push(index, page)?;
            }
            next_index += 1;
        }
        Ok(())
    })?;
    let total_pages = u32::try_from(len / PAGE_SIZE as u64).map_err(|_| too_many_pages(heap))?;
    Ok(DeltaOutcome { delta: writer.finish(total_pages)?, max_page_lsn: max_lsn })
}

fn not_paged(heap: &Path) -> CoreError {
    CoreError::new("ERR_NOT_PAGED", format!("{} is not a whole number of 4096-byte pages", heap.display()))
}

fn too_many_pages(heap: &Path) -> CoreError {
    CoreError::new("ERR_NOT_PAGED", format!("{} has more pages than a u32 index can name", heap.display()))
}

/// Checks a manifest's page list before any delta byte is read.
fn check_spec(spec: &DeltaSpec, delta_name: &str, target: &Path) -> CoreResult<()> {
    let expected_len = spec.page_indices.len() as u64 * RECORD_SIZE as u64;
    if spec.delta_len != expected_len {
        return Err(bad_delta(target, spec.delta_len, spec.page_indices.len(), expected_len));
    }
    let mut previous: Option<u32> = None;
    for &index in &spec.page_indices {
        if index >= spec.total_pages {
            return Err(CoreError::new(
                "ERR_BAD_MANIFEST",
                format!("{delta_name} lists page {index} but the heap has {} pages", spec.total_pages),
            ));
        }
        if previous.is_some_and(|p| p >= index) {
            return Err(CoreError::new(
                "ERR_BAD_MANIFEST",
                format!("{delta_name} lists page indices out of ascending order at {index}"),
            ));
        }
        previous = Some(index);
    }
    Ok(())
}

pub(crate) fn bad_delta(target: &Path, len: u64, count: usize, expected: u64) -> CoreError {
    CoreError::new(
        "ERR_BAD_DELTA",
        format!(
            "delta for {} has length {len} but {count} page records expected {expected}",
            target.display()
        ),
    )
}

/// Restore side: writes each page record of `delta_path` at `index * 4096` in
/// `target` (extended with zeros to `total_pages` pages first, never shrunk),
/// checking every record against the manifest and the delta's BLAKE3.
/// `target` lives in a staging directory, so a failure part-way is harmless.
pub fn apply_delta(delta_path: &Path, target: &Path, spec: &DeltaSpec, delta_name: &str) -> CoreResult<()> {
    check_spec(spec, delta_name, target)?;
    let on_disk = fsio::listed_len(delta_path, delta_name, "increment")?;
    if on_disk != spec.delta_len {
        return Err(bad_delta(target, on_disk, spec.page_indices.len(), spec.delta_len));
    }
    let out = fsio::open_for_update(target)?;
    let wanted_len = spec.total_pages as u64 * PAGE_SIZE as u64;
    let current_len = out.metadata().map_err(|e| CoreError::io("stat", target, e))?.len();
    if current_len < wanted_len {
        out.set_len(wanted_len).map_err(|e| CoreError::io("extend", target, e))?;
    }

    let mut hasher = blake3::Hasher::new();
    let mut record = 0usize;
    // 256 records per chunk: CHUNK is not a multiple of RECORD_SIZE.
    let mut file = fsio::open_read(delta_path)?;
    let mut buf = vec![0u8; RECORD_SIZE * 256];
    loop {
        let n = fsio::read_full(&mut file, &mut buf, delta_path)?;
        if n == 0 {
            break;
        }
        if n % RECORD_SIZE != 0 || record + n / RECORD_SIZE > spec.page_indices.len() {
            return Err(bad_delta(target, on_disk, spec.page_indices.len(), spec.delta_len));
        }
        hasher.update(&buf[..n]);
        for rec in buf[..n].chunks_exact(RECORD_SIZE) {
            let index = u32::from_le_bytes(rec[..4].try_into().expect("4-byte header"));
            let listed = spec.page_indices[record];
            if index != listed {
                return Err(CoreError::new(
                    "ERR_BAD_DELTA",
                    format!("{delta_name} record {record} is page {index} but the manifest lists page {listed}"),
                ));
            }
            out.write_all_at(&rec[4..], index as u64 * PAGE_SIZE as u64)
                .map_err(|e| CoreError::io("write", target, e))?;
            record += 1;
        }
    }
    if record != spec.page_indices.len() {
        return Err(bad_delta(target, on_disk, spec.page_indices.len(), spec.delta_len));
    }
    let expected =
        Expected { name: delta_name, len: spec.delta_len, blake3_hex: &spec.blake3_hex, artifact: "increment" };
    expected.check_hash(&hasher.finalize().to_hex().to_string())?;
    fsio::sync(&out, target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::test_support::{pages, read, TempDir};

    fn changed_after_50(i: usize) -> u64 {
        if i % 100 == 7 { 60 + i as u64 } else { 50 }
    }

    #[test]
    fn ships_only_pages_strictly_newer_than_the_base() {
        let dir = TempDir::new();
        let heap = pages(400, changed_after_50);
        let src = dir.write("T.heap", &heap);
        let out = write_delta(&src, &dir.path("T.heap.delta"), 50).unwrap();
        let spec = out.delta.unwrap();
        assert_eq!(spec.page_indices, vec![7, 107, 207, 307]);
        assert_eq!(spec.total_pages, 400);
        assert_eq!(out.max_page_lsn, 367);
        let delta = read(&dir.path("T.heap.delta"));
        assert_eq!(delta.len() as u64, spec.delta_len);
        assert_eq!(spec.delta_len, 4 * RECORD_SIZE as u64);
        assert_eq!(&delta[..4], &7u32.to_le_bytes());
        assert_eq!(&delta[4..4 + PAGE_SIZE], &heap[7 * PAGE_SIZE..8 * PAGE_SIZE]);
        assert_eq!(spec.blake3_hex, blake3::hash(&delta).to_hex().to_string());
    }

    #[test]
    fn no_changed_page_writes_no_file() {
        let dir = TempDir::new();
        let src = dir.write("T.heap", &pages(10, |_| 5));
        let out = write_delta(&src, &dir.path("d"), 5).unwrap();
        assert_eq!(out.delta, None);
        assert_eq!(out.max_page_lsn, 5);
        assert!(!dir.path("d").exists());
    }

    #[test]
    fn refuses_a_heap_that_is_not_page_aligned() {
        let dir = TempDir::new();
        let src = dir.write("T.heap", &[0u8; 5000]);
        assert_eq!(write_delta(&src, &dir.path("d"), 0).unwrap_err().code, "ERR_NOT_PAGED");
    }

    #[test]
    fn apply_reproduces_the_new_heap_and_extends_it() {
        let dir = TempDir::new();
        let old = pages(300, |_| 50);
        let new = pages(420, changed_after_50);
        let src = dir.write("new.heap", &new);
        let spec = write_delta(&src, &dir.path("d"), 50).unwrap().delta.unwrap();
        let target = dir.write("T.heap", &old);
        apply_delta(&dir.path("d"), &target, &spec, "T.heap.delta").unwrap();
        let restored = read(&target);
        assert_eq!(restored.len(), new.len());
        for i in [7usize, 107, 207, 307, 407] {
            assert_eq!(restored[i * PAGE_SIZE..(i + 1) * PAGE_SIZE], new[i * PAGE_SIZE..(i + 1) * PAGE_SIZE]);
        }
        // Pages the delta does not carry keep the base's bytes (zeros past its end).
        assert_eq!(restored[PAGE_SIZE..2 * PAGE_SIZE], old[PAGE_SIZE..2 * PAGE_SIZE]);
        assert!(restored[350 * PAGE_SIZE..351 * PAGE_SIZE].iter().all(|&b| b == 0));
    }

    fn delta_fixture(dir: &TempDir) -> DeltaSpec {
        let src = dir.write("new.heap", &pages(300, changed_after_50));
        write_delta(&src, &dir.path("d"), 50).unwrap().delta.unwrap()
    }

    #[test]
    fn apply_rejects_corrupt_deltas_and_hostile_specs() {
        let dir = TempDir::new();
        let spec = delta_fixture(&dir);
        let target = dir.path("T.heap");
        let apply = |spec: &DeltaSpec| apply_delta(&dir.path("d"), &target, spec, "T.heap.delta").unwrap_err();

        let beyond = DeltaSpec { total_pages: 200, ..spec.clone() };
        assert_eq!(apply(&beyond).code, "ERR_BAD_MANIFEST");
        let unsorted = DeltaSpec { page_indices: vec![107, 7, 207], delta_len: 3 * RECORD_SIZE as u64, ..spec.clone() };
        assert_eq!(apply(&unsorted).code, "ERR_BAD_MANIFEST");
        let wrong_len = DeltaSpec { delta_len: spec.delta_len + 1, ..spec.clone() };
        let err = apply(&wrong_len);
        assert_eq!(err.code, "ERR_BAD_DELTA");
        assert!(err.message.contains("page records expected"), "{}", err.message);
        let wrong_index = DeltaSpec { page_indices: vec![7, 108, 207], ..spec.clone() };
        assert_eq!(apply(&wrong_index).code, "ERR_BAD_DELTA");
        let wrong_hash = DeltaSpec { blake3_hex: "0".repeat(64), ..spec.clone() };
        let err = apply(&wrong_hash);
        assert_eq!(err.message, "integrity check failed for T.heap.delta: blake3 mismatch (increment is corrupt)");

        let mut bytes = read(&dir.path("d"));
        bytes[RECORD_SIZE + 100] ^= 1;
        dir.write("d", &bytes);
        assert_eq!(apply(&spec).code, "ERR_INTEGRITY");
        bytes.truncate(RECORD_SIZE);
        dir.write("d", &bytes);
        assert_eq!(apply(&spec).code, "ERR_BAD_DELTA");
    }
}
