//! Index objects (`index/<name>`): which pack holds each blob, so a backup
//! finds unchanged content and a restore finds its chunks without reading
//! pack headers. Each backup adds one index for the packs it wrote; prune
//! replaces them all by one. Sealed with the object's key as context.
mod blobs;
#[cfg(test)]
mod memory_tests;
pub mod spill;
#[cfg(test)]
mod tests;

use super::damage;
use super::keys::{BlobId, Keys};
use super::pack::{decode_entries, needs_v3, Entry, ENTRY3_LEN, ENTRY_LEN};
use super::packlist::{decode_packs, encode_pack_head};
use super::storage::Storage;
use crate::core::error::{CoreError, CoreResult};
pub use blobs::SPILL_ABOVE;
use blobs::{Blobs, Builder};
pub use spill::Limits;

const MAGIC: &[u8; 8] = b"PWBIDX2\0";
/// An index with format-3 entries (some blobs in compression blocks).
const MAGIC3: &[u8; 8] = b"PWBIDX3\0";
pub const INDEX_PREFIX: &str = "index/";
pub const DATA_PREFIX: &str = "data/";

/// A pack and the blobs an index lists in it.
#[derive(Debug, Clone)]
pub struct PackRecord {
    pub key: String,
    pub entries: Vec<Entry>,
}

/// An index of `packs`: format-2 entries unless some blob is in a block.
pub fn encode(packs: &[PackRecord]) -> Vec<u8> {
    let v3 = needs_v3(packs.iter().flat_map(|p| &p.entries));
    let mut out = if v3 { MAGIC3 } else { MAGIC }.to_vec();
    out.extend_from_slice(&(packs.len() as u32).to_le_bytes());
    for pack in packs {
        encode_pack_head(&mut out, &pack.key, pack.entries.len());
        pack.entries.iter().for_each(|e| e.encode(&mut out, v3));
    }
    out
}

pub fn decode(raw: &[u8]) -> Option<Vec<PackRecord>> {
    let mut packs = Vec::new();
    visit(raw, |key, entries| packs.push(PackRecord { key: key.to_string(), entries: entries.collect() }))?;
    Some(packs)
}

/// Checks a whole index object, then hands `f` each pack's key and entries
/// in order (without collecting them); None, and no call, when it is malformed.
fn visit(raw: &[u8], mut f: impl FnMut(&str, &mut dyn Iterator<Item = Entry>)) -> Option<()> {
    let entry_len = if raw.starts_with(MAGIC3) { ENTRY3_LEN } else { ENTRY_LEN };
    let magic = if entry_len == ENTRY3_LEN { MAGIC3 } else { MAGIC };
    let packs = decode_packs(raw, magic, entry_len)?;
    // A pack's entries at a time: the check holds one pack's, not the object's.
    let valid = |items: &[u8]| decode_entries(items, entry_len, u32::MAX as u64).is_some();
    if !packs.iter().all(|(key, items)| key.starts_with(DATA_PREFIX) && valid(items)) {
        return None;
    }
    for (key, items) in &packs {
        f(key, &mut items.chunks_exact(entry_len).map(|e| Entry::decode(e).expect("checked above")));
    }
    Some(())
}

/// An index object opened: its plain bytes.
fn open_one(storage: &dyn Storage, keys: &Keys, key: &str) -> CoreResult<Vec<u8>> {
    let sealed = storage.get(key)?;
    keys.open(&sealed, key.as_bytes(), &format!("index {key}"))
}

fn malformed(key: &str) -> CoreError {
    CoreError::new("ERR_INTEGRITY", format!("index {key} is malformed"))
}

fn read_one(storage: &dyn Storage, keys: &Keys, key: &str) -> CoreResult<Vec<PackRecord>> {
    decode(&open_one(storage, keys, key)?).ok_or_else(|| malformed(key))
}

/// Entries an index object that prune or repair writes holds at most
/// (about 5 MiB): an object is opened whole at every load, so no object may
/// grow with the repository.
pub const OBJECT_ENTRIES: usize = 100_000;

/// `packs` in groups of at most `OBJECT_ENTRIES` entries (a pack is never
/// split: one larger than that is a group alone), in order.
pub fn objects_of(packs: &[PackRecord]) -> Vec<&[PackRecord]> {
    let mut groups = Vec::new();
    let (mut start, mut entries) = (0, 0);
    for (at, pack) in packs.iter().enumerate() {
        if at > start && entries + pack.entries.len() > OBJECT_ENTRIES {
            groups.push(&packs[start..at]);
            (start, entries) = (at, 0);
        }
        entries += pack.entries.len();
    }
    if start < packs.len() {
        groups.push(&packs[start..]);
    }
    groups
}

/// Reads every index object: `(index key, its packs or why it cannot be read)`.
pub fn read_all(storage: &dyn Storage, keys: &Keys) -> CoreResult<Vec<(String, CoreResult<Vec<PackRecord>>)>> {
    Ok(storage
        .list(INDEX_PREFIX)?
        .into_iter()
        .map(|o| {
            let packs = read_one(storage, keys, &o.key);
            (o.key, packs)
        })
        .collect())
}

/// Where a blob is (its id is the key beside it).
#[derive(Debug, Clone, Copy)]
pub struct Location {
    pub pack: u32,
    offset: u32,
    stored_len: u32,
    raw_len: u32,
    inner: u32,
    block_len: u32,
    kind: u8,
    compressed: bool,
}

impl Location {
    fn of(pack: u32, e: &Entry) -> Location {
        Location {
            pack,
            offset: e.offset,
            stored_len: e.stored_len,
            raw_len: e.raw_len,
            inner: e.inner,
            block_len: e.block_len,
            kind: e.kind,
            compressed: e.compressed,
        }
    }

    pub fn entry(&self, id: &BlobId) -> Entry {
        Entry {
            id: *id,
            kind: self.kind,
            compressed: self.compressed,
            offset: self.offset,
            stored_len: self.stored_len,
            raw_len: self.raw_len,
            inner: self.inner,
            block_len: self.block_len,
        }
    }
}

/// Every indexed blob, sorted by id: in memory as one array (60 bytes a
/// blob, no hash table to double: a repository of 4 GiB needs about 6 MiB),
/// or above `SPILL_ABOVE` blobs as a table on a temporary file (blobs.rs).
/// When a blob is in two packs, the location read first wins.
#[derive(Default)]
pub struct Index {
    pub packs: Vec<String>,
    blobs: Blobs,
    /// Index objects that could not be read: readers go on without them (the
    /// backups they serve fail by name); nothing may be deleted while any is.
    pub damaged: Vec<CoreError>,
    /// Blobs left out because every location listed is recorded as damaged
    /// (sorted), so that a restore can say so rather than "missing".
    lost: Vec<BlobId>,
}

impl Index {
    /// Every index object, less the locations damage records name: a damaged
    /// copy never wins over a good one, and a chunk with no good copy is absent.
    pub fn load(storage: &dyn Storage, keys: &Keys) -> CoreResult<Index> {
        Index::load_with(storage, keys, SPILL_ABOVE, Limits::default())
    }

    /// As `load`, held in memory up to `spill_above` blobs, and beyond
    /// spilled within `limits`. Index objects are read one at a time, their
    /// entries passed on as they are decoded.
    pub fn load_with(storage: &dyn Storage, keys: &Keys, spill_above: usize, limits: Limits) -> CoreResult<Index> {
        let objects = storage.list(INDEX_PREFIX)?;
        let (_, damage) = damage::read_all(storage, keys)?;
        let mut index = Index::default();
        let mut blobs = Builder::new(spill_above, limits);
        let mut dropped = Vec::new();
        let mut failed = None;
        for object in objects {
            let plain = match open_one(storage, keys, &object.key) {
                Ok(plain) => plain,
                Err(e) => {
                    index.damaged.push(e);
                    continue;
                }
            };
            let visited = visit(&plain, |key, entries| {
                let number = index.packs.len() as u32;
                index.packs.push(key.to_string());
                let bad = damage.get(key);
                for e in entries {
                    if bad.is_some_and(|ids| ids.contains(&e.id)) {
                        dropped.push(e.id);
                    } else if let Err(err) = blobs.push(e.id, Location::of(number, &e)) {
                        failed.get_or_insert(err);
                    }
                }
            });
            if let Some(err) = failed.take() {
                return Err(err);
            }
            if visited.is_none() {
                index.damaged.push(malformed(&object.key));
            }
        }
        index.blobs = blobs.finish()?;
        dropped.retain(|id| !index.contains(id));
        dropped.sort();
        dropped.dedup();
        index.lost = dropped;
        Ok(index)
    }

    /// Whether `id` is absent because its only copies are damaged.
    pub fn is_lost(&self, id: &BlobId) -> bool {
        !self.contains(id) && self.lost.binary_search(id).is_ok()
    }

    /// Adds packs (their blobs lose to locations already known).
    pub fn extend(&mut self, packs: &[PackRecord]) {
        let first = self.packs.len() as u32;
        self.packs.extend(packs.iter().map(|p| p.key.clone()));
        self.blobs.extend(packs, first);
    }

    pub fn len(&self) -> usize {
        self.blobs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether its blobs are on a temporary file.
    pub fn is_spilled(&self) -> bool {
        matches!(self.blobs, Blobs::Spilled { .. })
    }

    pub fn contains(&self, id: &BlobId) -> bool {
        self.blobs.find(id).is_some()
    }

    pub fn get(&self, id: &BlobId) -> Option<(&str, Entry)> {
        self.blobs.find(id).map(|l| (self.packs[l.pack as usize].as_str(), l.entry(id)))
    }

    /// Its blobs, to break on purpose in tests.
    #[cfg(test)]
    pub(crate) fn blobs_mut(&mut self) -> &mut Blobs {
        &mut self.blobs
    }
}

impl Index {
    /// Fails when an index object is damaged: deleting anything then could
    /// delete a pack that only the damaged index lists.
    pub fn require_whole(&self) -> CoreResult<()> {
        match self.damaged.first() {
            None => Ok(()),
            Some(e) => Err(CoreError::new(
                e.code.as_str(),
                format!(
                    "{}; nothing is added to or removed from a repository with a damaged index (`powdb-backup repair --repo <repo>` rebuilds it from the packs)",
                    e.message
                ),
            )),
        }
    }
}
