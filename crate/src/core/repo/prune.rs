//! Removing what no retained backup uses. The order makes every moment safe
//! to be killed at: (1) used blobs of sparse packs are copied into new packs,
//! (2) new indexes list every kept blob (as few as hold it in objects of at
//! most `OBJECT_ENTRIES`), (3) the old indexes go, (4) the unused and
//! repacked packs go. Killed before (2), the new packs are unindexed and the
//! next writer indexes them anew (this prune then drops them as unused or
//! duplicate); during or after (2), stale indexes only duplicate entries and
//! the next prune finishes the work.
use super::index::{self, read_all, PackRecord, INDEX_PREFIX};
use super::keys::new_name;
use super::keys::BlobId;
use super::lists::read_list;
use super::pack::Entry;
use super::repack::Repacker;
use super::Repo;
use crate::core::crashpoint;
use crate::core::error::{CoreError, CoreResult};
use std::collections::{HashMap, HashSet};

/// A pack is repacked when at least this share of its bytes is unused.
const REPACK_UNUSED_PERCENT: u64 = 30;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneStats {
    pub packs_removed: u64,
    pub packs_repacked: u64,
    pub packs_written: u64,
    pub blobs_removed: u64,
    /// Bytes of the objects removed less those written.
    pub bytes_freed: i64,
}

/// Every blob the backups made of `lists` use (the lists and their chunks).
fn used_blobs(repo: &Repo, lists: &[BlobId]) -> CoreResult<HashSet<BlobId>> {
    let mut used = HashSet::new();
    for list in lists {
        // A list no index holds (lost to damage, see repair.rs) names nothing that can be kept.
        if !repo.knows(list) {
            continue;
        }
        if used.insert(*list) {
            used.extend(read_list(repo, list)?.into_iter().map(|(id, _)| id));
        }
    }
    Ok(used)
}

/// Stored bytes of every blob each backup uses (its lists and their chunks,
/// shared ones included): what it holds in the repository, whatever it added
/// when it was taken (after a prune, often nothing of its own). Consecutive
/// backups of a source share most lists: those of the backup before are kept
/// (only those) and not read again, so `info` reads each list about once.
pub fn held_bytes(repo: &Repo, backups: &[Vec<BlobId>]) -> CoreResult<Vec<u64>> {
    let mut previous: std::collections::HashMap<BlobId, Vec<BlobId>> = Default::default();
    let mut held = Vec::with_capacity(backups.len());
    for lists in backups {
        let mut current = std::collections::HashMap::with_capacity(lists.len());
        let mut used = HashSet::new();
        for list in lists {
            // A list no index holds (lost to damage, see repair.rs) names nothing that is held.
            if !repo.knows(list) || current.contains_key(list) {
                continue;
            }
            let chunks = match previous.remove(list) {
                Some(chunks) => chunks,
                None => read_list(repo, list)?.into_iter().map(|(id, _)| id).collect(),
            };
            used.insert(*list);
            used.extend(chunks.iter().copied());
            current.insert(*list, chunks);
        }
        let index = repo.index();
        held.push(used.iter().filter_map(|id| index.get(id)).map(|(_, e)| e.stored_share()).sum());
        previous = current;
    }
    Ok(held)
}

/// What a prune would do: packs to keep (with their kept entries), remove whole, or repack.
struct Plan {
    kept: Vec<PackRecord>,
    doomed: Vec<String>,
    repack: Vec<PackRecord>,
    old_indexes: Vec<String>,
    sizes: std::collections::HashMap<String, u64>,
    stats: PruneStats,
}

fn plan(repo: &Repo, keep_lists: &[BlobId]) -> CoreResult<Plan> {
    let used = used_blobs(repo, keep_lists)?;
    let indexes = read_all(repo.storage.as_ref(), &repo.keys)?;
    let mut records = Vec::new();
    let mut old_indexes = Vec::new();
    for (key, packs) in indexes {
        records.extend(packs?);
        old_indexes.push(key);
    }
    // Locations recorded as damaged are not kept (as the index leaves them out): a good copy wins.
    let (_, damage) = super::damage::read_all(repo.storage.as_ref(), &repo.keys)?;
    for record in records.iter_mut().filter(|r| damage.contains_key(&r.key)) {
        record.entries.retain(|e| !super::damage::is_damaged(&damage, &record.key, &e.id));
    }
    let sizes: std::collections::HashMap<String, u64> =
        repo.storage.list(super::index::DATA_PREFIX)?.into_iter().map(|o| (o.key, o.size)).collect();
    let mut placed: HashSet<BlobId> = HashSet::new();
    let mut seen_packs: HashSet<String> = HashSet::new();
    let mut kept: Vec<PackRecord> = Vec::new();
    let mut doomed: Vec<String> = Vec::new();
    let mut repack: Vec<PackRecord> = Vec::new();
    let mut stats = PruneStats::default();
    for record in records {
        if !seen_packs.insert(record.key.clone()) {
            continue; // listed by two indexes (a prune killed after step 2)
        }
        let (keep, drop): (Vec<&Entry>, Vec<&Entry>) =
            record.entries.iter().partition(|e| used.contains(&e.id) && placed.insert(e.id));
        let size = sizes.get(&record.key).copied().unwrap_or(0);
        let unused: u64 = drop.iter().map(|e| e.stored_share()).sum();
        if keep.is_empty() {
            stats.blobs_removed += drop.len() as u64;
            doomed.push(record.key);
        } else if unused * 100 >= size.max(1) * REPACK_UNUSED_PERCENT {
            stats.blobs_removed += drop.len() as u64;
            repack.push(PackRecord { key: record.key, entries: keep.into_iter().copied().collect() });
        } else {
            kept.push(PackRecord { key: record.key, entries: keep.into_iter().copied().collect() });
        }
    }
    Ok(Plan { kept, doomed, repack, old_indexes, sizes, stats })
}

/// What `prune` would free, reading only the lists and indexes (an expire's dry run):
/// the packs it would remove or repack, less what repacking writes again.
pub fn estimate(repo: &Repo, keep_lists: &[BlobId]) -> CoreResult<PruneStats> {
    let Plan { doomed, repack, sizes, mut stats, .. } = plan(repo, keep_lists)?;
    let size = |key: &String| sizes.get(key).copied().unwrap_or(0) as i64;
    let rewritten: i64 = repack.iter().flat_map(|r| &r.entries).map(|e| e.stored_share() as i64).sum();
    stats.bytes_freed = doomed.iter().chain(repack.iter().map(|r| &r.key)).map(size).sum::<i64>() - rewritten;
    stats.packs_removed = (doomed.len() + repack.len()) as u64;
    stats.packs_repacked = repack.len() as u64;
    Ok(stats)
}

/// Keeps exactly the blobs of `keep_lists` (the lists of every retained backup).
pub fn prune(repo: &Repo, keep_lists: &[BlobId]) -> CoreResult<PruneStats> {
    repo.settle_unindexed()?;
    let Plan { mut kept, doomed, repack, old_indexes, sizes, mut stats } = plan(repo, keep_lists)?;
    if doomed.is_empty() && repack.is_empty() && old_indexes.len() <= index::objects_of(&kept).len().max(1) {
        return Ok(stats);
    }
    // (1) copy the used blobs of sparse packs into new packs (blocks of live blobs compressed anew).
    let mut repacker = Repacker::new(repo, Some("prune-pack-written"));
    for record in &repack {
        crate::core::cancel::check()?;
        let bytes = repo.storage.get(&record.key)?;
        repack_one(repo, &mut repacker, record, &bytes)?;
        stats.packs_repacked += 1;
    }
    let (written, written_bytes) = repacker.finish()?;
    stats.bytes_freed -= written_bytes as i64;
    stats.packs_written = written.len() as u64;
    repo.storage.sync_published()?;
    // (2) indexes for everything kept.
    kept.extend(written);
    for packs in index::objects_of(&kept) {
        let new_index = format!("{INDEX_PREFIX}{}", new_name());
        stats.bytes_freed -= repo.write_object(&new_index, &index::encode(packs))? as i64;
    }
    crashpoint::hit("prune-index-written");
    // (3) the old indexes, (4) the packs nothing lists any more.
    for key in old_indexes {
        repo.storage.delete(&key)?;
        crashpoint::hit("prune-index-removed");
    }
    for key in doomed.iter().chain(repack.iter().map(|r| &r.key)) {
        stats.bytes_freed += sizes.get(key).copied().unwrap_or(0) as i64;
        repo.storage.delete(key)?;
        stats.packs_removed += 1;
        crashpoint::hit("prune-pack-removed");
    }
    repo.reload_index()?;
    Ok(stats)
}

/// Copies the kept blobs of one pack: blocks whose blobs are all kept (by
/// the pack's header) whole, the rest blob by blob.
fn repack_one(repo: &Repo, repacker: &mut Repacker, record: &PackRecord, bytes: &[u8]) -> CoreResult<()> {
    let mut in_block: HashMap<u32, usize> = HashMap::new();
    for e in super::pack::parse(&repo.keys, &record.key, bytes).unwrap_or_default() {
        *in_block.entry(e.offset).or_default() += e.in_block() as usize;
    }
    let mut entries = record.entries.clone();
    entries.sort_by_key(|e| (e.offset, e.inner));
    for unit in entries.chunk_by(|a, b| a.offset == b.offset) {
        let e = &unit[0];
        let stored = bytes.get(e.offset as usize..e.end() as usize).ok_or_else(|| {
            CoreError::new("ERR_INTEGRITY", format!("pack {} is shorter than its index says", record.key))
        })?;
        if e.in_block() && in_block.get(&e.offset) == Some(&unit.len()) {
            repacker.add_whole_block(unit, stored, &record.key)?;
        } else {
            unit.iter().try_for_each(|e| repacker.add(e, stored, &record.key))?;
        }
    }
    Ok(())
}
