//! The bounded redo against the engine's own recovery, on copies staged as
//! an online backup stages them: heaps copied at one moment of a seeded
//! workload (after pressure flushes put some of its pages on disk), the WAL
//! and catalog at a later one.
use super::tests::{contents, crash, create, names, recovered, stage};
use super::*;
use crate::core::test_support::{Rng, TempDir};
use powdb_storage::catalog::Catalog;
use powdb_storage::pj1::parse_json_text;
use powdb_storage::types::{RowId, Value};
use std::fs;
use std::path::Path;

struct Workload {
    rng: Rng,
    next_id: i64,
}

impl Workload {
    fn name(&mut self, id: i64) -> Value {
        // Now and then large enough for an overflow chain.
        let len = if self.rng.below(8) == 0 { 5000 + self.rng.below(4000) } else { self.rng.below(60) };
        Value::Str(format!("c{id}-{}", "y".repeat(len as usize)))
    }

    fn some_rid(&mut self, cat: &Catalog, table: &str) -> Option<RowId> {
        // A scan also flushes the table's dirty pages, as a server's reads do.
        let rids: Vec<RowId> = cat.scan(table).unwrap().map(|item| item.unwrap().0).collect();
        (!rids.is_empty()).then(|| rids[self.rng.below(rids.len() as u64) as usize])
    }

    /// One statement: insert, update or delete in either table.
    fn statement(&mut self, cat: &mut Catalog) {
        match self.rng.below(6) {
            0 | 1 => {
                let id = self.next_id;
                self.next_id += 1;
                let name = self.name(id);
                cat.insert("Cust", &vec![Value::Int(id), name]).unwrap();
            }
            2 => {
                if let Some(rid) = self.some_rid(cat, "Cust") {
                    let id = cat.get("Cust", rid).unwrap().unwrap()[0].clone();
                    let Value::Int(n) = id else { unreachable!() };
                    let name = self.name(n);
                    cat.update("Cust", rid, &vec![id, name]).unwrap();
                }
            }
            3 => {
                if let Some(rid) = self.some_rid(cat, "Cust") {
                    cat.delete("Cust", rid).unwrap();
                }
            }
            4 => {
                let id = self.next_id;
                self.next_id += 1;
                let doc = parse_json_text(&format!(r#"{{"kind":"k{}","n":{id}}}"#, self.rng.below(5))).unwrap();
                cat.insert("Ord", &vec![Value::Int(id), Value::Int(id % 7), Value::Json(doc.into_boxed_slice())])
                    .unwrap();
            }
            _ => {
                if let Some(rid) = self.some_rid(cat, "Ord") {
                    cat.delete("Ord", rid).unwrap();
                }
            }
        }
    }

    /// An autocommit statement or an explicit transaction of a few.
    fn unit(&mut self, cat: &mut Catalog) {
        if self.rng.below(3) == 0 {
            cat.begin_transaction().unwrap();
            for _ in 0..1 + self.rng.below(4) {
                self.statement(cat);
            }
            cat.commit_transaction().unwrap();
        } else {
            self.statement(cat);
            cat.commit_autocommit().unwrap();
        }
    }
}

fn copy_heaps(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".heap") {
            fs::copy(from.join(&name), to.join(&name)).unwrap();
        }
    }
}

/// The online stage's image: the source's files at the end, its heaps as
/// copied into `heaps`.
fn staged(source: &Path, heaps: &Path, to: &Path) {
    stage(source, to);
    copy_heaps(heaps, to);
}

/// A crashed source and its heaps copied during the run, in `tmp`.
fn run(tmp: &TempDir, seed: u64) {
    let source = tmp.path("source");
    let mut cat = create(&source, 30);
    let mut work = Workload { rng: Rng(seed), next_id: 30 };
    // A small budget makes pressure flushes write pages between checkpoints.
    cat.set_dirty_page_budget_bytes(4096 * (1 + work.rng.below(6) as usize));
    for _ in 0..20 + work.rng.below(40) {
        work.unit(&mut cat);
        if work.rng.below(25) == 0 {
            cat.checkpoint().unwrap();
        }
    }
    // The copy's pass; no checkpoint after it (the stage retries those).
    copy_heaps(&source, &tmp.path("heaps"));
    for _ in 0..20 + work.rng.below(60) {
        work.unit(&mut cat);
        if work.rng.below(30) == 0 {
            // One heap copied again later: pages of different moments.
            fs::copy(source.join("Ord.heap"), tmp.path("heaps").join("Ord.heap")).unwrap();
        }
    }
    if work.rng.below(2) == 0 {
        // A transaction still open when the freeze began.
        cat.begin_transaction().unwrap();
        work.statement(&mut cat);
        cat.sync_wal().unwrap();
    }
    crash(cat);
}

#[test]
fn the_redo_recovers_what_the_engine_recovers_on_seeded_workloads() {
    let seeds: u64 = std::env::var("POWDB_REDO_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(12);
    for seed in 1..=seeds {
        let tmp = TempDir::new();
        run(&tmp, seed);
        let (by_engine, by_redo) = (tmp.path("engine"), tmp.path("redo"));
        staged(&tmp.path("source"), &tmp.path("heaps"), &by_engine);
        staged(&tmp.path("source"), &tmp.path("heaps"), &by_redo);

        let engine = finalize_by(&by_engine, Route::Engine).unwrap_or_else(|e| panic!("seed {seed}: engine: {e}"));
        let redo = finalize_by(&by_redo, Route::Redo).unwrap_or_else(|e| panic!("seed {seed}: redo: {e}"));

        assert_eq!((engine.route, redo.route), (Route::Engine, Route::Redo), "seed {seed}");
        // The engine's open sweeps overflow pages no row references and logs
        // that as one more record, raising its LSN by one; the heaps are the same.
        assert!(
            [engine.max_lsn, engine.max_lsn - 1].contains(&redo.max_lsn),
            "seed {seed}: {} {}",
            redo.max_lsn,
            engine.max_lsn
        );
        let lsn_file = |d: &Path| u64::from_le_bytes(fs::read(d.join("catalog.lsn")).unwrap().try_into().unwrap());
        assert_eq!(lsn_file(&by_redo), redo.max_lsn, "seed {seed}");
        assert_eq!(redo.tables, engine.tables, "seed {seed}");
        for heap in ["Cust.heap", "Ord.heap"] {
            assert!(
                fs::read(by_redo.join(heap)).unwrap() == fs::read(by_engine.join(heap)).unwrap(),
                "seed {seed}: {heap}"
            );
        }
        let listing = names(&by_redo);
        assert!(!listing.iter().any(|n| n.ends_with("idx")), "seed {seed}: no index file: {listing:?}");
        let truth = recovered(&tmp.path("source"));
        assert_eq!(contents(&by_redo), truth, "seed {seed}");
        // The engine's first open rebuilds the indexes, which its verify
        // then checks against every row.
        let reopened = finalize(&by_redo).unwrap_or_else(|e| panic!("seed {seed}: reopen: {e}"));
        assert_eq!(reopened.tables, engine.tables, "seed {seed}");
    }
}

/// Negative control: without the log's last committed unit the redo's copy
/// is not what the source committed, and the comparison above sees it.
#[test]
fn a_lost_record_shows_in_the_comparison() {
    let tmp = TempDir::new();
    let source = tmp.path("source");
    let mut cat = create(&source, 10);
    copy_heaps(&source, &tmp.path("heaps"));
    let before = fs::metadata(source.join("wal.log")).unwrap().len();
    cat.insert("Cust", &vec![Value::Int(500), Value::Str("late".into())]).unwrap();
    cat.commit_autocommit().unwrap();
    crash(cat);
    let copy = tmp.path("redo");
    staged(&source, &tmp.path("heaps"), &copy);
    fs::OpenOptions::new().write(true).open(copy.join("wal.log")).unwrap().set_len(before).unwrap();

    let done = finalize_by(&copy, Route::Redo).unwrap();

    assert_eq!(done.tables[0].rows, 10);
    assert_ne!(contents(&copy), recovered(&source));
}

#[test]
fn a_schema_change_in_the_log_is_left_to_the_engine() {
    let tmp = TempDir::new();
    let source = tmp.path("source");
    let mut cat = create(&source, 10);
    cat.create_table(super::tests::schema("Late", &[("id", powdb_storage::types::TypeId::Int, true)])).unwrap();
    cat.insert("Late", &vec![Value::Int(1)]).unwrap();
    cat.commit_autocommit().unwrap();
    crash(cat);
    let copy = tmp.path("copy");
    stage(&source, &copy);

    let done = finalize_by(&copy, Route::Redo).unwrap();

    assert_eq!(done.route, Route::Engine);
    assert_eq!(contents(&copy), recovered(&source));
}

#[test]
fn auto_takes_the_engine_for_a_small_copy() {
    let tmp = TempDir::new();
    let source = tmp.path("source");
    crash(create(&source, 5));
    let copy = tmp.path("copy");
    stage(&source, &copy);

    assert_eq!(finalize_by(&copy, Route::Auto).unwrap().route, Route::Engine);
}

/// Half of page 2 over page 1 of Cust: the heap's open refuses it.
#[test]
fn a_torn_page_fails_the_redo_naming_the_table() {
    let tmp = TempDir::new();
    let source = tmp.path("source");
    crash(create(&source, 40));
    let copy = tmp.path("copy");
    stage(&source, &copy);
    let heap = copy.join("Cust.heap");
    let mut bytes = fs::read(&heap).unwrap();
    let (page, half) = (crate::core::page::PAGE_SIZE, crate::core::page::PAGE_SIZE / 2);
    bytes.copy_within(2 * page..2 * page + half, page);
    fs::write(&heap, bytes).unwrap();

    let err = finalize_by(&copy, Route::Redo).unwrap_err();

    assert_eq!(err.code, ERR_FINALIZE);
    assert!(err.message.contains("Cust"), "{}", err.message);
}

#[test]
fn damage_inside_the_log_fails_the_redo() {
    let tmp = TempDir::new();
    let source = tmp.path("source");
    let mut cat = create(&source, 10);
    let start = fs::metadata(source.join("wal.log")).unwrap().len() as usize;
    for i in 10..14 {
        cat.insert("Cust", &vec![Value::Int(i), Value::Str("x".into())]).unwrap();
        cat.commit_autocommit().unwrap();
    }
    crash(cat);
    let copy = tmp.path("copy");
    stage(&source, &copy);
    let wal = copy.join("wal.log");
    let mut bytes = fs::read(&wal).unwrap();
    bytes[start + 30] ^= 0xff;
    fs::write(&wal, bytes).unwrap();

    let err = finalize_by(&copy, Route::Redo).unwrap_err();

    assert_eq!(err.code, "ERR_BAD_WAL", "{}", err.message);
    assert!(err.message.contains("more of the log after it"), "{}", err.message);
}
