//! Restoring one file of a chain in a single pass of writes: its newest whole
//! copy plus the page deltas shipped after it. Deltas are applied newest first
//! and a bitmap remembers the pages already written, so every page of the
//! result is written exactly once; the whole copy then fills the other pages.
//! Every layer, superseded ones included, is checked against its BLAKE3, so a
//! restore that succeeds vouches for the whole chain.
use super::delta::{bad_delta, check_spec, DeltaSpec};
use super::digest::hash_chunk;
use super::error::{CoreError, CoreResult};
use super::fsio::{self, Sink};
use super::page::{PAGE_SIZE, RECORD_SIZE};
use super::pagemap::{check_map, page_hash, HeapShape, MapReader, PageHash, ZERO_PAGE};
use super::verify::{verify_artifact, Content};
use std::path::Path;

pub use super::layer::{final_len, Layer, LayerKind};

/// Pages already written, by index.
struct Bitmap(Vec<u64>);

impl Bitmap {
    fn new(pages: u64) -> Self {
        Bitmap(vec![0; pages.div_ceil(64) as usize])
    }

    /// Marks `page`; false if it was marked already.
    fn mark(&mut self, page: u32) -> bool {
        let (word, bit) = (page as usize / 64, 1u64 << (page % 64));
        let fresh = self.0[word] & bit == 0;
        self.0[word] |= bit;
        fresh
    }

    fn is_marked(&self, page: u64) -> bool {
        self.0.get(page as usize / 64).is_some_and(|w| w & (1 << (page % 64)) != 0)
    }
}

/// Where assembled pages go: a file being restored, a content map being
/// computed, or both.
pub trait PageSink {
    /// `bytes` are whole pages (a page-aligned heap) starting at `offset`.
    fn put(&mut self, bytes: &[u8], offset: u64) -> CoreResult<()>;
}

impl PageSink for Sink<'_> {
    /// A restore's progress is the bytes of the result written.
    fn put(&mut self, bytes: &[u8], offset: u64) -> CoreResult<()> {
        super::cancel::advance(bytes.len() as u64);
        self.write_at(bytes, offset)
    }
}

/// The content map and shape of a heap, computed from the pages put into it.
pub struct MapSink {
    pub hashes: Vec<PageHash>,
    pub shape: HeapShape,
}

impl MapSink {
    /// A heap of `len` bytes, all zeros until pages are put.
    pub fn new(len: u64) -> Self {
        MapSink { hashes: vec![*ZERO_PAGE; len.div_ceil(PAGE_SIZE as u64) as usize], shape: HeapShape::default() }
    }
}

impl PageSink for MapSink {
    fn put(&mut self, bytes: &[u8], offset: u64) -> CoreResult<()> {
        let first = (offset / PAGE_SIZE as u64) as usize;
        for (i, page) in bytes.chunks_exact(PAGE_SIZE).enumerate() {
            self.hashes[first + i] = page_hash(page);
            self.shape.observe((first + i) as u32, page);
        }
        Ok(())
    }
}

/// Checks a layer that the result does not need (a superseded copy or delta).
fn verify_only(layer: &Layer) -> CoreResult<()> {
    let content = match &layer.kind {
        LayerKind::Whole => Content::Whole,
        LayerKind::Pages(spec) => Content::Delta { spec: spec.clone(), max_lsn: u64::MAX },
    };
    match super::cancel::uncounted(|| verify_artifact(&layer.path, &layer.expected(), &content))?.into_iter().next() {
        Some(first) => Err(CoreError::new(&first.code, first.message)),
        None => Ok(()),
    }
}

/// Writes the pages of one delta that no newer delta wrote, verifying it.
fn apply_unwritten(layer: &Layer, spec: &DeltaSpec, out: &mut dyn PageSink, written: &mut Bitmap) -> CoreResult<()> {
    check_spec(spec, &layer.name, &layer.path)?;
    let on_disk = fsio::listed_len(&layer.path, &layer.name, &layer.artifact)?;
    if on_disk != spec.delta_len {
        return Err(bad_delta(&layer.path, on_disk, spec.page_indices.len(), spec.delta_len));
    }
    let mut hasher = blake3::Hasher::new();
    let mut record = 0usize;
    let mut file = fsio::open_read(&layer.path)?;
    let mut buf = fsio::buffer(RECORD_SIZE * 256);
    loop {
        let n = fsio::read_full(&mut file, &mut buf, &layer.path)?;
        if n == 0 {
            break;
        }
        if n % RECORD_SIZE != 0 || record + n / RECORD_SIZE > spec.page_indices.len() {
            return Err(bad_delta(&layer.path, on_disk, spec.page_indices.len(), spec.delta_len));
        }
        hasher.update(&buf[..n]);
        for rec in buf[..n].chunks_exact(RECORD_SIZE) {
            let index = u32::from_le_bytes(rec[..4].try_into().expect("4-byte header"));
            let listed = spec.page_indices[record];
            if index != listed {
                return Err(CoreError::new(
                    "ERR_BAD_DELTA",
                    format!("{} record {record} is page {index} but the manifest lists page {listed}", layer.name),
                ));
            }
            if written.mark(index) {
                out.put(&rec[4..], index as u64 * PAGE_SIZE as u64)?;
            }
            record += 1;
        }
    }
    if record != spec.page_indices.len() {
        return Err(bad_delta(&layer.path, on_disk, spec.page_indices.len(), spec.delta_len));
    }
    layer.expected().check_hash(hasher.finalize().to_hex().as_ref())
}

/// Copies the whole layer, skipping pages a newer delta already wrote.
fn copy_unwritten(layer: &Layer, out: &mut dyn PageSink, written: &Bitmap) -> CoreResult<()> {
    let expected = layer.expected();
    expected.check_len(fsio::listed_len(&layer.path, &layer.name, &layer.artifact)?)?;
    let mut hasher = blake3::Hasher::new();
    let mut offset = 0u64;
    fsio::for_each_chunk_ahead(fsio::open_read(&layer.path)?, &layer.path, fsio::CHUNK, |chunk| {
        hash_chunk(&mut hasher, chunk);
        // Write maximal runs of pages that no delta wrote.
        let mut run_start: Option<usize> = None;
        for i in 0..chunk.len().div_ceil(PAGE_SIZE) {
            let keep = !written.is_marked(offset / PAGE_SIZE as u64 + i as u64);
            match (keep, run_start) {
                (true, None) => run_start = Some(i * PAGE_SIZE),
                (false, Some(start)) => {
                    out.put(&chunk[start..i * PAGE_SIZE], offset + start as u64)?;
                    run_start = None;
                }
                _ => {}
            }
        }
        if let Some(start) = run_start {
            out.put(&chunk[start..], offset + start as u64)?;
        }
        offset += chunk.len() as u64;
        Ok(())
    })?;
    expected.check_len(offset)?;
    expected.check_hash(hasher.finalize().to_hex().as_ref())
}

/// Puts the result of `layers` (a file's history in chain order) into `out`
/// in one pass: deltas newest first, then the pages of the newest whole copy
/// that no delta wrote. Every layer is verified, superseded ones included.
pub fn assemble(layers: &[Layer], out: &mut dyn PageSink) -> CoreResult<()> {
    let base_at = layers.iter().rposition(|l| matches!(l.kind, LayerKind::Whole));
    let (superseded, base, deltas) = match base_at {
        Some(i) => (&layers[..i], Some(&layers[i]), &layers[i + 1..]),
        None => (&layers[..0], None, layers),
    };
    for layer in superseded {
        verify_only(layer)?;
    }
    let mut written = Bitmap::new(final_len(layers).div_ceil(PAGE_SIZE as u64));
    for layer in deltas.iter().rev() {
        if let LayerKind::Pages(spec) = &layer.kind {
            apply_unwritten(layer, spec, out, &mut written)?;
        }
    }
    match base {
        Some(base) => copy_unwritten(base, out, &written),
        None => Ok(()),
    }
}

/// The content map (and shape) of the heap `layers` build, without writing it.
pub fn map_of_layers(layers: &[Layer]) -> CoreResult<MapSink> {
    let mut map = MapSink::new(final_len(layers));
    assemble(layers, &mut map)?;
    Ok(map)
}

/// Builds `target` (a new file in a staging directory) from `layers`, the
/// file's history in chain order. With `map` (the content map the backup
/// stored for this heap), every restored page is then checked against it,
/// reading the result back while it is still in the page cache: the check
/// needs no memory that grows with the heap.
pub fn restore_file(target: &Path, layers: &[Layer], map: Option<&Layer>) -> CoreResult<()> {
    let file = fsio::create_new(target)?;
    file.set_len(final_len(layers)).map_err(|e| CoreError::io("extend", target, e))?;
    let mut out = Sink::new(file, target);
    assemble(layers, &mut out)?;
    if let Some(map) = map {
        check_against_map(target, map)?;
    }
    out.finish()
}

fn check_against_map(target: &Path, map: &Layer) -> CoreResult<()> {
    let pages = check_map(&map.path, &map.expected())?;
    let mut stored = MapReader::open_at(&map.path, pages, 0)?;
    let mut page = 0u64;
    let mut first_difference = None;
    // Small reads: the result is still in the page cache, and files are restored in parallel.
    fsio::for_each_chunk_of(target, 256 << 10, |chunk| {
        for bytes in chunk.chunks(PAGE_SIZE) {
            if first_difference.is_none() && (page >= pages || page_hash(bytes) != stored.next(&map.path)?) {
                first_difference = Some(page);
            }
            page += 1;
        }
        Ok(())
    })?;
    let Some(page) = first_difference.or((page != pages).then_some(page.min(pages))) else { return Ok(()) };
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    Err(CoreError::new(
        "ERR_INTEGRITY",
        format!(
            "integrity check failed for {name}: page {page} differs from the backup's content map (backup is corrupt)"
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::delta::tests::map_of;
    use crate::core::delta::{write_delta, Base, BaseMap};
    use crate::core::test_support::{pages, read, whole_layer as whole, TempDir};

    /// A delta of the pages of `new` that differ from `old`.
    fn delta(dir: &TempDir, name: &str, new: &[u8], old: &[u8], base_lsn: u64) -> Layer {
        let src = dir.write(&format!("{name}.src"), new);
        let base = Base { lsn: base_lsn, map: BaseMap::Computed(&map_of(old)) };
        let spec = write_delta(&src, &dir.path(name), base, &dir.path(&format!("{name}.map"))).unwrap().delta.unwrap();
        Layer {
            path: dir.path(name),
            name: name.into(),
            len: spec.delta_len,
            blake3_hex: spec.blake3_hex.clone(),
            artifact: "increment".into(),
            kind: LayerKind::Pages(spec),
        }
    }

    /// The stored content map of `heap`, as a layer.
    fn stored_map(dir: &TempDir, name: &str, heap: &[u8]) -> Layer {
        let digest = crate::core::pagemap::write_map(&dir.path(name), &map_of(heap)).unwrap();
        Layer {
            path: dir.path(name),
            name: name.into(),
            len: digest.len,
            blake3_hex: digest.blake3_hex,
            artifact: "backup".into(),
            kind: LayerKind::Whole,
        }
    }

    /// Heap generations: v0 = 300 pages at LSN 10; v1 grows to 350 and changes every 7th page; v2 every 5th.
    fn generations() -> [Vec<u8>; 3] {
        let v0 = pages(300, |_| 10);
        let v1 = pages(350, |i| if i % 7 == 0 || i >= 300 { 20 } else { 10 });
        let mut v2 = pages(350, |i| {
            if i % 5 == 0 {
                30
            } else if i % 7 == 0 || i >= 300 {
                20
            } else {
                10
            }
        });
        v2[5 * PAGE_SIZE + 100] = 0xAB; // page 5 differs in content as well as LSN
        [v0, v1, v2]
    }

    #[test]
    fn base_plus_deltas_equals_the_newest_state() {
        let dir = TempDir::new();
        let [v0, v1, v2] = generations();
        let layers = [whole(&dir, "full", &v0), delta(&dir, "d1", &v1, &v0, 10), delta(&dir, "d2", &v2, &v1, 20)];
        restore_file(&dir.path("out"), &layers, Some(&stored_map(&dir, "m2", &v2))).unwrap();
        assert!(read(&dir.path("out")) == v2);
        restore_file(&dir.path("out1"), &layers[..2], None).unwrap();
        assert!(read(&dir.path("out1")) == v1);
        assert_eq!(map_of_layers(&layers).unwrap().hashes, map_of(&v2));
        let err = restore_file(&dir.path("out2"), &layers, Some(&stored_map(&dir, "m1", &v1))).unwrap_err();
        assert_eq!(err.code, "ERR_INTEGRITY");
    }

    #[test]
    fn a_newer_whole_copy_supersedes_older_layers_but_they_are_still_verified() {
        let dir = TempDir::new();
        let [v0, v1, v2] = generations();
        let mut layers = vec![whole(&dir, "full", &v0), delta(&dir, "d1", &v1, &v0, 10), whole(&dir, "w2", &v2)];
        restore_file(&dir.path("out"), &layers, None).unwrap();
        assert!(read(&dir.path("out")) == v2);

        layers[1].blake3_hex = "0".repeat(64);
        let err = restore_file(&dir.path("out2"), &layers, None).unwrap_err();
        assert_eq!(err.message, "integrity check failed for d1: blake3 mismatch (increment is corrupt)");
    }

    #[test]
    fn rejects_corrupt_deltas_and_hostile_specs() {
        let dir = TempDir::new();
        let [v0, v1, _] = generations();
        let good = [whole(&dir, "full", &v0), delta(&dir, "d1", &v1, &v0, 10)];
        let LayerKind::Pages(spec) = good[1].kind.clone() else { unreachable!() };
        let mut n = 0;
        let mut attempt = |spec: DeltaSpec| {
            let mut layers = good.to_vec();
            layers[1].kind = LayerKind::Pages(spec);
            n += 1;
            restore_file(&dir.path(&format!("out{n}")), &layers, None).unwrap_err()
        };
        assert_eq!(attempt(DeltaSpec { total_pages: 200, ..spec.clone() }).code, "ERR_BAD_MANIFEST");
        let unsorted = vec![14, 7, 21];
        let unsorted_len = 3 * RECORD_SIZE as u64;
        assert_eq!(
            attempt(DeltaSpec { page_indices: unsorted, delta_len: unsorted_len, ..spec.clone() }).code,
            "ERR_BAD_MANIFEST"
        );
        let err = attempt(DeltaSpec { delta_len: spec.delta_len + 1, ..spec.clone() });
        assert_eq!(err.code, "ERR_BAD_DELTA");
        assert!(err.message.contains("page records expected"), "{}", err.message);
        let mut shifted = spec.page_indices.clone();
        shifted[1] += 1;
        assert_eq!(attempt(DeltaSpec { page_indices: shifted, ..spec.clone() }).code, "ERR_BAD_DELTA");

        let mut bytes = read(&dir.path("d1"));
        bytes[RECORD_SIZE + 100] ^= 1;
        dir.write("d1", &bytes);
        assert_eq!(attempt(spec.clone()).code, "ERR_INTEGRITY");
        bytes.truncate(RECORD_SIZE);
        dir.write("d1", &bytes);
        assert_eq!(attempt(spec).code, "ERR_BAD_DELTA");
    }
}
