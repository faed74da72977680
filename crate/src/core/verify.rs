//! Verifying a backup's files without restoring them: one streamed read per
//! file checks its length and BLAKE3 and, by kind, its pages, delta records
//! or catalog header and CRC.
use super::delta::{bad_delta, DeltaSpec};
use super::digest::{hash_chunk, Expected};
use super::error::{CoreError, CoreResult};
use super::fsio;
use super::layer::Layer;
use super::page::{page_problem, PAGE_SIZE, RECORD_SIZE};
use super::pagemap::{check_map, page_hash, HeapShape, MapReader};
use std::path::Path;

/// How a file's content is checked beyond its hash.
#[derive(Debug, Clone)]
pub enum Content {
    Whole,
    /// A heap copied whole: every page checked, LSNs at most `max_lsn`, and
    /// each page's hash against the backup's content map when given.
    Heap {
        max_lsn: u64,
        map: Option<Layer>,
    },
    /// `catalog.bin`: magic, version, trailing CRC-32.
    Catalog,
    /// A delta: records match the manifest's pages; pages checked as in a heap.
    Delta {
        spec: DeltaSpec,
        max_lsn: u64,
    },
}

/// One problem found in a file; `page` is the heap page it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub code: String,
    pub message: String,
    pub page: Option<u32>,
}

/// Newest catalog format known (powdb-storage 0.19+ writes 7).
pub const MAX_CATALOG_VERSION: u16 = 7;
/// Findings kept per file: enough to locate damage, bounded for huge files.
const MAX_FINDINGS: usize = 16;

struct Findings<'a> {
    name: &'a str,
    list: Vec<Finding>,
}

impl Findings<'_> {
    fn add(&mut self, code: &str, message: String, page: Option<u32>) {
        if self.list.len() < MAX_FINDINGS {
            let message = match page {
                Some(p) => format!("{}: page {p}: {message}", self.name),
                None => format!("{}: {message}", self.name),
            };
            self.list.push(Finding { code: code.to_string(), message, page });
        }
    }

    fn add_error(&mut self, e: CoreError) {
        if self.list.len() < MAX_FINDINGS {
            self.list.push(Finding { code: e.code, message: e.message, page: None });
        }
    }

    fn check_page(&mut self, page: &[u8], index: u32, max_lsn: u64) {
        if let Some((code, message)) = page_problem(page, max_lsn) {
            self.add(code, message, Some(index));
        }
    }
}

/// Streaming CRC-32 of everything but the last 4 bytes, and those 4 bytes.
struct TrailingCrc {
    crc: crc32fast::Hasher,
    tail: Vec<u8>,
    head: Vec<u8>,
}

impl TrailingCrc {
    fn feed(&mut self, chunk: &[u8]) {
        if self.head.len() < 6 {
            let take = (6 - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..take]);
        }
        self.tail.extend_from_slice(chunk);
        let keep = self.tail.len().min(4);
        let settled = self.tail.len() - keep;
        self.crc.update(&self.tail[..settled]);
        self.tail.drain(..settled);
    }

    fn check(self, findings: &mut Findings) {
        if self.head.len() < 6 || &self.head[..4] != b"BCAT" {
            return findings.add("ERR_CATALOG", "bad catalog magic".into(), None);
        }
        let version = u16::from_le_bytes([self.head[4], self.head[5]]);
        if version == 0 || version > MAX_CATALOG_VERSION {
            return findings.add("ERR_CATALOG", format!("unsupported catalog version: {version}"), None);
        }
        let stored = u32::from_le_bytes(self.tail.as_slice().try_into().unwrap_or([0; 4]));
        if self.tail.len() != 4 || stored != self.crc.finalize() {
            findings.add("ERR_CATALOG", "catalog CRC32 mismatch".into(), None);
        }
    }
}

/// The content checks of one file, fed chunk by chunk (whole units) beside its hash.
struct ContentCheck<'a> {
    content: &'a Content,
    len: u64,
    /// Paged content is read in whole units (pages or delta records).
    unit: usize,
    /// Units seen so far.
    index: usize,
    catalog: TrailingCrc,
    shape: HeapShape,
    /// The content map, read in step with the heap, with its page count.
    map: Option<(MapReader, &'a Layer, u64)>,
}

impl<'a> ContentCheck<'a> {
    /// A damaged content map is a finding, not an error.
    fn new(content: &'a Content, len: u64, findings: &mut Findings) -> CoreResult<Self> {
        let map = match content {
            Content::Heap { map: Some(layer), .. } => match check_map(&layer.path, &layer.expected()) {
                Ok(pages) => Some((MapReader::open_at(&layer.path, pages, 0)?, layer, pages)),
                Err(e) if e.code.starts_with("ERR_") => {
                    findings.add_error(e);
                    None
                }
                Err(e) => return Err(e),
            },
            _ => None,
        };
        let unit = if matches!(content, Content::Delta { .. }) { RECORD_SIZE } else { PAGE_SIZE };
        let catalog = TrailingCrc { crc: crc32fast::Hasher::new(), tail: Vec::new(), head: Vec::new() };
        Ok(ContentCheck { content, len, unit, index: 0, catalog, shape: HeapShape::default(), map })
    }

    fn feed(&mut self, chunk: &[u8], findings: &mut Findings) -> CoreResult<()> {
        let unit = self.unit;
        match self.content {
            Content::Whole => {}
            Content::Catalog => self.catalog.feed(chunk),
            Content::Heap { .. } | Content::Delta { .. } if !chunk.len().is_multiple_of(unit) => {
                let message = format!("length {} is not a whole number of {unit}-byte units", self.len);
                findings.add("ERR_NOT_PAGED", message, None);
            }
            Content::Heap { max_lsn, .. } => {
                for page in chunk.chunks_exact(unit) {
                    let index = self.index as u32;
                    findings.check_page(page, index, *max_lsn);
                    self.shape.observe(index, page);
                    if let Some((reader, layer, pages)) = self.map.as_mut() {
                        if index as u64 >= *pages || reader.next(&layer.path)? != page_hash(page) {
                            let message = "page differs from the backup's content map".into();
                            findings.add("ERR_INTEGRITY", message, Some(index));
                        }
                    }
                    self.index += 1;
                }
            }
            Content::Delta { spec, max_lsn } => {
                for record in chunk.chunks_exact(unit) {
                    let page = u32::from_le_bytes(record[..4].try_into().expect("4 bytes"));
                    match spec.page_indices.get(self.index) {
                        Some(&listed) if listed == page => findings.check_page(&record[4..], page, *max_lsn),
                        listed => findings.add(
                            "ERR_BAD_DELTA",
                            format!("record {} is page {page} but the manifest lists {listed:?}", self.index),
                            None,
                        ),
                    }
                    self.index += 1;
                }
            }
        }
        Ok(())
    }

    /// What only the whole file tells: the catalog's CRC, a map longer than
    /// the heap, the heap's shape.
    fn finish(self, findings: &mut Findings) {
        if let Content::Catalog = self.content {
            self.catalog.check(findings);
        }
        let units = self.index as u64;
        if let Some((_, _, pages)) = self.map.filter(|(_, _, pages)| *pages > units) {
            findings.add("ERR_INTEGRITY", format!("the content map lists {pages} pages, the heap has {units}"), None);
        }
        if let Some((page, message)) = self.shape.problem() {
            findings.add("ERR_PAGE_FORMAT", message, Some(page));
        }
    }
}

/// Checks one file of a backup or increment against its manifest entry.
/// Problems come back as findings; only unexpected I/O failures are errors.
pub fn verify_artifact(path: &Path, expected: &Expected, content: &Content) -> CoreResult<Vec<Finding>> {
    let mut findings = Findings { name: expected.name, list: Vec::new() };
    let len = match fsio::listed_len(path, expected.name, expected.artifact) {
        Ok(len) => len,
        Err(e) if e.code.starts_with("ERR_") => {
            findings.add_error(e);
            return Ok(findings.list);
        }
        Err(e) => return Err(e),
    };
    if let Err(e) = expected.check_len(len) {
        // A delta's length says how many records it holds: report it as restore does.
        let e = match content {
            Content::Delta { spec, .. } => bad_delta(path, len, spec.page_indices.len(), spec.delta_len),
            _ => e,
        };
        findings.add_error(e);
        return Ok(findings.list);
    }
    let mut hasher = blake3::Hasher::new();
    let mut check = ContentCheck::new(content, len, &mut findings)?;
    let file = fsio::open_read(path)?;
    // Paged content comes in whole units; the next chunk is read while this
    // one is hashed on all cores and, beside that, its units are checked.
    fsio::for_each_chunk_ahead(file, path, check.unit * (fsio::HASH_CHUNK / PAGE_SIZE), |chunk| {
        super::cancel::advance(chunk.len() as u64);
        let (_, checked) = rayon::join(|| hash_chunk(&mut hasher, chunk), || check.feed(chunk, &mut findings));
        checked
    })?;
    check.finish(&mut findings);
    if let Err(e) = expected.check_hash(hasher.finalize().to_hex().as_ref()) {
        findings.list.insert(0, Finding { code: e.code, message: e.message, page: None });
        findings.list.truncate(MAX_FINDINGS);
    }
    Ok(findings.list)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::delta::write_delta;
    use crate::core::test_support::{pages, TempDir};

    fn expected<'a>(name: &'a str, bytes: &[u8], hex: &'a mut String) -> Expected<'a> {
        *hex = blake3::hash(bytes).to_hex().to_string();
        Expected { name, len: bytes.len() as u64, blake3_hex: hex, artifact: "backup" }
    }

    fn catalog(version: u16) -> Vec<u8> {
        let mut bytes = b"BCAT".to_vec();
        bytes.extend_from_slice(&version.to_le_bytes());
        bytes.extend_from_slice(&[9u8; 3_000_000]);
        let crc = crc32fast::hash(&bytes);
        bytes.extend_from_slice(&crc.to_le_bytes());
        bytes
    }

    #[test]
    fn a_clean_heap_and_catalog_pass() {
        let dir = TempDir::new();
        let mut hex = String::new();
        let heap = pages(600, |i| i as u64);
        let path = dir.write("T.heap", &heap);
        assert_eq!(
            verify_artifact(&path, &expected("T.heap", &heap, &mut hex), &Content::Heap { max_lsn: 599, map: None })
                .unwrap(),
            vec![]
        );
        let cat = catalog(5);
        let path = dir.write("catalog.bin", &cat);
        assert_eq!(
            verify_artifact(&path, &expected("catalog.bin", &cat, &mut hex), &Content::Catalog).unwrap(),
            vec![]
        );
    }

    #[test]
    fn a_heap_is_checked_against_its_content_map_page_by_page() {
        let dir = TempDir::new();
        let mut hex = String::new();
        let heap = pages(300, |_| 1);
        let path = dir.write("T.heap", &heap);
        let mut other = heap.clone();
        other[42 * PAGE_SIZE + 7] ^= 1;
        for (source, found) in [(&heap, vec![]), (&other, vec![("ERR_INTEGRITY".to_string(), Some(42))])] {
            let digest =
                crate::core::pagemap::write_map(&dir.path("m"), &crate::core::delta::tests::map_of(source)).unwrap();
            let map = Layer {
                path: dir.path("m"),
                name: "T.heap.pagemap".into(),
                len: digest.len,
                blake3_hex: digest.blake3_hex,
                artifact: "backup".into(),
                kind: crate::core::layer::LayerKind::Whole,
            };
            let content = Content::Heap { max_lsn: 1, map: Some(map) };
            let result = verify_artifact(&path, &expected("T.heap", &heap, &mut hex), &content).unwrap();
            assert_eq!(result.into_iter().map(|f| (f.code, f.page)).collect::<Vec<_>>(), found);
            std::fs::remove_file(dir.path("m")).unwrap();
        }
    }

    #[test]
    fn names_the_page_above_source_lsn() {
        let dir = TempDir::new();
        let mut hex = String::new();
        let heap = pages(600, |i| if i == 444 { 1000 } else { 1 });
        let path = dir.write("T.heap", &heap);
        let found =
            verify_artifact(&path, &expected("T.heap", &heap, &mut hex), &Content::Heap { max_lsn: 999, map: None })
                .unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].code.as_str(), found[0].page), ("ERR_PAGE_LSN", Some(444)));
    }

    #[test]
    fn catalog_damage_is_named() {
        let dir = TempDir::new();
        let mut hex = String::new();
        for (bytes, what) in [
            (catalog(9), "unsupported catalog version: 9"),
            (
                {
                    let mut c = catalog(5);
                    c[0] = b'X';
                    c
                },
                "bad catalog magic",
            ),
            (
                {
                    let mut c = catalog(5);
                    c[1000] ^= 1;
                    c
                },
                "catalog CRC32 mismatch",
            ),
        ] {
            let path = dir.write("catalog.bin", &bytes);
            let found = verify_artifact(&path, &expected("catalog.bin", &bytes, &mut hex), &Content::Catalog).unwrap();
            assert_eq!(found.len(), 1, "{found:?}");
            assert!(found[0].message.ends_with(what), "{}", found[0].message);
        }
    }

    #[test]
    fn delta_records_are_matched_and_hashes_checked() {
        let dir = TempDir::new();
        let src = dir.write("src.heap", &pages(300, |i| if i % 50 == 0 { 80 } else { 10 }));
        let base_map = crate::core::delta::tests::map_of(&pages(300, |_| 10));
        let base = crate::core::delta::Base { lsn: 10, map: crate::core::delta::BaseMap::Computed(&base_map) };
        let spec = write_delta(&src, &dir.path("d"), base, &dir.path("m")).unwrap().delta.unwrap();
        let exp =
            Expected { name: "T.heap.delta", len: spec.delta_len, blake3_hex: &spec.blake3_hex, artifact: "increment" };
        let content = Content::Delta { spec: spec.clone(), max_lsn: 80 };
        assert_eq!(verify_artifact(&dir.path("d"), &exp, &content).unwrap(), vec![]);

        let shifted = Content::Delta {
            spec: DeltaSpec { page_indices: vec![0, 51, 100, 150, 200, 250], ..spec.clone() },
            max_lsn: 80,
        };
        let found = verify_artifact(&dir.path("d"), &exp, &shifted).unwrap();
        assert_eq!(found[0].code, "ERR_BAD_DELTA");

        let missing = verify_artifact(&dir.path("gone"), &exp, &content).unwrap();
        assert_eq!(missing[0].code, "ERR_MISSING_FILE");
        let mut bytes = std::fs::read(dir.path("d")).unwrap();
        bytes[5000] ^= 1;
        dir.write("d", &bytes);
        let found = verify_artifact(&dir.path("d"), &exp, &content).unwrap();
        assert_eq!(found[0].message, "integrity check failed for T.heap.delta: blake3 mismatch (increment is corrupt)");
    }
}
