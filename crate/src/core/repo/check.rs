//! `verify` of a format-2 repository: every pack read whole, its header
//! checked against the index, every blob opened and checked against its id;
//! then each backup's lists and chunks resolved, so a damaged or missing
//! object is reported with every backup it affects.
use super::block::BlockCache;
use super::damage::Damage;
use super::index::{read_all, DATA_PREFIX};
use super::keys::BlobId;
use super::lists::read_list;
use super::pack::{self, Entry};
use super::{short, Repo};
use crate::core::error::{CoreError, CoreResult};
use rayon::prelude::*;
use std::collections::{HashMap, HashSet};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub code: String,
    pub message: String,
}

impl From<CoreError> for Problem {
    fn from(e: CoreError) -> Problem {
        Problem { code: e.code, message: e.message }
    }
}

/// What the pack pass found.
#[derive(Debug, Default)]
pub struct PackCheck {
    pub problems: Vec<Problem>,
    /// Blobs the index lists with no intact copy (or none that could be read now).
    pub bad: HashSet<BlobId>,
    /// The locations known to be damaged or missing (not those a failed read leaves in doubt).
    pub damage: Damage,
    pub packs: u64,
    pub blobs: u64,
    pub bytes: u64,
}

/// What the check of one pack found.
pub(super) struct OnePack {
    pub problems: Vec<Problem>,
    /// Listed blobs that are damaged or missing.
    pub damaged: Vec<BlobId>,
    /// Whether the pack could not be read at all for another reason (I/O).
    pub unread: bool,
    pub size: u64,
}

/// Checks one pack against what the index says it holds. Each listed blob
/// is opened where the index places it (where restores read it), so the
/// intact blobs of a pack with a broken header or a cut-off tail still count
/// as intact.
pub(super) fn check_pack(repo: &Repo, key: &str, listed: &[Entry]) -> OnePack {
    let all = || listed.iter().map(|e| e.id).collect();
    let bytes = match repo.storage.get(key) {
        Ok(bytes) => bytes,
        Err(e) => {
            let missing = e.code == "ERR_MISSING_FILE";
            return OnePack {
                problems: vec![e.into()],
                damaged: if missing { all() } else { Vec::new() },
                unread: !missing,
                size: 0,
            };
        }
    };
    let mut out = OnePack { problems: Vec::new(), damaged: Vec::new(), unread: false, size: bytes.len() as u64 };
    let header = pack::parse(&repo.keys, key, &bytes).map_err(|e| out.problems.push(e.into())).ok();
    let by_id: HashMap<BlobId, Entry> = header.iter().flatten().map(|e| (e.id, *e)).collect();
    // One buffer for every blob of the pack: a fresh one per blob is zeroed and faulted in each time.
    let mut opened = Vec::new();
    // Blobs in pack order, so that each block is opened once.
    let mut blocks = BlockCache::new(1);
    let mut open = |e: &Entry| -> CoreResult<()> {
        opened.resize(opened.len().max(e.raw_len as usize), 0);
        let stored = bytes.get(e.offset as usize..e.end() as usize).ok_or_else(|| {
            CoreError::new("ERR_INTEGRITY", format!("blob {} lies beyond the end of pack {key}", short(&e.id)))
        })?;
        blocks.decode_into(repo, e, stored, key, &mut opened[..e.raw_len as usize])
    };
    let mut listed = listed.to_vec();
    listed.sort_by_key(|e| (e.offset, e.inner));
    for e in &listed {
        if header.is_some() && by_id.get(&e.id) != Some(e) {
            out.problems.push(Problem {
                code: "ERR_INTEGRITY".into(),
                message: format!("the index places blob {} in pack {key}, whose header disagrees", short(&e.id)),
            });
        }
        if let Err(err) = open(e) {
            out.problems.push(err.into());
            out.damaged.push(e.id);
        }
    }
    // Blobs only the header names (no index lists them) are damage to report, not to record.
    let listed: HashSet<&Entry> = listed.iter().collect();
    for e in header.iter().flatten().filter(|e| !listed.contains(e)) {
        if let Err(err) = open(e) {
            out.problems.push(err.into());
        }
    }
    // A damaged block fails each of its blobs alike: reported once.
    out.problems.dedup();
    out
}

/// Every pack the index objects list and the blobs each lists there.
pub fn listed_packs(repo: &Repo, problems: &mut Vec<Problem>) -> CoreResult<HashMap<String, Vec<Entry>>> {
    let mut packs: HashMap<String, Vec<Entry>> = HashMap::new();
    for (key, records) in read_all(repo.storage.as_ref(), &repo.keys)? {
        match records {
            Ok(records) => records.into_iter().for_each(|r| packs.entry(r.key).or_default().extend(r.entries)),
            Err(e) => problems.push(Problem { code: e.code, message: format!("{} ({key})", e.message) }),
        }
    }
    for entries in packs.values_mut() {
        entries.sort_by_key(|e| (e.id, e.offset));
        entries.dedup(); // a pack two indexes list (a prune killed midway)
    }
    Ok(packs)
}

/// Checks every pack of `packs` on all cores, in key order.
pub(super) fn check_listed(repo: &Repo, packs: &HashMap<String, Vec<Entry>>) -> CoreResult<Vec<(String, OnePack)>> {
    let mut keys: Vec<&String> = packs.keys().collect();
    keys.sort();
    // Rayon's threads take this job's token: an abort stops them, and each pack read counts as progress.
    let token = crate::core::cancel::current();
    keys.par_iter()
        .map(|key| {
            crate::core::cancel::with(token.clone(), || {
                crate::core::cancel::check()?;
                let one = check_pack(repo, key, &packs[*key]);
                crate::core::cancel::advance(one.size);
                Ok(((*key).clone(), one))
            })
        })
        .collect()
}

/// Reads every pack the index lists (and notes unindexed ones).
pub fn check_packs(repo: &Repo) -> CoreResult<PackCheck> {
    let mut out = PackCheck::default();
    let packs = listed_packs(repo, &mut out.problems)?;
    let results = check_listed(repo, &packs)?;
    // A blob is bad when no pack holds an intact copy of it.
    let mut good: HashSet<BlobId> = HashSet::new();
    for (key, one) in results {
        out.problems.extend(one.problems);
        out.bytes += one.size;
        let listed = &packs[&key];
        if one.unread {
            out.bad.extend(listed.iter().map(|e| e.id));
            continue;
        }
        let damaged: HashSet<BlobId> = one.damaged.into_iter().collect();
        good.extend(listed.iter().map(|e| e.id).filter(|id| !damaged.contains(id)));
        out.bad.extend(damaged.iter().copied());
        if !damaged.is_empty() {
            out.damage.insert(key, damaged);
        }
    }
    out.bad.retain(|id| !good.contains(id));
    out.packs = packs.len() as u64;
    out.blobs = packs.values().map(|e| e.len() as u64).sum();
    let present: HashSet<String> = repo.storage.list(DATA_PREFIX)?.into_iter().map(|o| o.key).collect();
    let stray = present.iter().filter(|k| !packs.contains_key(*k)).count();
    if stray > 0 {
        // Not damage: a killed writer's packs, removed by the next backup or expire.
        out.problems.push(Problem {
            code: "NOTE_UNINDEXED".into(),
            message: format!("{stray} pack(s) no index lists (left by an interrupted writer, or their index was lost; the next expire or repair indexes their intact chunks)"),
        });
    }
    Ok(out)
}

/// Problems of one backup made of `files` (each a list of list-blob ids).
pub fn check_backup(repo: &Repo, files: &[(String, Vec<BlobId>)], bad: &HashSet<BlobId>) -> Vec<Problem> {
    let mut problems = Vec::new();
    let entry_of = |id: &BlobId| repo.index().get(id).map(|(_, e)| e);
    for (name, lists) in files {
        let mut damaged = 0u64;
        let mut missing = 0u64;
        for list in lists {
            if bad.contains(list) {
                damaged += 1;
                continue;
            }
            if repo.index().is_lost(list) {
                damaged += 1;
                continue;
            }
            if entry_of(list).is_none() {
                missing += 1;
                continue;
            }
            match read_list(repo, list) {
                Ok(refs) => {
                    for (id, len) in refs {
                        // Damage first: once recorded, a damaged chunk is absent from the index too.
                        match entry_of(&id) {
                            _ if bad.contains(&id) => damaged += 1,
                            None if repo.index().is_lost(&id) => damaged += 1,
                            None => missing += 1,
                            Some(e) if e.raw_len != len => damaged += 1,
                            Some(_) => {}
                        }
                    }
                }
                Err(_) => damaged += 1,
            }
        }
        if missing > 0 {
            problems.push(Problem {
                code: "ERR_MISSING_FILE".into(),
                message: format!("{name}: {missing} chunk(s) missing from the repository"),
            });
        }
        if damaged > 0 {
            problems
                .push(Problem { code: "ERR_INTEGRITY".into(), message: format!("{name}: {damaged} chunk(s) damaged") });
        }
    }
    problems
}
