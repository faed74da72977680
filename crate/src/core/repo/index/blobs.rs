//! Where the index keeps its blobs: one array in memory sorted by id, as
//! always for a repository of up to `SPILL_ABOVE` blobs; above that, a table
//! on an anonymous temporary file (spill.rs), so memory does not grow with
//! the repository. Either way, when a blob is in two packs the location
//! added first wins.
use super::spill::{Limits, Sorter, Table};
use super::{Location, PackRecord};
use crate::core::error::{CoreError, CoreResult};
use crate::core::repo::keys::{BlobId, ID_LEN};

/// Blobs an index holds in memory (about 60 MiB); beyond, it spills.
pub const SPILL_ABOVE: usize = 1_000_000;

/// A location on disk: id, pack, offset, stored, raw, inner, block
/// lengths, kind, compressed; padded to a power of two (64 to a page).
const REC_LEN: usize = 64;

fn encode(id: &BlobId, l: &Location) -> [u8; REC_LEN] {
    let mut rec = [0u8; REC_LEN];
    rec[..ID_LEN].copy_from_slice(id);
    let words = [l.pack, l.offset, l.stored_len, l.raw_len, l.inner, l.block_len];
    for (i, w) in words.iter().enumerate() {
        rec[ID_LEN + 4 * i..ID_LEN + 4 * i + 4].copy_from_slice(&w.to_le_bytes());
    }
    rec[ID_LEN + 24] = l.kind;
    rec[ID_LEN + 25] = l.compressed as u8;
    rec
}

fn decode(rec: &[u8]) -> Location {
    let word = |i: usize| u32::from_le_bytes(rec[ID_LEN + 4 * i..ID_LEN + 4 * i + 4].try_into().expect("4 bytes"));
    Location {
        pack: word(0),
        offset: word(1),
        stored_len: word(2),
        raw_len: word(3),
        inner: word(4),
        block_len: word(5),
        kind: rec[ID_LEN + 24],
        compressed: rec[ID_LEN + 25] != 0,
    }
}

/// An error of the temporary files, coded by its errno as other I/O errors are (ENOSPC, …).
fn io_error(e: std::io::Error) -> CoreError {
    CoreError::io("keep the repository's index in a temporary file in", &std::env::temp_dir(), e)
}

/// The index's blobs.
pub enum Blobs {
    Memory(Vec<(BlobId, Location)>),
    /// The table read at load, and what this handle's writer added since
    /// (sorted, none of it in the table: one backup's packs).
    Spilled {
        table: Table,
        overlay: Vec<(BlobId, Location)>,
    },
}

impl Default for Blobs {
    fn default() -> Self {
        Blobs::Memory(Vec::new())
    }
}

/// Sorts and keeps the first of each id (the sort is stable).
fn sort_first_wins(blobs: &mut Vec<(BlobId, Location)>) {
    blobs.sort_by_key(|(id, _)| *id);
    blobs.dedup_by_key(|(id, _)| *id);
}

fn search(blobs: &[(BlobId, Location)], id: &BlobId) -> Option<Location> {
    blobs.binary_search_by(|(k, _)| k.cmp(id)).ok().map(|at| blobs[at].1)
}

impl Blobs {
    pub fn len(&self) -> usize {
        match self {
            Blobs::Memory(blobs) => blobs.len(),
            Blobs::Spilled { table, overlay } => table.len() as usize + overlay.len(),
        }
    }

    pub fn find(&self, id: &BlobId) -> Option<Location> {
        match self {
            Blobs::Memory(blobs) => search(blobs, id),
            Blobs::Spilled { table, overlay } => {
                // The table was written by this process a moment ago: failing to
                // read it back is like failing to allocate.
                let found = table.find(id, decode).expect("the index's temporary file reads back");
                found.or_else(|| search(overlay, id))
            }
        }
    }

    /// Adds the blobs of `packs` (numbered from `first`), which lose to those already held.
    pub fn extend(&mut self, packs: &[PackRecord], first: u32) {
        let added = packs
            .iter()
            .zip(first..)
            .flat_map(|(pack, number)| pack.entries.iter().map(move |e| (e.id, Location::of(number, e))));
        match self {
            Blobs::Memory(blobs) => {
                blobs.reserve_exact(packs.iter().map(|p| p.entries.len()).sum());
                blobs.extend(added);
                sort_first_wins(blobs);
                blobs.shrink_to_fit();
            }
            Blobs::Spilled { table, overlay } => {
                let known = |id: &BlobId| table.find(id, |_| ()).expect("the index's temporary file reads back");
                overlay.extend(added.filter(|(id, _)| known(id).is_none()));
                sort_first_wins(overlay);
            }
        }
    }

    /// The table, to break on purpose in tests.
    #[cfg(test)]
    pub fn table_mut(&mut self) -> Option<&mut Table> {
        match self {
            Blobs::Memory(_) => None,
            Blobs::Spilled { table, .. } => Some(table),
        }
    }
}

/// Collects locations in the order they are read: in memory up to
/// `spill_above` of them, then in a `Sorter`.
pub struct Builder {
    spill_above: usize,
    limits: Limits,
    memory: Vec<(BlobId, Location)>,
    sorter: Option<Sorter>,
}

impl Builder {
    pub fn new(spill_above: usize, limits: Limits) -> Builder {
        Builder { spill_above, limits, memory: Vec::new(), sorter: None }
    }

    pub fn push(&mut self, id: BlobId, at: Location) -> CoreResult<()> {
        if let Some(sorter) = &mut self.sorter {
            return sorter.push(&encode(&id, &at)).map_err(io_error);
        }
        self.memory.push((id, at));
        if self.memory.len() > self.spill_above {
            let mut sorter = Sorter::new(REC_LEN, ID_LEN, self.limits).map_err(io_error)?;
            for (id, at) in std::mem::take(&mut self.memory) {
                sorter.push(&encode(&id, &at)).map_err(io_error)?;
            }
            self.sorter = Some(sorter);
        }
        Ok(())
    }

    pub fn finish(self) -> CoreResult<Blobs> {
        match self.sorter {
            Some(sorter) => Ok(Blobs::Spilled { table: sorter.finish().map_err(io_error)?, overlay: Vec::new() }),
            None => {
                let mut blobs = self.memory;
                sort_first_wins(&mut blobs);
                blobs.shrink_to_fit();
                Ok(Blobs::Memory(blobs))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_location_survives_its_record() {
        let l = Location {
            pack: 7,
            offset: u32::MAX,
            stored_len: 3,
            raw_len: 4,
            inner: 5,
            block_len: 6,
            kind: 1,
            compressed: true,
        };
        let back = decode(&encode(&[9; ID_LEN], &l));
        assert_eq!(format!("{back:?}"), format!("{l:?}"));
    }
}
