//! The index spilled to a temporary file answers exactly what the index in
//! memory answers; and the comparison is shown to see a difference.
use super::spill::{Limits, Sorter, PAGE};
use super::{encode, Index, PackRecord, INDEX_PREFIX};
use crate::core::repo::damage::{self, Damage, DAMAGE_PREFIX};
use crate::core::repo::keys::{BlobId, Keys};
use crate::core::repo::pack::Entry;
use crate::core::repo::storage::{LocalDir, Storage};
use crate::core::test_support::TempDir;
use std::collections::BTreeMap;

/// Tiny buffers and sorts, so that a few thousand blobs take every path:
/// many runs a bucket, and buckets partitioned again by their next byte.
const TINY: Limits = Limits { buffer: 256, sort: 2048, fence: 1 << 20 };
/// As `TINY`, with a fence of 5 entries: each covers many pages.
const SPARSE: Limits = Limits { fence: 5, ..TINY };

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e3779b97f4a7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
        z ^ (z >> 31)
    }

    fn id(&mut self) -> BlobId {
        let mut id = [0u8; 32];
        id.chunks_exact_mut(8).for_each(|c| c.copy_from_slice(&self.next().to_le_bytes()));
        id
    }
}

fn entry(id: BlobId, n: u32) -> Entry {
    if n.is_multiple_of(3) {
        Entry {
            id,
            kind: 0,
            compressed: true,
            offset: n,
            stored_len: 100,
            raw_len: 10 + n % 1000,
            inner: 4,
            block_len: 9000,
        }
    } else {
        Entry::single(id, (n % 2) as u8, n.is_multiple_of(5), n, 50 + n % 7, 70 + n)
    }
}

/// A local repository directory in `dir`.
fn local(dir: &TempDir) -> LocalDir {
    std::fs::create_dir(dir.path("repo")).unwrap();
    LocalDir::new(dir.path("repo"))
}

fn put(storage: &LocalDir, keys: &Keys, key: &str, plain: &[u8]) {
    storage.put_new(key, &keys.seal(plain, key.as_bytes())).unwrap();
}

/// A repository's index objects: 40 objects of 3 packs, 4,000 distinct ids,
/// a fifth of them listed again in a later pack (some within one object),
/// ids sharing their first 8 bytes; a damage record (some ids lose their
/// first copy, some every copy); one object that does not open.
struct Fixture {
    _dir: TempDir,
    storage: LocalDir,
    keys: Keys,
    ids: Vec<BlobId>,
    absent: Vec<BlobId>,
    /// Ids listed in two packs at least.
    repeated: Vec<BlobId>,
}

fn fixture() -> Fixture {
    let dir = TempDir::new();
    let storage = local(&dir);
    let keys = Keys::plain([7; 32]);
    let mut rng = Rng(1);
    let mut ids: Vec<BlobId> = (0..4000).map(|_| rng.id()).collect();
    // Ids equal in their first 8 bytes: the fence cannot tell them apart.
    for i in 0..300 {
        let head: [u8; 8] = ids[i * 3][..8].try_into().unwrap();
        ids[i * 3 + 1][..8].copy_from_slice(&head);
        ids[i * 3 + 2][..8].copy_from_slice(&head);
    }
    let absent: Vec<BlobId> = (0..2000).map(|_| rng.id()).chain(ids.iter().take(100).map(bump)).collect();
    let mut n = 0u32;
    let mut pack = 0;
    let mut repeated = Vec::new();
    let mut damage = Damage::new();
    for object in 0..40 {
        let mut packs = Vec::new();
        for _ in 0..3 {
            let key = format!("data/{pack:064x}");
            pack += 1;
            let mut entries = Vec::new();
            for _ in 0..40 {
                let id = ids[n as usize % ids.len()];
                if n as usize >= ids.len() {
                    repeated.push(id);
                }
                entries.push(entry(id, n));
                n += 1;
                if n.is_multiple_of(5) {
                    // Again at once, in another pack of this object or the next.
                    let again = ids[(n as usize * 7) % ids.len()];
                    entries.push(entry(again, n + 1_000_000));
                }
            }
            if object % 4 == 1 {
                let bad = damage.entry(key.clone()).or_default();
                entries.iter().step_by(6).for_each(|e| {
                    bad.insert(e.id);
                });
            }
            packs.push(PackRecord { key, entries });
        }
        // 40 × 120 entries: every id once, then 800 of them again (and some in between).
        put(&storage, &keys, &format!("{INDEX_PREFIX}{object:064x}"), &encode(&packs));
    }
    put(&storage, &keys, &format!("{DAMAGE_PREFIX}{:064x}", 1), &damage::encode(&damage));
    storage.put_new(&format!("{INDEX_PREFIX}{:064x}", 99), b"not sealed").unwrap();
    Fixture { _dir: dir, storage, keys, ids, absent, repeated }
}

/// An id one past `id` (absent, and as close to a present one as can be).
fn bump(id: &BlobId) -> BlobId {
    let mut out = *id;
    for b in out.iter_mut().rev() {
        *b = b.wrapping_add(1);
        if *b != 0 {
            break;
        }
    }
    out
}

fn load(f: &Fixture, spill_above: usize) -> Index {
    Index::load_with(&f.storage, &f.keys, spill_above, TINY).unwrap()
}

fn load_sparse(f: &Fixture) -> Index {
    Index::load_with(&f.storage, &f.keys, 1000, SPARSE).unwrap()
}

/// Ids on which two indexes answer differently (location, pack, lost).
fn differences(a: &Index, b: &Index, ids: &[BlobId]) -> usize {
    let answer = |i: &Index, id: &BlobId| (i.get(id).map(|(p, e)| (p.to_string(), e)), i.is_lost(id), i.contains(id));
    ids.iter().filter(|id| answer(a, id) != answer(b, id)).count()
}

fn every_id(f: &Fixture) -> Vec<BlobId> {
    f.ids.iter().chain(&f.absent).copied().collect()
}

#[test]
fn the_spilled_index_answers_as_the_one_in_memory() {
    let f = fixture();
    let memory = load(&f, usize::MAX);
    let spilled = load(&f, 1000);
    assert!(!memory.is_spilled() && spilled.is_spilled());
    assert_eq!(spilled.packs, memory.packs);
    assert_eq!(spilled.len(), memory.len());
    assert_eq!(spilled.damaged.len(), 1);
    assert_eq!(memory.damaged.len(), 1);
    assert_eq!(spilled.lost, memory.lost);
    assert!(!memory.lost.is_empty(), "some ids have every copy damaged");
    assert!(memory.len() > 3000 && memory.len() < f.ids.len());
    assert_eq!(differences(&memory, &spilled, &every_id(&f)), 0);
    assert!(f.absent.iter().all(|id| !spilled.contains(id)));
    let mut sparse = load_sparse(&f);
    assert_eq!(differences(&memory, &sparse, &every_id(&f)), 0);
    assert!(sparse.blobs_mut().table_mut().expect("spilled").fence_mut().len() <= 5);
}

#[test]
fn added_packs_lose_to_what_was_loaded_in_both() {
    let f = fixture();
    let mut memory = load(&f, usize::MAX);
    let mut spilled = load(&f, 1000);
    let mut rng = Rng(2);
    let new: Vec<BlobId> = (0..500).map(|_| rng.id()).collect();
    // New ids, twice (the first listed wins), and ids already known (which keep their place).
    let listed: Vec<BlobId> = new.iter().chain(&new).chain(f.ids.iter().step_by(9)).copied().collect();
    let packs: Vec<PackRecord> = listed
        .chunks(300)
        .enumerate()
        .map(|(i, ids)| PackRecord {
            key: format!("data/new{i}"),
            entries: ids.iter().enumerate().map(|(j, id)| entry(*id, 5_000_000 + (i * 300 + j) as u32)).collect(),
        })
        .collect();
    let before = memory.get(&f.ids[0]).map(|(p, e)| (p.to_string(), e));
    for index in [&mut memory, &mut spilled] {
        index.extend(&packs[..2]);
        index.extend(&packs[2..]);
    }
    assert_eq!(spilled.packs, memory.packs);
    assert_eq!(spilled.len(), memory.len());
    let all: Vec<BlobId> = every_id(&f).into_iter().chain(new.iter().copied()).collect();
    assert_eq!(differences(&memory, &spilled, &all), 0);
    assert!(new.iter().all(|id| spilled.get(id).unwrap().0.starts_with("data/new")));
    assert_eq!(spilled.get(&f.ids[0]).map(|(p, e)| (p.to_string(), e)), before);
}

/// The comparison is not blind: an index whose fence is wrong answers
/// differently, and so does one that lets the last location read win.
#[test]
fn the_comparison_sees_a_broken_fence_and_a_lost_order() {
    let f = fixture();
    let memory = load(&f, usize::MAX);
    let mut broken = load(&f, 1000);
    let fence = broken.blobs_mut().table_mut().expect("spilled").fence_mut();
    assert!(fence.len() > 10);
    fence.rotate_left(1); // each page now found under its neighbour's prefix
    assert!(differences(&memory, &broken, &f.ids) > f.ids.len() / 2);

    // Last read wins: the same objects and damage, each object's packs and entries read backwards.
    let dir = TempDir::new();
    let storage = local(&dir);
    let objects = f.storage.list(INDEX_PREFIX).unwrap();
    for (i, object) in objects.iter().enumerate() {
        let plain = f.keys.open(&f.storage.get(&object.key).unwrap(), object.key.as_bytes(), "").ok();
        let Some(mut packs) = plain.and_then(|p| super::decode(&p)) else { continue };
        packs.iter_mut().for_each(|p| p.entries.reverse());
        packs.reverse();
        put(&storage, &f.keys, &format!("{INDEX_PREFIX}{:064x}", 1000 - i), &encode(&packs));
    }
    for record in f.storage.list(DAMAGE_PREFIX).unwrap() {
        storage.put_new(&record.key, &f.storage.get(&record.key).unwrap()).unwrap();
    }
    let reversed = Index::load_with(&storage, &f.keys, 1000, TINY).unwrap();
    let repeated: Vec<BlobId> = f.repeated.clone();
    assert!(repeated.len() > 500);
    assert!(differences(&memory, &reversed, &repeated) > repeated.len() / 2);
}

/// Records first pushed win, keys equal in their first 8 bytes across page
/// boundaries are found, and a key pushed very often stays one record.
#[test]
fn a_table_keeps_the_first_record_of_each_key() {
    let mut rng = Rng(3);
    let mut reference: BTreeMap<[u8; 8], [u8; 32]> = BTreeMap::new(); // key -> record
    let mut sorter = Sorter::new(32, 8, TINY).unwrap();
    let mut push = |key: [u8; 8], n: u64, reference: &mut BTreeMap<[u8; 8], [u8; 32]>| {
        let mut rec = [0u8; 32];
        rec[..8].copy_from_slice(&key);
        rec[8..16].copy_from_slice(&n.to_le_bytes());
        reference.entry(key).or_insert(rec);
        sorter.push(&rec).unwrap();
    };
    let pool: Vec<[u8; 8]> = (0..300).map(|_| rng.next().to_be_bytes()).collect();
    for n in 0..20_000u64 {
        let key = match n % 4 {
            0 => [0xab; 8], // one key, 5,000 times: partitioned down to its last byte
            1 => (0xab00_0000_0000_0000 | (n % 700)).to_be_bytes(), // 7 times each, deep buckets
            2 => pool[(n / 4 % 300) as usize], // 16 times each, in buckets sorted in memory
            _ => rng.next().to_be_bytes(),
        };
        push(key, n, &mut reference);
    }
    let table = sorter.finish().unwrap();
    assert_eq!(table.len(), reference.len() as u64);
    assert!(table.len() as usize * 32 > 4 * PAGE);
    for (key, rec) in &reference {
        assert_eq!(table.find(key, |r| r.to_vec()).unwrap().as_deref(), Some(&rec[..]));
        let mut other = *key;
        other[7] ^= 0x80;
        if !reference.contains_key(&other) {
            assert_eq!(table.find(&other, |_| ()).unwrap(), None);
        }
    }
}

/// Equal 8-byte prefixes over several pages: every key still found.
#[test]
fn keys_sharing_a_prefix_over_pages_are_found() {
    for limits in [Limits::default(), SPARSE] {
        keys_sharing_a_prefix_found_with(limits);
    }
}

fn keys_sharing_a_prefix_found_with(limits: Limits) {
    let mut sorter = Sorter::new(64, 32, limits).unwrap();
    let mut keys = Vec::new();
    for n in 0..1000u32 {
        let mut rec = [0u8; 64];
        rec[..8].copy_from_slice(&if n < 500 { [5; 8] } else { [6; 8] });
        rec[28..32].copy_from_slice(&(n * 7919 % 1000).to_be_bytes());
        keys.push(rec);
        sorter.push(&rec).unwrap();
    }
    let table = sorter.finish().unwrap();
    assert_eq!(table.len(), 1000);
    for rec in &keys {
        assert!(table.find(&rec[..32], |r| r == &rec[..]).unwrap().unwrap());
    }
    let mut absent = keys[0];
    absent[27] = 1;
    assert_eq!(table.find(&absent[..32], |_| ()).unwrap(), None);
}

/// Prune and repair write index objects of at most `OBJECT_ENTRIES` entries, packs whole.
#[test]
fn kept_packs_go_in_small_objects() {
    use super::{objects_of, OBJECT_ENTRIES};
    let pack = |n: usize| PackRecord { key: format!("data/{n}"), entries: vec![entry([n as u8; 32], 1); n] };
    let packs: Vec<PackRecord> = [60_000, 40_000, 1, OBJECT_ENTRIES + 5, 10, 20].into_iter().map(pack).collect();
    let sizes: Vec<Vec<usize>> =
        objects_of(&packs).iter().map(|group| group.iter().map(|p| p.entries.len()).collect()).collect();
    assert_eq!(sizes, vec![vec![60_000, 40_000], vec![1], vec![OBJECT_ENTRIES + 5], vec![10, 20]]);
    assert!(objects_of(&[]).is_empty());
}
