//! `check`: a checkpointed directory written from a backup (heaps and index
//! files beside a catalog) is checked without a write, and what it must
//! refuse.
use super::tests::{crash, create, insert, names};
use super::*;
use crate::core::test_support::TempDir;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// A stopped database: every file, index files included, as a backup holds it.
fn stopped(tmp: &TempDir, rows: i64) -> PathBuf {
    let dir = tmp.path("restored");
    drop(create(&dir, rows));
    assert!(dir.join("Cust_id.idx").exists() && dir.join("Ord_1.eidx").exists());
    dir
}

/// Every file's bytes (and a LOCK, were one left).
fn bytes(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    names(dir).into_iter().filter(|n| n != "readers").map(|n| (n.clone(), fs::read(dir.join(&n)).unwrap())).collect()
}

#[test]
fn a_stopped_database_is_checked_without_a_write() {
    let tmp = TempDir::new();
    let dir = stopped(&tmp, 60);
    let before = bytes(&dir);

    let checked = check(&dir).unwrap();

    let counts: Vec<_> = checked.tables.iter().map(|t| (t.name.as_str(), t.rows)).collect();
    assert_eq!(counts, [("Cust", 60), ("Ord", 60)]);
    assert_eq!(checked.tables[1].indexes, ["id", "expr:v1:.doc->\"kind\""]);
    assert_eq!(checked.catalog_version, 7);
    assert_eq!(bytes(&dir), before, "check writes nothing");
    assert_eq!(names(&dir), before.keys().cloned().collect::<Vec<_>>());
}

#[test]
fn no_wal_file_is_nothing_to_replay() {
    let tmp = TempDir::new();
    let dir = stopped(&tmp, 20);
    fs::remove_file(dir.join("wal.log")).unwrap();

    assert_eq!(check(&dir).unwrap().tables[0].rows, 20);
    assert!(!dir.join("wal.log").exists());
}

/// Negative control: an index file from before later inserts holds fewer
/// entries than the rows give it.
#[test]
fn an_index_file_of_another_moment_is_refused() {
    let tmp = TempDir::new();
    let dir = tmp.path("restored");
    let mut cat = create(&dir, 40);
    let earlier = fs::read(dir.join("Cust_id.idx")).unwrap();
    insert(&mut cat, 40..60);
    cat.checkpoint().unwrap();
    drop(cat);
    fs::write(dir.join("Cust_id.idx"), earlier).unwrap();

    let err = check(&dir).unwrap_err();

    assert_eq!(err.code, "ERR_ONLINE_FINALIZE");
    assert_eq!(err.message, "index Cust.id holds 40 entries, the rows give it 60");
    assert!(!dir.join("LOCK").exists());
}

#[test]
fn a_missing_index_file_is_refused() {
    let tmp = TempDir::new();
    let dir = stopped(&tmp, 10);
    fs::remove_file(dir.join("Cust_id.idx")).unwrap();

    let err = check(&dir).unwrap_err();

    assert!(err.message.contains("its file Cust_id.idx is missing"), "{err}");
    assert!(!dir.join("Cust_id.idx").exists(), "not rebuilt on disk");
}

#[test]
fn a_wal_holding_records_is_refused_untouched() {
    let tmp = TempDir::new();
    let dir = tmp.path("restored");
    let mut cat = create(&dir, 10);
    insert(&mut cat, 10..20);
    crash(cat);
    let before = bytes(&dir);

    let err = check(&dir).unwrap_err();

    assert_eq!(err.code, "ERR_ONLINE_FINALIZE");
    assert!(err.message.contains("wal.log is not empty"), "{err}");
    assert_eq!(bytes(&dir), before);
}

#[test]
fn a_torn_heap_page_is_refused_naming_it() {
    let tmp = TempDir::new();
    let dir = stopped(&tmp, 30);
    let heap = dir.join("Cust.heap");
    let mut pages = fs::read(&heap).unwrap();
    pages[100] ^= 0xff;
    fs::write(&heap, pages).unwrap();

    let err = check(&dir).unwrap_err();

    assert_eq!(err.code, "ERR_ONLINE_FINALIZE");
    assert!(err.message.contains("Cust"), "{err}");
    assert!(!dir.join("LOCK").exists());
}
