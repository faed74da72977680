//! `repair`: damaged index objects rebuilt from the packs (writer.rs), then
//! every pack read as verify reads it, and the damaged ones dealt with. The
//! order keeps every moment safe to be killed at: (1) the damaged locations
//! are recorded, so the index leaves them out from then on; (2) the intact
//! blobs of damaged packs are copied into new packs; (3) new indexes list
//! the healthy packs and the new ones (objects of at most `OBJECT_ENTRIES`);
//! (4) the old indexes go, (5) the damaged packs, (6) the damage records.
//! Killed before (3), the new packs are unindexed and the next writer
//! indexes them; during or after it, the records still hide the damaged
//! locations until a repair finishes.
use super::check::{check_listed, listed_packs, Problem};
use super::damage::{self, Damage};
use super::index::{self, read_all, PackRecord, INDEX_PREFIX};
use super::keys::new_name;
use super::keys::BlobId;
use super::lists::read_list;
use super::repack::Repacker;
use super::Repo;
use crate::core::crashpoint;
use crate::core::error::{CoreError, CoreResult};
use std::collections::HashSet;

/// What `repair` did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RepairStats {
    pub indexes_removed: u64,
    /// Unindexed packs indexed anew (their intact blobs).
    pub packs_indexed: u64,
    /// Packs removed: damaged ones, and unindexed ones with nothing intact.
    pub packs_removed: u64,
    /// Packs found damaged or missing.
    pub packs_damaged: u64,
    /// Intact blobs of damaged packs copied into new packs.
    pub blobs_salvaged: u64,
    /// Blobs no pack holds an intact copy of any more.
    pub blobs_lost: u64,
    pub packs_written: u64,
    pub records_cleared: u64,
}

/// Repairs the repository; the caller holds the writer lock and keeps readers out.
pub fn repair(repo: &Repo) -> CoreResult<RepairStats> {
    let rebuilt = repo.repair_index()?;
    let mut stats = RepairStats {
        indexes_removed: rebuilt.indexes_removed,
        packs_indexed: rebuilt.packs_indexed,
        packs_removed: rebuilt.packs_removed,
        ..RepairStats::default()
    };
    let mut problems: Vec<Problem> = Vec::new();
    let packs = listed_packs(repo, &mut problems)?;
    if let Some(p) = problems.first() {
        return Err(CoreError::new(&p.code, p.message.clone()));
    }
    let mut damage = Damage::new();
    let mut good: HashSet<BlobId> = HashSet::new();
    let mut healthy: Vec<PackRecord> = Vec::new();
    let mut broken: Vec<PackRecord> = Vec::new();
    for (key, one) in check_listed(repo, &packs)? {
        if one.unread {
            // Not known to be damaged: nothing may be dropped on a failed read.
            let p = one.problems.into_iter().next().expect("an unread pack has its error");
            return Err(CoreError::new(&p.code, format!("repair could not read pack {key}: {}", p.message)));
        }
        let damaged: HashSet<BlobId> = one.damaged.into_iter().collect();
        let intact: Vec<_> = packs[&key].iter().filter(|e| !damaged.contains(&e.id)).copied().collect();
        good.extend(intact.iter().map(|e| e.id));
        let record = PackRecord { key: key.clone(), entries: intact };
        if one.problems.is_empty() {
            healthy.push(record);
        } else {
            broken.push(record);
            damage.insert(key, damaged);
        }
    }
    let (records, _) = damage::read_all(repo.storage.as_ref(), &repo.keys)?;
    stats.packs_damaged = broken.len() as u64;
    let lost: HashSet<&BlobId> = damage.values().flatten().filter(|id| !good.contains(*id)).collect();
    stats.blobs_lost = lost.len() as u64;
    if broken.is_empty() {
        clear_records(repo, &records, &mut stats)?;
        return Ok(stats);
    }
    // (1)
    damage::record(repo, &damage)?;
    crashpoint::hit("repair-damage-recorded");
    // (2)
    let written = salvage(repo, &healthy, &broken, &mut stats)?;
    stats.packs_written = written.len() as u64;
    repo.storage.sync_published()?;
    // (3)
    let old_indexes: Vec<String> = read_all(repo.storage.as_ref(), &repo.keys)?.into_iter().map(|(k, _)| k).collect();
    healthy.extend(written);
    for packs in index::objects_of(&healthy) {
        repo.write_object(&format!("{INDEX_PREFIX}{}", new_name()), &index::encode(packs))?;
    }
    crashpoint::hit("repair-index-written");
    // (4), (5)
    for key in old_indexes {
        repo.storage.delete(&key)?;
    }
    for record in &broken {
        repo.storage.delete(&record.key)?;
        stats.packs_removed += 1;
        crashpoint::hit("repair-pack-removed");
    }
    // (6) every record, the one of step 1 too: each location it names is gone.
    let (records, _) = damage::read_all(repo.storage.as_ref(), &repo.keys)?;
    clear_records(repo, &records, &mut stats)?;
    repo.reload_index()?;
    Ok(stats)
}

/// Step (2): copies the intact blobs of the broken packs into new packs,
/// except a blob a healthy pack (or an earlier copy) already holds.
fn salvage(
    repo: &Repo,
    healthy: &[PackRecord],
    broken: &[PackRecord],
    stats: &mut RepairStats,
) -> CoreResult<Vec<PackRecord>> {
    let mut held: HashSet<BlobId> = healthy.iter().flat_map(|r| r.entries.iter().map(|e| e.id)).collect();
    let mut repacker = Repacker::new(repo, None);
    for record in broken {
        crate::core::cancel::check()?;
        let mut wanted: Vec<_> = record.entries.iter().filter(|e| held.insert(e.id)).collect();
        if wanted.is_empty() {
            continue;
        }
        wanted.sort_by_key(|e| (e.offset, e.inner));
        let bytes = repo.storage.get(&record.key)?;
        for e in wanted {
            let stored = bytes.get(e.offset as usize..e.end() as usize).ok_or_else(|| {
                CoreError::new("ERR_INTEGRITY", format!("pack {} changed while it was repaired", record.key))
            })?;
            repacker.add(e, stored, &record.key)?;
            stats.blobs_salvaged += 1;
        }
    }
    Ok(repacker.finish()?.0)
}

fn clear_records(repo: &Repo, records: &[String], stats: &mut RepairStats) -> CoreResult<()> {
    for key in records {
        repo.storage.delete(key)?;
        stats.records_cleared += 1;
    }
    repo.reload_index()
}

/// The files of a backup (name and lists) that need chunks the index does
/// not hold: `(file name, chunks missing)`.
pub fn missing_chunks(repo: &Repo, files: &[(String, Vec<BlobId>)]) -> CoreResult<Vec<(String, u64)>> {
    let mut out = Vec::new();
    for (name, lists) in files {
        let mut missing = 0u64;
        for list in lists {
            if !repo.knows(list) {
                missing += 1; // the list itself: which chunks it named is lost with it
                continue;
            }
            missing += read_list(repo, list)?.iter().filter(|(id, _)| !repo.knows(id)).count() as u64;
        }
        if missing > 0 {
            out.push((name.clone(), missing));
        }
    }
    Ok(out)
}
