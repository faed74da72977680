//! Content maps from any source, and page-by-page comparison of two heaps:
//! a data directory's heap, a backup's stored map, or a chain's layers.
use super::delta::BaseMap;
use super::error::{CoreError, CoreResult};
use super::fsio;
use super::page::PAGE_SIZE;
use super::pagemap::{check_map, page_hash, read_map, HeapShape, PageHash};
use super::restore::{map_of_layers, Layer};
use std::path::PathBuf;

/// Where a heap's content map comes from.
#[derive(Debug, Clone)]
pub enum MapSource {
    /// A heap file (a stopped data directory's): every page read and hashed.
    Heap(PathBuf),
    /// A `.pagemap` a backup stored, with its manifest entry (a whole layer).
    Stored(Layer),
    /// A file's history in a chain: assembled in memory-bounded passes.
    Layers(Vec<Layer>),
}

/// A heap's content map and what its pages say about its format (unknown for
/// a stored map).
pub struct HeapImage {
    pub hashes: Vec<PageHash>,
    pub shape: Option<HeapShape>,
}

pub fn load(source: &MapSource) -> CoreResult<HeapImage> {
    match source {
        MapSource::Heap(path) => {
            let (mut hashes, mut shape) = (Vec::new(), HeapShape::default());
            let len = fsio::for_each_chunk(path, |chunk| {
                for page in chunk.chunks_exact(PAGE_SIZE) {
                    shape.observe(hashes.len() as u32, page);
                    hashes.push(page_hash(page));
                }
                Ok(())
            })?;
            if len % PAGE_SIZE as u64 != 0 {
                return Err(CoreError::new(
                    "ERR_NOT_PAGED",
                    format!("{} is not a whole number of 4096-byte pages", path.display()),
                ));
            }
            Ok(HeapImage { hashes, shape: Some(shape) })
        }
        MapSource::Stored(layer) => Ok(HeapImage { hashes: read_map(&layer.path, &layer.expected())?, shape: None }),
        MapSource::Layers(layers) => {
            let map = map_of_layers(layers)?;
            Ok(HeapImage { hashes: map.hashes, shape: Some(map.shape) })
        }
    }
}

/// Runs `work` with the content map `source` names as an increment's base: a
/// stored map is checked once and then read range by range (never whole);
/// any other source is computed (one hash per page in memory).
pub fn with_base_map<T>(source: &MapSource, work: impl FnOnce(BaseMap) -> CoreResult<T>) -> CoreResult<T> {
    if let MapSource::Stored(layer) = source {
        let pages = check_map(&layer.path, &layer.expected())?;
        return work(BaseMap::Stored { path: &layer.path, pages });
    }
    let computed = load(source)?.hashes;
    work(BaseMap::Computed(&computed))
}

/// Differing pages listed at most; the count is always exact.
const MAX_LISTED: usize = 1000;

/// How two heaps differ, page by page.
#[derive(Debug, Clone, Default)]
pub struct HeapDiff {
    pub a_pages: u32,
    pub b_pages: u32,
    /// The first differing page indices (beyond the shorter heap's end too).
    pub differing: Vec<u32>,
    pub differing_count: u32,
    /// A format inconsistency found in either heap's pages (page, message).
    pub shape_problem: Option<(u32, String)>,
}

/// Compares `a` with `b`; without `b`, only checks `a`'s shape.
pub fn diff(a: &MapSource, b: Option<&MapSource>) -> CoreResult<HeapDiff> {
    let a = load(a)?;
    let b = match b {
        Some(b) => load(b)?,
        None => HeapImage { hashes: a.hashes.clone(), shape: None },
    };
    let pages = a.hashes.len().max(b.hashes.len());
    let mut out = HeapDiff { a_pages: a.hashes.len() as u32, b_pages: b.hashes.len() as u32, ..HeapDiff::default() };
    for i in 0..pages {
        if a.hashes.get(i) != b.hashes.get(i) {
            out.differing_count += 1;
            if out.differing.len() < MAX_LISTED {
                out.differing.push(i as u32);
            }
        }
    }
    out.shape_problem = [a.shape, b.shape].into_iter().flatten().find_map(|s| s.problem());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::delta::tests::map_of;
    use crate::core::pagemap::write_map;
    use crate::core::restore::LayerKind;
    use crate::core::test_support::{pages, TempDir};

    #[test]
    fn compares_a_heap_with_a_stored_map_page_by_page() {
        let dir = TempDir::new();
        let old = pages(20, |_| 3);
        let digest = write_map(&dir.path("T.heap.pagemap"), &map_of(&old)).unwrap();
        let stored = MapSource::Stored(Layer {
            path: dir.path("T.heap.pagemap"),
            name: "T.heap.pagemap".into(),
            len: digest.len,
            blake3_hex: digest.blake3_hex,
            artifact: "backup".into(),
            kind: LayerKind::Whole,
        });
        let mut new = old.clone();
        new[5 * PAGE_SIZE + 300] ^= 1;
        new.extend_from_slice(&[1u8; 2 * PAGE_SIZE]);
        let heap = MapSource::Heap(dir.write("T.heap", &new));
        let d = diff(&heap, Some(&stored)).unwrap();
        assert_eq!((d.a_pages, d.b_pages, d.differing.clone(), d.differing_count), (22, 20, vec![5, 20, 21], 3));
        assert_eq!(diff(&stored, Some(&stored)).unwrap().differing_count, 0);
    }
}
