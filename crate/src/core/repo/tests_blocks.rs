//! Formats 3 and 4: compression blocks (with row deltas in 4), beside format-2 packs in one repository.
use super::backup_file::store_file;
use super::check::{check_backup, check_packs};
use super::index::{read_all, PackRecord};
use super::keys::BlobId;
use super::open::open;
use super::pack::Entry;
use super::prune::prune;
use super::repair::repair;
use super::restore_file::restore_file;
use super::storage::LocalDir;
use super::tests::{bytes, damage_object, plain, reopen, repo, round_trip};
use crate::core::test_support::{engine_heap, Rows, TempDir};
use std::collections::{HashMap, HashSet};

/// Rewrites the repository's config with another format number.
fn set_format(dir: &TempDir, format: u32) {
    let path = dir.path("repo").join("config");
    let mut config: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    config["format"] = format.into();
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
}

fn records(repo: &super::Repo) -> Vec<PackRecord> {
    read_all(repo.storage.as_ref(), &repo.keys).unwrap().into_iter().flat_map(|(_, r)| r.unwrap()).collect()
}

fn magics(repo: &super::Repo) -> Vec<String> {
    let packs = repo.storage.list("data/").unwrap();
    packs
        .iter()
        .map(|o| String::from_utf8(repo.storage.get(&o.key).unwrap().split_off(o.size as usize - 8)).unwrap())
        .collect()
}

fn restores(dir: &TempDir, repo: &super::Repo, lists: &[BlobId], data: &[u8], name: &str) {
    let out = dir.path(name);
    let _ = std::fs::remove_file(&out);
    restore_file(repo, lists, data.len() as u64, &out, false).unwrap();
    assert!(std::fs::read(&out).unwrap() == data, "{name} restored other bytes");
}

#[test]
fn format_2_3_and_4_packs_round_trip_verify_and_prune_in_one_repository() {
    for password in [None, Some("pw")] {
        let dir = TempDir::new();
        drop(repo(&dir, password));
        set_format(&dir, 2);
        let old = reopen(&dir, password);
        assert!(!old.uses_blocks());
        let a = bytes(1, 4096 * 700);
        let lists_a = round_trip(&dir, &old, "A.heap", &a, true);
        assert!(magics(&old).iter().all(|m| m == "PWBPACK2"));
        assert!(records(&old).iter().flat_map(|r| &r.entries).all(|e| !e.in_block()));
        set_format(&dir, 3); // the recorded upgrade
        let new = reopen(&dir, password);
        assert!(new.uses_blocks());
        let b = bytes(2, 4096 * 700);
        let lists_b = round_trip(&dir, &new, "B.heap", &b, true);
        let mut a2 = a.clone();
        a2[4096 * 300..4096 * 310].fill(7);
        let lists_a2 = round_trip(&dir, &new, "A2.heap", &a2, true);
        assert!(magics(&new).iter().any(|m| m == "PWBPACK3") && magics(&new).iter().any(|m| m == "PWBPACK2"));
        let new = reopen(&dir, password);
        restores(&dir, &new, &lists_a, &a, "a.out");
        restores(&dir, &new, &lists_b, &b, "b.out");
        restores(&dir, &new, &lists_a2, &a2, "a2.out");
        let check = check_packs(&new).unwrap();
        assert!(check.problems.is_empty() && check.bad.is_empty(), "{:?}", check.problems);
        // Keep B and A2 (which shares most of A's format-2 chunks).
        // Format 4 beside them: heap pages stored as row deltas, the older blocks read as they are.
        set_format(&dir, 4);
        let newest = reopen(&dir, password);
        assert!(newest.uses_row_deltas());
        let heap = engine_heap(u64::from(password.is_some()), 4000, Rows::Regular);
        let lists_h = round_trip(&dir, &newest, "H.heap", &heap, true);
        let newest = reopen(&dir, password);
        for (lists, data, name) in
            [(&lists_a, &a, "a"), (&lists_b, &b, "b"), (&lists_a2, &a2, "a2"), (&lists_h, &heap, "h")]
        {
            restores(&dir, &newest, lists, data, name);
        }
        let keep: Vec<BlobId> = lists_b.iter().chain(&lists_a2).chain(&lists_h).copied().collect();
        prune(&newest, &keep).unwrap();
        restores(&dir, &newest, &lists_b, &b, "b.pruned");
        restores(&dir, &newest, &lists_a2, &a2, "a2.pruned");
        restores(&dir, &newest, &lists_h, &heap, "h.pruned");
        assert!(check_packs(&newest).unwrap().problems.is_empty());
    }
}

#[test]
fn a_damaged_block_loses_only_its_blobs_and_verify_names_it() {
    for password in [None, Some("pw")] {
        let dir = TempDir::new();
        let repo = repo(&dir, password);
        let data = bytes(3, 4096 * 1000);
        let lists = round_trip(&dir, &repo, "T.heap", &data, true);
        let clean = check_packs(&repo).unwrap();
        assert!(clean.problems.is_empty(), "negative control: {:?}", clean.problems);
        let records = records(&repo);
        let record = records.iter().find(|r| r.entries.iter().filter(|e| e.in_block()).count() > 20).unwrap();
        let block: Vec<&Entry> = record.entries.iter().filter(|e| e.in_block() && e.offset == 0).collect();
        let all_data = records.iter().flat_map(|r| &r.entries).filter(|e| e.in_block()).count();
        assert!(block.len() > 1 && block.len() < all_data, "{} of {all_data}", block.len());
        damage_object(&dir, &record.key, |raw| raw[block[0].stored_len as usize / 2] ^= 0x10);
        let found = check_packs(&repo).unwrap();
        let named: Vec<_> = found.problems.iter().filter(|p| p.message.contains("block at byte 0 of pack")).collect();
        assert_eq!(named.len(), 1, "{:?}", found.problems);
        let lost: HashSet<BlobId> = block.iter().map(|e| e.id).collect();
        assert_eq!(found.bad, lost, "exactly the blobs of the damaged block");
        let problems = check_backup(&repo, &[("T.heap".into(), lists.clone())], &found.bad);
        assert!(
            problems.iter().any(|p| p.message == format!("T.heap: {} chunk(s) damaged", lost.len())),
            "{problems:?}"
        );
        // Repair salvages every other blob; backing the file up again stores only the lost ones.
        let stats = repair(&repo).unwrap();
        assert_eq!(stats.blobs_lost, lost.len() as u64, "{stats:?}");
        assert!(stats.blobs_salvaged > 0);
        let again = store_file(&repo, &dir.write("T.heap", &data), &plain(true)).unwrap();
        assert_eq!(again.new_chunks, lost.len() as u64);
        repo.commit().unwrap();
        restores(&dir, &reopen(&dir, password), &lists, &data, "healed");
    }
}

#[test]
fn prune_of_packs_with_blocks_keeps_only_live_blobs() {
    let dir = TempDir::new();
    let repo = repo(&dir, None);
    // Two files backed up together: their blocks mix both files' chunks.
    let (a, b) = (bytes(4, 4096 * 2000), bytes(5, 4096 * 2000));
    let (src_a, src_b) = (dir.write("a", &a), dir.write("b", &b));
    let (sa, sb) = rayon::join(|| store_file(&repo, &src_a, &plain(true)), || store_file(&repo, &src_b, &plain(true)));
    let (sa, sb) = (sa.unwrap(), sb.unwrap());
    repo.commit().unwrap();
    let before: u64 = repo.storage.list("data/").unwrap().iter().map(|o| o.size).sum();
    let stats = prune(&repo, &sb.lists).unwrap();
    assert!(stats.packs_removed > 0 && stats.bytes_freed > 0, "{stats:?}");
    let after: u64 = repo.storage.list("data/").unwrap().iter().map(|o| o.size).sum();
    // Half the data is dead. How the two files interleave in packs is up to the scheduler, and a pack with
    // under 30% unused is kept whole, so up to about half / 0.7 (71%) may remain.
    assert!(after * 100 < before * 75, "{after} of {before}");
    let live: HashSet<BlobId> = sb
        .lists
        .iter()
        .copied()
        .chain(sb.lists.iter().flat_map(|l| super::lists::read_list(&repo, l).unwrap()).map(|(id, _)| id))
        .collect();
    let kept: HashSet<BlobId> = records(&repo).iter().flat_map(|r| r.entries.iter().map(|e| e.id)).collect();
    assert_eq!(kept, live, "exactly the live blobs");
    restores(&dir, &repo, &sb.lists, &b, "b.out");
    assert!(restore_file(&repo, &sa.lists, a.len() as u64, &dir.path("a.out"), false).is_err());
    assert!(check_packs(&repo).unwrap().problems.is_empty());
}

#[test]
fn concurrent_writers_fill_blocks_and_every_file_restores() {
    let dir = TempDir::new();
    let repo = repo(&dir, Some("pw"));
    let files: Vec<(std::path::PathBuf, Vec<u8>)> = (0..6)
        .map(|i| {
            (
                dir.write(&format!("f{i}"), &bytes(20 + i, 4096 * 300 + i as usize * 4096)),
                bytes(20 + i, 4096 * 300 + i as usize * 4096),
            )
        })
        .collect();
    let stored: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = files
            .iter()
            .enumerate()
            .map(|(i, (path, _))| {
                let repo = &repo;
                s.spawn(move || store_file(repo, path, &plain(i % 2 == 0)).unwrap())
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let stats = repo.commit().unwrap();
    assert_eq!(stats.blobs, repo.index().len() as u64);
    let repo = reopen(&dir, Some("pw"));
    let mut per_block: HashMap<(String, u32), usize> = HashMap::new();
    for r in records(&repo) {
        for e in r.entries.iter().filter(|e| e.in_block()) {
            *per_block.entry((r.key.clone(), e.offset)).or_default() += 1;
        }
    }
    assert!(per_block.values().all(|&n| n >= 1) && per_block.len() >= 2, "{per_block:?}");
    for ((_, data), s) in files.iter().zip(&stored) {
        restores(&dir, &repo, &s.lists, data, "out");
    }
    assert!(check_packs(&repo).unwrap().problems.is_empty());
}

#[test]
fn a_newer_format_is_refused_by_number() {
    let dir = TempDir::new();
    drop(repo(&dir, None));
    set_format(&dir, super::config::FORMAT + 1);
    let err = open(Box::new(LocalDir::new(dir.path("repo"))), None).err().unwrap();
    assert_eq!(err.code, "ERR_UNSUPPORTED_FORMAT");
    set_format(&dir, 1);
    let err = open(Box::new(LocalDir::new(dir.path("repo"))), None).err().unwrap();
    assert_eq!(err.code, "ERR_NOT_A_REPO");
}

#[test]
fn prune_copies_wholly_live_blocks_and_recompresses_the_rest() {
    let dir = TempDir::new();
    let repo = repo(&dir, None);
    // One session, one after the other: one pack, blocks of A, then blocks of B (one block shared).
    let (a, b) = (bytes(6, 4096 * 600), bytes(7, 4096 * 600));
    let sa = store_file(&repo, &dir.write("a", &a), &plain(true)).unwrap();
    let sb = store_file(&repo, &dir.write("b", &b), &plain(true)).unwrap();
    repo.commit().unwrap();
    assert_eq!(repo.storage.list("data/").unwrap().len(), 1);
    let old_blocks: HashSet<(u32, u32)> = records(&repo)
        .iter()
        .flat_map(|r| &r.entries)
        .filter(|e| e.in_block())
        .map(|e| (e.stored_len, e.block_len))
        .collect();
    let stats = prune(&repo, &sb.lists).unwrap();
    assert_eq!(stats.packs_repacked, 1, "{stats:?}");
    restores(&dir, &repo, &sb.lists, &b, "b.out");
    assert!(restore_file(&repo, &sa.lists, a.len() as u64, &dir.path("a.out"), false).is_err());
    let new_blocks: HashSet<(u32, u32)> = records(&repo)
        .iter()
        .flat_map(|r| &r.entries)
        .filter(|e| e.in_block())
        .map(|e| (e.stored_len, e.block_len))
        .collect();
    // B's own blocks were copied as they were; the block A and B shared was compressed anew.
    assert!(
        new_blocks.len() >= 2 && new_blocks.intersection(&old_blocks).count() == new_blocks.len() - 1,
        "{new_blocks:?}"
    );
    assert!(check_packs(&repo).unwrap().problems.is_empty());
}
