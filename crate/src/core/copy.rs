//! Copying whole files while hashing them: one read of the source, one write.
use super::digest::{hash_chunk, FileDigest};
use super::error::CoreResult;
use super::fsio::{self, Sink};
use super::page::{max_page_lsn, PAGE_SIZE};
use super::pagemap::{hash_pages, MapWriter};
use std::path::Path;

/// What a backup copy learned about the file it copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyOutcome {
    pub len: u64,
    pub blake3_hex: String,
    /// Highest page LSN when the file was copied as pages, else 0.
    pub max_page_lsn: u64,
    /// The content map written for a heap copied as pages.
    pub map: Option<FileDigest>,
}

/// Backup side: copies `src` to the new file `dst` (0600), returning its length
/// and BLAKE3 and, for a page-aligned heap (`paged`), its highest page LSN and
/// (given `map`) its content map, written at `map`.
pub fn copy_hashed(src: &Path, dst: &Path, paged: bool, map: Option<&Path>) -> CoreResult<CopyOutcome> {
    let mut out = Sink::new(fsio::create_new(dst)?, dst);
    let mut hasher = blake3::Hasher::new();
    let mut max_lsn = 0u64;
    let map_writer = if paged { map.map(MapWriter::create).transpose()? } else { None };
    let (mut hashes, mut pages) = (Vec::new(), 0u64);
    let len = fsio::for_each_chunk(src, |chunk| {
        super::cancel::advance(chunk.len() as u64);
        hash_chunk(&mut hasher, chunk);
        if paged && chunk.len() % PAGE_SIZE == 0 {
            max_lsn = max_lsn.max(max_page_lsn(chunk));
            if let Some(writer) = &map_writer {
                hashes.clear();
                hash_pages(chunk, &mut hashes);
                writer.put(pages, &hashes)?;
                pages += hashes.len() as u64;
            }
        }
        out.append(chunk)
    })?;
    out.finish()?;
    let scanned_as_pages = paged && len % PAGE_SIZE as u64 == 0;
    let map = match map_writer {
        Some(writer) if scanned_as_pages => Some(writer.finish(pages)?),
        Some(_) => {
            // Not a page-aligned heap after all: it is backed up whole, without a map.
            let _ = std::fs::remove_file(map.expect("a writer has a path"));
            None
        }
        None => None,
    };
    Ok(CopyOutcome {
        len,
        blake3_hex: hasher.finalize().to_hex().to_string(),
        max_page_lsn: if scanned_as_pages { max_lsn } else { 0 },
        map,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::test_support::{pages, read, TempDir};

    #[test]
    fn copies_bytes_hash_and_max_lsn_of_a_heap() {
        let dir = TempDir::new();
        let heap = pages(700, |i| if i == 333 { 900 } else { i as u64 });
        let src = dir.write("T.heap", &heap);
        let out = copy_hashed(&src, &dir.path("copy"), true, Some(&dir.path("map"))).unwrap();
        assert_eq!(read(&dir.path("copy")), heap);
        assert_eq!(out.len, heap.len() as u64);
        assert_eq!(out.blake3_hex, blake3::hash(&heap).to_hex().to_string());
        assert_eq!(out.max_page_lsn, 900);
        assert_eq!(out.map.unwrap().len, crate::core::pagemap::map_len(700));
    }

    #[test]
    fn whole_files_report_no_lsn_and_refuse_to_overwrite() {
        let dir = TempDir::new();
        let src = dir.write("catalog.bin", b"BCAT....");
        let out = copy_hashed(&src, &dir.path("copy"), false, None).unwrap();
        assert_eq!(out.max_page_lsn, 0);
        let err = copy_hashed(&src, &dir.path("copy"), false, None).unwrap_err();
        assert_eq!(err.code, "EEXIST");
    }

    #[test]
    fn refuses_to_read_through_a_symlink() {
        let dir = TempDir::new();
        let target = dir.write("real", b"x");
        std::os::unix::fs::symlink(&target, dir.path("link")).unwrap();
        let err = copy_hashed(&dir.path("link"), &dir.path("copy"), false, None).unwrap_err();
        assert_eq!(err.code, "ERR_UNSAFE_PATH");
    }
}
