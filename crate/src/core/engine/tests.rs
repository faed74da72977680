//! Finalize on directories the real engine wrote and left as a killed server
//! would, and the damage it must refuse.
use super::*;
use crate::core::test_support::TempDir;
use powdb_storage::catalog::{Catalog, LinkDef, LinkKind};
use powdb_storage::pj1::parse_json_text;
use powdb_storage::stored_json_path::{StoredJsonPathSegmentV1, StoredJsonPathV1};
use powdb_storage::types::{ColumnDef, Row, Schema, TypeId, Value};
use std::collections::BTreeMap;
use std::fs;
use std::ops::Range;
use std::path::{Path, PathBuf};

pub(super) fn schema(table: &str, columns: &[(&str, TypeId, bool)]) -> Schema {
    let columns = columns
        .iter()
        .enumerate()
        .map(|(i, (name, type_id, required))| ColumnDef {
            name: name.to_string(),
            type_id: *type_id,
            required: *required,
            position: i as u16,
        })
        .collect();
    Schema { table_name: table.to_string(), columns }
}

/// A database shaped like a server's: `Cust` (unique index, some rows large
/// enough for overflow pages) and `Ord` (index, a JSON column with an
/// expression index, a link to `Cust`: catalog version 7), rows 0..n
/// committed and checkpointed. Returned open, as a server holds it.
pub(super) fn create(dir: &Path, n: i64) -> Catalog {
    let mut cat = Catalog::create(dir).unwrap();
    cat.create_table(schema("Cust", &[("id", TypeId::Int, true), ("name", TypeId::Str, true)])).unwrap();
    cat.create_index_unique("Cust", "id", true).unwrap();
    let ord = [("id", TypeId::Int, true), ("cust", TypeId::Int, false), ("doc", TypeId::Json, false)];
    cat.create_table(schema("Ord", &ord)).unwrap();
    cat.create_index("Ord", "id").unwrap();
    let path = StoredJsonPathV1::new("doc", vec![StoredJsonPathSegmentV1::Key("kind".into())]);
    cat.create_expression_index_metadata("Ord", 1, path.canonical_text(), path, false).unwrap();
    let link = LinkDef {
        owner_type: "Ord".into(),
        name: "customer".into(),
        target_type: "Cust".into(),
        local_key: "cust".into(),
        target_key: "id".into(),
        kind: LinkKind::ToOne,
    };
    cat.create_link(link).unwrap();
    insert(&mut cat, 0..n);
    cat.checkpoint().unwrap();
    cat
}

/// Autocommit inserts, each committed (Commit record written and fsynced)
/// as the server's executor does.
pub(super) fn insert(cat: &mut Catalog, ids: Range<i64>) {
    for i in ids {
        let name = if i % 25 == 7 { format!("c{i}-{}", "x".repeat(6000)) } else { format!("c{i}") };
        cat.insert("Cust", &vec![Value::Int(i), Value::Str(name)]).unwrap();
        let doc = parse_json_text(&format!(r#"{{"kind":"k{}","n":{i}}}"#, i % 4)).unwrap();
        let cust = if i % 3 == 0 { Value::Empty } else { Value::Int(i) };
        cat.insert("Ord", &vec![Value::Int(i), cust, Value::Json(doc.into_boxed_slice())]).unwrap();
        cat.commit_autocommit().unwrap();
    }
}

/// A killed server: what was committed is in the WAL, nothing more reaches
/// the heaps or index files.
pub(super) fn crash(mut cat: Catalog) {
    cat.abandon_untrusted_state();
    drop(cat);
}

/// What the online copy stages: every file but the index files and locks.
pub(super) fn stage(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let skip = name.ends_with(".idx") || name.ends_with(".eidx") || name == "LOCK" || name == "readers";
        if !skip {
            fs::copy(from.join(&name), to.join(&name)).unwrap();
        }
    }
}

/// Every table's rows, sorted, read through a read-only open.
pub(super) fn contents(dir: &Path) -> BTreeMap<String, Vec<Row>> {
    let cat = Catalog::open_read_only(dir).unwrap();
    let mut out = BTreeMap::new();
    for table in cat.list_tables() {
        let mut rows: Vec<Row> =
            cat.scan(table).unwrap().map(|item| cat.get(table, item.unwrap().0).unwrap().unwrap()).collect();
        rows.sort();
        out.insert(table.to_string(), rows);
    }
    out
}

/// The source's own recovery (a restart), for comparison.
pub(super) fn recovered(dir: &Path) -> BTreeMap<String, Vec<Row>> {
    drop(Catalog::open(dir).unwrap());
    contents(dir)
}

pub(super) fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    names
}

/// A source with 40 checkpointed rows and 20 more committed in its WAL
/// only, crashed; and its staged copy (inside a parent of its own).
fn crashed_source(tmp: &TempDir) -> (PathBuf, PathBuf) {
    let source = tmp.path("source");
    let mut cat = create(&source, 40);
    insert(&mut cat, 40..60);
    crash(cat);
    let staged = tmp.path("parent").join("staged");
    stage(&source, &staged);
    (source, staged)
}

#[test]
fn a_crash_image_recovers_every_committed_row_and_its_indexes() {
    let tmp = TempDir::new();
    let (source, staged) = crashed_source(&tmp);
    assert!(fs::metadata(staged.join("wal.log")).unwrap().len() > 8, "the staged WAL holds the tail");

    let done = finalize(&staged).unwrap();

    assert_eq!(done.catalog_version, 7);
    assert!(done.max_lsn > 0);
    let summary: Vec<(&str, u64, usize)> =
        done.tables.iter().map(|t| (t.name.as_str(), t.rows, t.indexes.len())).collect();
    assert_eq!(summary, [("Cust", 60, 1), ("Ord", 60, 2)]);
    assert_eq!(done.tables[1].indexes[0], "id");
    assert!(done.tables[1].indexes[1].starts_with("expr:"), "{:?}", done.tables[1].indexes);
    assert_eq!(fs::read(staged.join("wal.log")).unwrap(), b"PWAL\x01\x00\x00\x00");
    let listing = names(&staged);
    for file in ["Cust_id.idx", "Ord_id.idx", "Ord_1.eidx"] {
        assert!(listing.contains(&file.to_string()), "{file} rebuilt: {listing:?}");
    }
    assert!(!listing.iter().any(|n| n == "LOCK" || n == "readers" || n.contains(".tmp")), "{listing:?}");
    assert_eq!(names(&tmp.path("parent")), ["staged"], "nothing written beside the staged copy");
    assert_eq!(contents(&staged), recovered(&source));
    done.check_rows(&[("Cust".into(), 60), ("Ord".into(), 60)]).unwrap();
    // Finalizing again finds the same: the result is a stopped directory.
    assert_eq!(finalize(&staged).unwrap(), done);
}

#[test]
fn an_uncommitted_transaction_in_the_wal_is_not_recovered() {
    let tmp = TempDir::new();
    let source = tmp.path("source");
    let mut cat = create(&source, 10);
    insert(&mut cat, 10..15);
    cat.begin_transaction().unwrap();
    cat.insert("Cust", &vec![Value::Int(99), Value::Str("open".into())]).unwrap();
    cat.sync_wal().unwrap();
    crash(cat);
    let staged = tmp.path("staged");
    stage(&source, &staged);

    let done = finalize(&staged).unwrap();

    assert_eq!(done.tables[0].rows, 15);
    assert_eq!(contents(&staged), recovered(&source));
}

/// Half of page 2 over page 1: a copy that read a page while it was written.
#[test]
fn a_torn_heap_page_fails_naming_table_and_page() {
    let tmp = TempDir::new();
    let (_, staged) = crashed_source(&tmp);
    let heap = staged.join("Ord.heap");
    let mut bytes = fs::read(&heap).unwrap();
    assert!(bytes.len() >= 3 * 4096);
    let (head, tail) = bytes.split_at_mut(2 * 4096);
    head[4096 + 2048..2 * 4096].copy_from_slice(&tail[2048..4096]);
    fs::write(&heap, bytes).unwrap();

    let err = finalize(&staged).unwrap_err();

    assert_eq!(err.code, ERR_FINALIZE);
    assert!(err.message.contains("the engine cannot open"), "{err}");
    assert!(err.message.contains("Ord") && err.message.contains("page 1"), "{err}");
    assert!(!staged.join("LOCK").exists());
}

/// A large value's overflow page torn in the copy: the engine refuses it
/// too (its message names the page, not the table).
#[test]
fn a_torn_overflow_page_fails_naming_the_page() {
    let tmp = TempDir::new();
    let source = tmp.path("source");
    drop(create(&source, 40));
    let staged = tmp.path("staged");
    stage(&source, &staged);
    let heap = staged.join("Cust.heap");
    let mut bytes = fs::read(&heap).unwrap();
    let page = bytes.chunks(4096).position(|p| p[4] == 3).expect("an overflow page");
    bytes[page * 4096 + 3000] ^= 0xff;
    fs::write(&heap, bytes).unwrap();

    let err = finalize(&staged).unwrap_err();

    assert_eq!(err.code, ERR_FINALIZE);
    assert!(err.message.contains(&format!("page {page} CRC32 mismatch")), "{err}");
    assert!(!staged.join("LOCK").exists());
}

/// Heaps copied at an earlier moment, and a WAL that no longer holds what
/// came after: it opens and verifies, so only the server's counts tell.
#[test]
fn heaps_from_an_earlier_moment_with_an_empty_wal_lose_rows_and_the_counts_say_so() {
    let tmp = TempDir::new();
    let source = tmp.path("source");
    let mut cat = create(&source, 40);
    let staged = tmp.path("staged");
    stage(&source, &staged);
    insert(&mut cat, 40..60);
    cat.checkpoint().unwrap();
    drop(cat);

    let done = finalize(&staged).unwrap();

    assert_ne!(contents(&staged), contents(&source));
    let err = done.check_rows(&[("Cust".into(), 60), ("Ord".into(), 60)]).unwrap_err();
    assert_eq!(err.code, ERR_FINALIZE);
    assert_eq!(err.message, "table Cust: the finalized copy holds 40 rows, the server held 60");
    let missing = done.check_rows(&[("Cust".into(), 40)]).unwrap_err();
    assert_eq!(missing.message, "table Ord is in the finalized copy, not on the server");
}

/// A copy that kept an index file from before later inserts, with nothing
/// to replay: the engine loads it as is, and verify must notice.
#[test]
fn a_stale_index_file_is_caught_by_verify() {
    let tmp = TempDir::new();
    let source = tmp.path("source");
    let mut cat = create(&source, 40);
    let stale = fs::read(source.join("Cust_id.idx")).unwrap();
    insert(&mut cat, 40..60);
    cat.checkpoint().unwrap();
    drop(cat);
    let staged = tmp.path("staged");
    stage(&source, &staged);
    fs::write(staged.join("Cust_id.idx"), stale).unwrap();

    let err = finalize(&staged).unwrap_err();

    assert_eq!(err.code, ERR_FINALIZE);
    assert!(err.message.starts_with("index Cust.id: row "), "{err}");
    assert!(err.message.contains("is not found through it"), "{err}");
    assert!(!staged.join("LOCK").exists());
}

#[test]
fn a_sync_enabled_copy_is_refused_untouched() {
    let tmp = TempDir::new();
    let (_, staged) = crashed_source(&tmp);
    fs::create_dir(staged.join(".powdb-sync")).unwrap();
    fs::write(staged.join(".powdb-sync/identity.json"), "{}").unwrap();
    let before = names(&staged);
    let wal = fs::read(staged.join("wal.log")).unwrap();

    let err = finalize(&staged).unwrap_err();

    assert_eq!(err.code, "ERR_SYNC_ENABLED");
    assert!(err.message.contains("a staged copy leaves .powdb-sync/ out"), "{err}");
    assert_eq!(names(&staged), before);
    assert_eq!(fs::read(staged.join("wal.log")).unwrap(), wal);
}

#[test]
fn a_catalog_version_the_engine_does_not_know_is_refused_untouched() {
    let tmp = TempDir::new();
    let (_, staged) = crashed_source(&tmp);
    let path = staged.join("catalog.bin");
    let mut catalog = fs::read(&path).unwrap();
    catalog[4..6].copy_from_slice(&8u16.to_le_bytes());
    let end = catalog.len() - 4;
    let crc = crc32fast::hash(&catalog[..end]);
    catalog[end..].copy_from_slice(&crc.to_le_bytes());
    fs::write(&path, catalog).unwrap();
    let before = names(&staged);

    let err = finalize(&staged).unwrap_err();

    assert_eq!(err.code, "ERR_UNSUPPORTED_FORMAT");
    assert!(err.message.ends_with("catalog version 8 is not one the PowDB 0.29 engine reads (1 to 7)"), "{err}");
    assert_eq!(names(&staged), before);
}

#[test]
fn an_engine_open_error_carries_the_engines_message() {
    let tmp = TempDir::new();
    let (_, staged) = crashed_source(&tmp);
    fs::write(staged.join("Cust.heap"), b"").unwrap();

    let err = finalize(&staged).unwrap_err();

    assert_eq!(err.code, ERR_FINALIZE);
    let opening = format!("the engine cannot open the staged copy {}: ", staged.display());
    assert!(err.message.starts_with(&opening), "{err}");
    assert!(err.message.contains("table 'Cust': heap file is empty"), "{err}");
    assert!(!staged.join("LOCK").exists());

    fs::remove_file(staged.join("Cust.heap")).unwrap();
    let err = finalize(&staged).unwrap_err();
    assert!(err.message.contains("(a table's .heap file is missing): No such file"), "{err}");
}

#[test]
fn a_copy_holding_a_lock_reader_or_temp_file_is_refused() {
    for name in ["LOCK", "catalog.bin.tmp", ".Cust.heap.tmp.12.34"] {
        let tmp = TempDir::new();
        let (_, staged) = crashed_source(&tmp);
        fs::write(staged.join(name), "1").unwrap();
        let err = finalize(&staged).unwrap_err();
        assert_eq!(err.code, ERR_FINALIZE);
        assert!(err.message.contains(&format!("holds {name}, which a copy must skip")), "{err}");
    }
}

/// After the engine: our LOCK goes; another process's LOCK, a reader lock
/// or a temp file is reported, not removed.
#[test]
fn what_the_engine_leaves_behind_is_reported() {
    let tmp = TempDir::new();
    let dir = tmp.path("d");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("LOCK"), std::process::id().to_string()).unwrap();
    remove_lock_and_check(&dir).unwrap();
    assert_eq!(names(&dir), Vec::<String>::new());
    for name in ["LOCK", "readers", "Ord_1.eidx.tmp"] {
        fs::write(dir.join(name), "1").unwrap();
        let err = remove_lock_and_check(&dir).unwrap_err();
        assert_eq!(err.message, format!("{name} is left in {} after finalize", dir.display()));
        fs::remove_file(dir.join(name)).unwrap();
    }
}

#[test]
fn not_a_data_directory() {
    let tmp = TempDir::new();
    let err = finalize(&tmp.path("none")).unwrap_err();
    assert_eq!(err.code, "ENOENT");
    fs::create_dir(tmp.path("empty")).unwrap();
    assert_eq!(finalize(&tmp.path("empty")).unwrap_err().code, "ERR_NOT_A_DATA_DIR");
}

#[test]
fn an_engine_panic_is_an_error() {
    let err = guarded("testing", || -> Result<(), CoreError> { panic!("boom") }).unwrap_err();
    assert_eq!(err.message, "testing: the engine panicked: boom");
}
