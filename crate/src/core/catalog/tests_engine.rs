//! The catalog against databases the linked engine made: every catalog it
//! wrote re-encodes to the same bytes, and a subset of tables (renamed or
//! not) opens read-write, verifies and holds exactly the source's rows.
use super::test_db::{build, contents, restore, Shape};
use super::{CatalogFile, FileCopy, PathSegment, TableChoice, Views};
use crate::core::engine::finalize;
use crate::core::test_support::TempDir;
use powdb_storage::catalog::Catalog;
use powdb_storage::types::Value;
use std::fs;
use std::path::{Path, PathBuf};

const SHAPES: [Shape; 3] = [Shape::V5, Shape::V6, Shape::V7];

fn source(tmp: &TempDir, shape: Shape) -> (PathBuf, Vec<Vec<u8>>) {
    let dir = tmp.path("source");
    let mut snapshots = Vec::new();
    drop(build(&dir, shape, &mut snapshots));
    snapshots.push(fs::read(dir.join("catalog.bin")).unwrap());
    (dir, snapshots)
}

#[test]
fn every_catalog_the_engine_wrote_reencodes_byte_for_byte() {
    for shape in SHAPES {
        let tmp = TempDir::new();
        let (dir, snapshots) = source(&tmp, shape);
        assert!(snapshots.len() >= 5, "{shape:?}");
        for bytes in &snapshots {
            let parsed = CatalogFile::parse(bytes).unwrap();
            assert_eq!(&parsed.encode(), bytes, "{shape:?} version {}", parsed.version);
            let all: Vec<TableChoice> = parsed.tables.iter().map(|t| TableChoice::keep(&t.name)).collect();
            let subset = parsed.select(&all).unwrap();
            assert_eq!(&subset.catalog, bytes);
            assert!(subset.dropped_links.is_empty());
        }
        let versions: Vec<u16> = snapshots.iter().map(|b| CatalogFile::parse(b).unwrap().version).collect();
        let expected = match shape {
            Shape::V5 => 5,
            Shape::V6 => 6,
            Shape::V7 => 7,
        };
        assert_eq!(*versions.last().unwrap(), expected, "{versions:?}");
        if let Ok(bytes) = fs::read(dir.join("views.bin")) {
            assert_eq!(Views::parse(&bytes).unwrap().encode(), bytes);
        }
    }
}

#[test]
fn the_parsed_catalog_says_what_the_engine_holds() {
    let tmp = TempDir::new();
    let (dir, _) = source(&tmp, Shape::V7);
    let parsed = CatalogFile::parse(&fs::read(dir.join("catalog.bin")).unwrap()).unwrap();
    let engine = Catalog::open_read_only(&dir).unwrap();
    assert_eq!((parsed.version, parsed.next_index_id), (engine.active_catalog_version(), Some(engine.next_index_id())));
    let mut names = parsed.table_names();
    let mut engine_names = engine.list_tables();
    names.sort();
    engine_names.sort();
    assert_eq!(names, engine_names);
    for table in &parsed.tables {
        let schema = engine.schema(&table.name).unwrap();
        let columns: Vec<(&str, bool)> = table.columns.iter().map(|c| (c.name.as_str(), c.required)).collect();
        let engine_columns: Vec<(&str, bool)> = schema.columns.iter().map(|c| (c.name.as_str(), c.required)).collect();
        assert_eq!(columns, engine_columns, "{}", table.name);
        for index in &table.indexes {
            assert_eq!(engine.is_index_unique(&table.name, &index.column), Some(index.unique));
        }
    }
    let prod = parsed.table("Prod").unwrap();
    let types: Vec<&str> = prod.columns.iter().map(|c| c.type_name).collect();
    assert_eq!(types, ["int", "str", "int", "str"]);
    assert_eq!((prod.defaults.as_slice(), prod.auto_columns.as_slice()), (&[1u16, 2][..], &[0u16][..]));
    let note = parsed.table("Note").unwrap();
    assert_eq!(note.columns[1].name, "body", "the re-created Note");
    let ord = parsed.table("Ord").unwrap();
    assert_eq!(ord.expression_indexes.len(), 1);
    let expr = &ord.expression_indexes[0];
    assert_eq!((expr.id, expr.column.as_str(), expr.unique), (1, "doc", false));
    assert_eq!(expr.path, [PathSegment::Key("kind".into())]);
    assert_eq!(parsed.links.len(), 1);
    let link = &parsed.links[0];
    assert_eq!((link.owner.as_str(), link.name.as_str(), link.target.as_str()), ("Ord", "customer", "Cust"));
    assert_eq!((link.local_key.as_str(), link.target_key.as_str(), link.kind), ("cust", "id", 0));
}

/// Restores `choices` from `source`, has the engine open (replay, index
/// rebuild, checkpoint) and verify it, and compares each kept table's rows
/// with the source's under its old name.
fn check_subset(source: &Path, dest: &Path, choices: &[TableChoice], with_indexes: bool) -> super::Subset {
    let subset = restore(source, dest, choices, with_indexes);
    let done = finalize(dest).unwrap_or_else(|e| panic!("{choices:?}: {e}"));
    let source_catalog = CatalogFile::parse(&fs::read(source.join("catalog.bin")).unwrap()).unwrap();
    assert_eq!(done.catalog_version, source_catalog.version);
    let restored = CatalogFile::parse(&fs::read(dest.join("catalog.bin")).unwrap()).unwrap();
    assert_eq!((restored.version, restored.next_index_id), (source_catalog.version, source_catalog.next_index_id));
    let before = contents(source);
    let after = contents(dest);
    assert_eq!(after.len(), subset.tables.len(), "{choices:?}");
    for (from, to) in &subset.tables {
        assert_eq!(after[to], before[from], "{from} restored as {to}");
        let indexes = source_catalog.table(from).map(|t| t.indexes.len() + t.expression_indexes.len());
        assert_eq!(done.tables.iter().find(|t| &t.name == to).map(|t| t.indexes.len()), indexes);
    }
    subset
}

#[test]
fn a_subset_of_tables_opens_verifies_and_holds_the_source_rows() {
    let keep = TableChoice::keep;
    let cases: Vec<(Shape, Vec<TableChoice>, bool)> = vec![
        (Shape::V7, vec![keep("Ord")], true),
        (Shape::V7, vec![keep("Ord")], false),
        (Shape::V7, vec![keep("Cust"), keep("Ord")], true),
        (Shape::V7, vec![TableChoice::renamed("Cust", "Client"), keep("Ord")], true),
        (Shape::V7, vec![TableChoice::renamed("Note", "NoteOld"), keep("Prod")], true),
        (Shape::V7, vec![keep("Big"), keep("Cust")], true),
        (Shape::V7, vec![keep("Big")], false),
        (Shape::V7, vec![TableChoice::renamed("Big", "Large"), TableChoice::renamed("Cust", "Client")], true),
        (Shape::V6, vec![keep("Ord"), keep("Prod")], true),
        (Shape::V5, vec![keep("Prod")], true),
        (Shape::V5, vec![TableChoice::renamed("Note", "N2"), keep("Cust")], false),
    ];
    for shape in SHAPES {
        let tmp = TempDir::new();
        let (dir, _) = source(&tmp, shape);
        for (i, (_, choices, with_indexes)) in cases.iter().enumerate().filter(|(_, c)| c.0 == shape) {
            check_subset(&dir, &tmp.path(&format!("subset{i}")), choices, *with_indexes);
        }
    }
}

#[test]
fn links_and_views_follow_the_kept_tables() {
    let tmp = TempDir::new();
    let (dir, _) = source(&tmp, Shape::V7);
    let alone = check_subset(&dir, &tmp.path("a"), &[TableChoice::keep("Ord")], true);
    assert!(alone.links.is_empty());
    assert_eq!(alone.dropped_links.len(), 1);
    assert_eq!(views(&tmp.path("a")), Vec::<String>::new());

    let renamed = [TableChoice::renamed("Cust", "Client"), TableChoice::keep("Ord"), TableChoice::keep("Big")];
    let both = check_subset(&dir, &tmp.path("b"), &renamed, true);
    assert_eq!(both.links.len(), 1);
    assert_eq!((both.links[0].owner.as_str(), both.links[0].target.as_str()), ("Ord", "Client"));
    assert_eq!(views(&tmp.path("b")), Vec::<String>::new(), "the view's query names Cust");

    let kept =
        check_subset(&dir, &tmp.path("c"), &[TableChoice::renamed("Big", "Large"), TableChoice::keep("Cust")], true);
    assert!(kept.links.is_empty());
    assert_eq!(kept.dropped_links.len(), 1, "Ord is not kept");
    assert_eq!(views(&tmp.path("c")), ["Large"]);
}

fn views(dir: &Path) -> Vec<String> {
    Views::parse(&fs::read(dir.join("views.bin")).unwrap()).unwrap().views.into_iter().map(|v| v.name).collect()
}

#[test]
fn the_files_of_a_table_follow_its_new_name() {
    let tmp = TempDir::new();
    let (dir, _) = source(&tmp, Shape::V7);
    let parsed = CatalogFile::parse(&fs::read(dir.join("catalog.bin")).unwrap()).unwrap();
    let subset = parsed.select(&[TableChoice::renamed("Ord", "Orders")]).unwrap();
    let file = |from: &str, to: &str, required| FileCopy { from: from.into(), to: to.into(), required };
    assert_eq!(
        subset.files,
        [
            file("Ord.heap", "Orders.heap", true),
            file("Ord_id.idx", "Orders_id.idx", false),
            file("Ord_1.eidx", "Orders_1.eidx", false)
        ]
    );
    for f in &subset.files {
        assert!(dir.join(&f.from).exists(), "{} is in the source", f.from);
    }
}

/// The restored table takes writes: an insert with its auto column gets the
/// next id after the restored rows, and survives a reopen.
#[test]
fn a_restored_table_accepts_writes() {
    let tmp = TempDir::new();
    let (dir, _) = source(&tmp, Shape::V7);
    let dest = tmp.path("d");
    check_subset(&dir, &dest, &[TableChoice::renamed("Prod", "Goods")], true);
    let mut cat = Catalog::open(&dest).unwrap();
    let mut row = vec![Value::Empty, Value::Str("new".into()), Value::Int(1), Value::Empty];
    cat.assign_auto_columns("Goods", &mut row).unwrap();
    assert_eq!(row[0], Value::Int(21), "ids 1 to 20 restored");
    cat.insert("Goods", &row).unwrap();
    cat.commit_autocommit().unwrap();
    cat.checkpoint().unwrap();
    drop(cat);
    finalize(&dest).unwrap();
    assert_eq!(contents(&dest)["Goods"].len(), 21);
}
