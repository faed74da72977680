//! Delta restore of one heap: bring an existing file to the state a chain
//! builds by rewriting only the pages that differ. The destination is read
//! and hashed page by page against the backup's content map; only differing
//! pages are read from the chain (the newest delta holding each, else the
//! whole copy), each checked against the map before it is written.
use super::delta::check_spec;
use super::error::{CoreError, CoreResult};
use super::fsio;
use super::heapdiff::{load, MapSource};
use super::page::{PAGE_SIZE, RECORD_SIZE};
use super::pagemap::{page_hash, PageHash, ZERO_PAGE};
use super::restore::{final_len, Layer, LayerKind};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

/// What a delta restore of one file compared and wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PatchOutcome {
    pub pages_compared: u64,
    pub pages_rewritten: u64,
    pub bytes_written: u64,
}

/// Reads page `index` of the newest layer that holds it (a zero page past the whole copy).
fn source_page(layers: &[Layer], index: u32, page: &mut [u8]) -> CoreResult<()> {
    for layer in layers.iter().rev() {
        match &layer.kind {
            LayerKind::Pages(spec) => {
                if let Ok(i) = spec.page_indices.binary_search(&index) {
                    let at = i as u64 * RECORD_SIZE as u64 + 4;
                    return read_at(&layer.path, at, page);
                }
            }
            LayerKind::Whole => {
                let at = index as u64 * PAGE_SIZE as u64;
                if at + PAGE_SIZE as u64 > layer.len {
                    page.fill(0);
                    return Ok(());
                }
                return read_at(&layer.path, at, page);
            }
        }
    }
    page.fill(0);
    Ok(())
}

fn read_at(path: &Path, at: u64, buf: &mut [u8]) -> CoreResult<()> {
    let file = fsio::open_read(path)?;
    file.read_exact_at(buf, at).map_err(|e| CoreError::io("read", path, e))
}

/// The pages of `dest` that differ from `map` (pages past its end compare with a zero page).
fn differing_pages(dest: &Path, map: &[PageHash]) -> CoreResult<(Vec<u32>, u64)> {
    let mut differing = Vec::new();
    let mut index = 0usize;
    let len = fsio::for_each_chunk(dest, |chunk| {
        for page in chunk.chunks(PAGE_SIZE) {
            if index < map.len() && (page.len() < PAGE_SIZE || page_hash(page) != map[index]) {
                differing.push(index as u32);
            }
            index += 1;
        }
        super::cancel::advance(chunk.len() as u64);
        Ok(())
    })?;
    let compared = index.min(map.len());
    differing.extend((compared..map.len()).filter(|&i| map[i] != *ZERO_PAGE).map(|i| i as u32));
    Ok((differing, len))
}

/// Brings the heap `dest` (created if absent) to the state `layers` build,
/// whose content map `map` gives (a stored map, or the layers themselves).
/// Only the pages that differ are written; the file is fsynced.
pub fn patch_heap(dest: &Path, layers: &[Layer], map: &MapSource) -> CoreResult<PatchOutcome> {
    for layer in layers {
        match &layer.kind {
            LayerKind::Pages(spec) => {
                check_spec(spec, &layer.name, &layer.path)?;
                layer.expected().check_len(fsio::listed_len(&layer.path, &layer.name, &layer.artifact)?)?;
            }
            LayerKind::Whole => {
                layer.expected().check_len(fsio::listed_len(&layer.path, &layer.name, &layer.artifact)?)?;
            }
        }
    }
    let hashes = load(map)?.hashes;
    let len = final_len(layers);
    if hashes.len() as u64 * PAGE_SIZE as u64 != len {
        return Err(CoreError::new(
            "ERR_INTEGRITY",
            format!(
                "integrity check failed for {}: its content map does not match its length (backup is corrupt)",
                dest.display()
            ),
        ));
    }
    if !dest.exists() {
        fsio::create_new(dest)?;
    }
    let (differing, dest_len) = differing_pages(dest, &hashes)?;
    let file: File = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(dest)
        .map_err(|e| CoreError::io("open", dest, e))?;
    if dest_len != len {
        file.set_len(len).map_err(|e| CoreError::io("resize", dest, e))?;
    }
    let mut page = vec![0u8; PAGE_SIZE];
    for &index in &differing {
        super::cancel::check()?;
        source_page(layers, index, &mut page)?;
        if page_hash(&page) != hashes[index as usize] {
            let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            return Err(CoreError::new(
                "ERR_INTEGRITY",
                format!("integrity check failed for {name}: page {index} differs from the backup's content map (backup is corrupt)"),
            ));
        }
        file.write_all_at(&page, index as u64 * PAGE_SIZE as u64).map_err(|e| CoreError::io("write", dest, e))?;
    }
    fsio::sync(&file, dest)?;
    Ok(PatchOutcome {
        pages_compared: (dest_len / PAGE_SIZE as u64).min(hashes.len() as u64),
        pages_rewritten: differing.len() as u64,
        bytes_written: differing.len() as u64 * PAGE_SIZE as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::delta::tests::map_of;
    use crate::core::test_support::{pages, read, whole_layer as whole, TempDir};

    #[test]
    fn only_differing_pages_are_written_and_the_result_equals_the_backup() {
        let dir = TempDir::new();
        let backup = pages(300, |i| 10 + i as u64);
        let layers = [whole(&dir, "full", &backup)];
        let map = MapSource::Layers(layers.to_vec());
        // A stale copy: 3 pages differ and it is 10 pages short.
        let mut stale = backup[..290 * PAGE_SIZE].to_vec();
        for p in [3usize, 100, 200] {
            stale[p * PAGE_SIZE + 50] ^= 0xff;
        }
        let dest = dir.write("T.heap", &stale);
        let out = patch_heap(&dest, &layers, &map).unwrap();
        assert_eq!(
            out,
            PatchOutcome { pages_compared: 290, pages_rewritten: 13, bytes_written: 13 * PAGE_SIZE as u64 }
        );
        assert!(read(&dest) == backup);
        // Longer than the backup: cut to its length, nothing else written.
        let mut longer = backup.clone();
        longer.extend(pages(5, |_| 99));
        dir.write("T.heap", &longer);
        assert_eq!(patch_heap(&dest, &layers, &map).unwrap().pages_rewritten, 0);
        assert!(read(&dest) == backup);
        assert_eq!(map_of(&read(&dest)), map_of(&backup));
        // A corrupt backup page is refused, not written.
        let mut bad_layers = layers.to_vec();
        let mut corrupt = backup.clone();
        corrupt[3 * PAGE_SIZE + 50] ^= 1;
        bad_layers[0].path = dir.write("corrupt", &corrupt);
        dir.write("T.heap", &stale);
        assert_eq!(patch_heap(&dest, &bad_layers, &map).unwrap_err().code, "ERR_INTEGRITY");
    }
}
