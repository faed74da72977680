//! BLAKE3 digests of whole files and the integrity check against a manifest.
use super::error::{CoreError, CoreResult};
use super::fsio;
use std::path::Path;

/// Length and BLAKE3 (64 lowercase hex) of a file's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDigest {
    pub len: u64,
    pub blake3_hex: String,
}

/// What a manifest promises about one file of a backup or increment.
#[derive(Debug, Clone)]
pub struct Expected<'a> {
    /// Name as the manifest lists it (used in messages).
    pub name: &'a str,
    pub len: u64,
    pub blake3_hex: &'a str,
    /// "backup" or "increment": the reference's wording says which is corrupt.
    pub artifact: &'a str,
}

impl Expected<'_> {
    /// Checks an on-disk length before any byte is trusted.
    pub fn check_len(&self, actual: u64) -> CoreResult<()> {
        if actual == self.len {
            return Ok(());
        }
        Err(CoreError::new(
            "ERR_INTEGRITY",
            format!(
                "integrity check failed for {}: length {actual} but the manifest says {} ({} is corrupt)",
                self.name, self.len, self.artifact
            ),
        ))
    }

    /// Checks a computed hash against the manifest's.
    pub fn check_hash(&self, actual_hex: &str) -> CoreResult<()> {
        if actual_hex == self.blake3_hex {
            return Ok(());
        }
        Err(CoreError::new(
            "ERR_INTEGRITY",
            format!("integrity check failed for {}: blake3 mismatch ({} is corrupt)", self.name, self.artifact),
        ))
    }
}

/// Feeds one read chunk to BLAKE3, on all cores for a full chunk: a whole
/// 1 MiB chunk is large enough for BLAKE3's tree to split across threads.
pub fn hash_chunk(hasher: &mut blake3::Hasher, chunk: &[u8]) {
    if chunk.len() >= fsio::CHUNK {
        hasher.update_rayon(chunk);
    } else {
        hasher.update(chunk);
    }
}

/// Streams a file through BLAKE3.
pub fn hash_file(path: &Path) -> CoreResult<FileDigest> {
    let mut hasher = blake3::Hasher::new();
    let len = fsio::for_each_chunk_ahead(fsio::open_read(path)?, path, fsio::HASH_CHUNK, |chunk| {
        super::cancel::advance(chunk.len() as u64);
        hash_chunk(&mut hasher, chunk);
        Ok(())
    })?;
    Ok(FileDigest { len, blake3_hex: hasher.finalize().to_hex().to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::test_support::TempDir;

    #[test]
    fn hashes_match_blake3_of_the_bytes() {
        let dir = TempDir::new();
        let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let path = dir.write("f", &bytes);
        let digest = hash_file(&path).unwrap();
        assert_eq!(digest.len, bytes.len() as u64);
        assert_eq!(digest.blake3_hex, blake3::hash(&bytes).to_hex().to_string());
    }
}
