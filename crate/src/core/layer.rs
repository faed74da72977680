//! One element of a file's history in a directory chain (a whole copy or a
//! page delta): what restore applies and verify checks.
use super::delta::DeltaSpec;
use super::digest::Expected;
use super::page::PAGE_SIZE;
use std::path::PathBuf;

/// How a chain element carries a file.
#[derive(Debug, Clone)]
pub enum LayerKind {
    Whole,
    Pages(DeltaSpec),
}

/// One element of a file's history: a whole copy or a delta, with what its
/// manifest promises (`name` is the manifest's name for the copy or delta).
#[derive(Debug, Clone)]
pub struct Layer {
    pub path: PathBuf,
    pub name: String,
    pub len: u64,
    pub blake3_hex: String,
    /// "backup" or "increment", for messages.
    pub artifact: String,
    pub kind: LayerKind,
}

impl Layer {
    pub fn expected(&self) -> Expected<'_> {
        Expected { name: &self.name, len: self.len, blake3_hex: &self.blake3_hex, artifact: &self.artifact }
    }
}

/// The file's length after `layers`: the newest whole copy's, extended to
/// the largest `total_pages` of later deltas.
pub fn final_len(layers: &[Layer]) -> u64 {
    let base_at = layers.iter().rposition(|l| matches!(l.kind, LayerKind::Whole));
    layers[base_at.unwrap_or(0)..]
        .iter()
        .map(|l| match &l.kind {
            LayerKind::Pages(spec) => spec.total_pages as u64 * PAGE_SIZE as u64,
            LayerKind::Whole => l.len,
        })
        .max()
        .unwrap_or(0)
}
