//! `verify` of a format-2 repository: every pack read whole, its header
//! checked against the index, every blob opened and checked against its id;
//! then each backup's lists and chunks resolved, so a damaged or missing
//! object is reported with every backup it affects.
use super::index::{read_all, DATA_PREFIX};
use super::keys::BlobId;
use super::pack::{self, Entry};
use super::store::read_list;
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
    /// Blobs the index lists that are missing or damaged.
    pub bad: HashSet<BlobId>,
    pub packs: u64,
    pub blobs: u64,
    pub bytes: u64,
}

/// Checks one pack against what the index says it holds; returns its bad blobs.
fn check_pack(repo: &Repo, key: &str, listed: &[Entry]) -> (Vec<Problem>, Vec<BlobId>, u64) {
    let all_bad = || listed.iter().map(|e| e.id).collect();
    let bytes = match repo.storage.get(key) {
        Ok(bytes) => bytes,
        Err(e) => return (vec![e.into()], all_bad(), 0),
    };
    let size = bytes.len() as u64;
    let header = match pack::parse(&repo.keys, key, &bytes) {
        Ok(h) => h,
        Err(e) => return (vec![e.into()], all_bad(), size),
    };
    let mut problems = Vec::new();
    let mut bad = Vec::new();
    let by_id: HashMap<BlobId, Entry> = header.iter().map(|e| (e.id, *e)).collect();
    for e in listed {
        if by_id.get(&e.id) != Some(e) {
            problems.push(Problem {
                code: "ERR_INTEGRITY".into(),
                message: format!("the index places blob {} in pack {key}, whose header disagrees", short(&e.id)),
            });
            bad.push(e.id);
        }
    }
    // One buffer for every blob of the pack: a fresh one per blob is zeroed and faulted in each time.
    let mut opened = Vec::new();
    for e in &header {
        opened.resize(opened.len().max(e.raw_len as usize), 0);
        let out = &mut opened[..e.raw_len as usize];
        if let Err(err) = repo.decode_blob_into(e, &bytes[e.offset as usize..e.end() as usize], key, out) {
            problems.push(err.into());
            bad.push(e.id);
        }
    }
    (problems, bad, size)
}

/// Reads every pack the index lists (and notes unindexed ones).
pub fn check_packs(repo: &Repo) -> CoreResult<PackCheck> {
    let mut out = PackCheck::default();
    let mut packs: HashMap<String, Vec<Entry>> = HashMap::new();
    for (key, records) in read_all(repo.storage.as_ref(), &repo.keys)? {
        match records {
            Ok(records) => records.into_iter().for_each(|r| packs.entry(r.key).or_default().extend(r.entries)),
            Err(e) => out.problems.push(Problem { code: e.code, message: format!("{} ({key})", e.message) }),
        }
    }
    let mut keys: Vec<&String> = packs.keys().collect();
    keys.sort();
    // Rayon's threads take this job's token: an abort stops them, and each pack read counts as progress.
    let token = crate::core::cancel::current();
    let results: Vec<_> = keys
        .par_iter()
        .map(|key| {
            crate::core::cancel::with(token.clone(), || {
                crate::core::cancel::check()?;
                let (problems, bad, size) = check_pack(repo, key, &packs[*key]);
                crate::core::cancel::advance(size);
                Ok((problems, bad, size))
            })
        })
        .collect::<CoreResult<_>>()?;
    for (problems, bad, size) in results {
        out.problems.extend(problems);
        out.bad.extend(bad);
        out.bytes += size;
    }
    out.packs = keys.len() as u64;
    out.blobs = packs.values().map(|e| e.len() as u64).sum();
    let present: HashSet<String> = repo.storage.list(DATA_PREFIX)?.into_iter().map(|o| o.key).collect();
    let stray = present.iter().filter(|k| !packs.contains_key(*k)).count();
    if stray > 0 {
        // Not damage: a killed writer's packs, removed by the next backup or expire.
        out.problems.push(Problem {
            code: "NOTE_UNINDEXED".into(),
            message: format!("{stray} pack(s) no index lists (left by an interrupted writer, or their index was lost; the next backup or expire indexes their intact chunks)"),
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
            if entry_of(list).is_none() {
                missing += 1;
                continue;
            }
            match read_list(repo, list) {
                Ok(refs) => {
                    for (id, len) in refs {
                        match entry_of(&id) {
                            None => missing += 1,
                            Some(e) if e.raw_len != len || bad.contains(&id) => damaged += 1,
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
            problems.push(Problem {
                code: "ERR_INTEGRITY".into(),
                message: format!("{name}: {damaged} chunk(s) damaged"),
            });
        }
    }
    problems
}
