//! Index objects (`index/<name>`): which pack holds each blob, so a backup
//! finds unchanged content and a restore finds its chunks without reading
//! pack headers. Each backup adds one index for the packs it wrote; prune
//! replaces them all by one. Sealed with the object's key as context.
use super::damage;
use super::keys::{BlobId, Keys};
use super::pack::{decode_entries, needs_v3, Entry, ENTRY3_LEN, ENTRY_LEN};
use super::packlist::{decode_packs, encode_pack_head};
use super::storage::Storage;
use crate::core::error::{CoreError, CoreResult};

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
    let entry_len = if raw.starts_with(MAGIC3) { ENTRY3_LEN } else { ENTRY_LEN };
    let magic = if entry_len == ENTRY3_LEN { MAGIC3 } else { MAGIC };
    decode_packs(raw, magic, entry_len)?
        .into_iter()
        .map(|(key, items)| {
            let entries = decode_entries(items, entry_len, u32::MAX as u64)?;
            key.starts_with(DATA_PREFIX).then_some(PackRecord { key, entries })
        })
        .collect()
}

fn read_one(storage: &dyn Storage, keys: &Keys, key: &str) -> CoreResult<Vec<PackRecord>> {
    let sealed = storage.get(key)?;
    let what = format!("index {key}");
    let plain = keys.open(&sealed, key.as_bytes(), &what)?;
    decode(&plain).ok_or_else(|| CoreError::new("ERR_INTEGRITY", format!("{what} is malformed")))
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

/// Every indexed blob, as one array sorted by id (60 bytes a blob, no hash
/// table to double: a repository of 4 GiB needs about 6 MiB). When a blob is
/// in two packs, the location read first wins.
#[derive(Default)]
pub struct Index {
    pub packs: Vec<String>,
    blobs: Vec<(BlobId, Location)>,
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
        let mut index = Index::default();
        let mut records = Vec::new();
        for (_, packs) in read_all(storage, keys)? {
            match packs {
                Ok(packs) => records.extend(packs),
                Err(e) => index.damaged.push(e),
            }
        }
        let (_, damage) = damage::read_all(storage, keys)?;
        let mut dropped = Vec::new();
        for record in records.iter_mut().filter(|r| damage.contains_key(&r.key)) {
            record.entries.retain(|e| {
                let bad = damage::is_damaged(&damage, &record.key, &e.id);
                if bad {
                    dropped.push(e.id);
                }
                !bad
            });
        }
        index.extend(&records);
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
        self.blobs.reserve_exact(packs.iter().map(|p| p.entries.len()).sum());
        for pack in packs {
            let number = self.packs.len() as u32;
            self.packs.push(pack.key.clone());
            self.blobs.extend(pack.entries.iter().map(|e| (e.id, Location::of(number, e))));
        }
        self.blobs.sort_by_key(|(id, _)| *id); // stable: the first location stays first
        self.blobs.dedup_by_key(|(id, _)| *id);
        self.blobs.shrink_to_fit();
    }

    pub fn len(&self) -> usize {
        self.blobs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }

    pub fn contains(&self, id: &BlobId) -> bool {
        self.find(id).is_some()
    }

    fn find(&self, id: &BlobId) -> Option<&Location> {
        self.blobs.binary_search_by(|(k, _)| k.cmp(id)).ok().map(|at| &self.blobs[at].1)
    }

    pub fn get(&self, id: &BlobId) -> Option<(&str, Entry)> {
        self.find(id).map(|l| (self.packs[l.pack as usize].as_str(), l.entry(id)))
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
