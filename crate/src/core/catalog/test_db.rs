//! Databases made by the linked engine (powdb-storage 0.29.0) for the
//! catalog tests, and the restore of a subset the way a caller does it.
use super::{CatalogFile, Subset, TableChoice, Views};
use powdb_storage::catalog::{Catalog, LinkDef, LinkKind};
use powdb_storage::pj1::parse_json_text;
use powdb_storage::stored_json_path::{StoredJsonPathSegmentV1, StoredJsonPathV1};
use powdb_storage::types::{ColumnDef, Row, Schema, TypeId, Value};
use powdb_storage::view::{ViewDef, ViewRegistry};
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::Path;

/// How much of the schema a database gets: catalog version 5 (column
/// indexes, defaults, auto columns), 6 (an expression index too) or 7
/// (a link too).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Shape {
    V5,
    V6,
    V7,
}

pub fn schema(table: &str, columns: &[(&str, TypeId, bool)]) -> Schema {
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

/// Builds the database, recording `catalog.bin` after every DDL step in
/// `snapshots`. Tables: `Cust` (unique index, overflow names), `Prod`
/// (default, auto column, a column added after rows), `Note` (dropped and
/// re-created with other columns, overflow bodies); from V6 `Ord` (index,
/// JSON column with an expression index) and a view `Big` over `Cust`
/// with its backing table; from V7 the link `Ord.customer` to `Cust`.
pub fn build(dir: &Path, shape: Shape, snapshots: &mut Vec<Vec<u8>>) -> Catalog {
    let mut cat = Catalog::create(dir).unwrap();
    let mut snap = |cat: &Catalog| snapshots.push(fs::read(cat.data_dir().join("catalog.bin")).unwrap());
    cat.create_table(schema("Cust", &[("id", TypeId::Int, true), ("name", TypeId::Str, true)])).unwrap();
    cat.create_index_unique("Cust", "id", true).unwrap();
    snap(&cat);
    prod(&mut cat);
    snap(&cat);
    note(&mut cat);
    snap(&cat);
    if shape != Shape::V5 {
        ord(&mut cat);
        snap(&cat);
        view(&mut cat);
        snap(&cat);
    }
    if shape == Shape::V7 {
        cat.create_link(LinkDef {
            owner_type: "Ord".into(),
            name: "customer".into(),
            target_type: "Cust".into(),
            local_key: "cust".into(),
            target_key: "id".into(),
            kind: LinkKind::ToOne,
        })
        .unwrap();
        snap(&cat);
    }
    fill(&mut cat, shape, 0..60);
    cat.checkpoint().unwrap();
    snap(&cat);
    cat
}

fn prod(cat: &mut Catalog) {
    let cols = [("id", TypeId::Int, true), ("label", TypeId::Str, true), ("qty", TypeId::Int, false)];
    let defaults = vec![None, Some(Value::Str("none".into())), Some(Value::Int(7))];
    cat.create_table_full(schema("Prod", &cols), defaults, vec![true, false, false]).unwrap();
    cat.create_index("Prod", "label").unwrap();
    for i in 0..20 {
        let mut row = vec![Value::Empty, Value::Str(format!("p{i}")), Value::Int(i)];
        cat.assign_auto_columns("Prod", &mut row).unwrap();
        cat.insert("Prod", &row).unwrap();
        cat.commit_autocommit().unwrap();
    }
    let extra = ColumnDef { name: "extra".into(), type_id: TypeId::Str, required: false, position: 3 };
    cat.alter_table_add_column("Prod", extra).unwrap();
}

fn note(cat: &mut Catalog) {
    cat.create_table(schema("Note", &[("id", TypeId::Int, true), ("old", TypeId::Float, false)])).unwrap();
    cat.insert("Note", &vec![Value::Int(1), Value::Float(1.5)]).unwrap();
    cat.commit_autocommit().unwrap();
    cat.drop_table("Note").unwrap();
    cat.create_table(schema("Note", &[("id", TypeId::Int, true), ("body", TypeId::Str, false)])).unwrap();
    cat.create_index("Note", "id").unwrap();
}

fn ord(cat: &mut Catalog) {
    let cols = [("id", TypeId::Int, true), ("cust", TypeId::Int, false), ("doc", TypeId::Json, false)];
    cat.create_table(schema("Ord", &cols)).unwrap();
    cat.create_index("Ord", "id").unwrap();
    let path = StoredJsonPathV1::new("doc", vec![StoredJsonPathSegmentV1::Key("kind".into())]);
    cat.create_expression_index_metadata("Ord", 1, path.canonical_text(), path, false).unwrap();
}

/// The view `Big` (customers with an overflow name): its backing table in
/// the catalog, its definition in `views.bin`.
fn view(cat: &mut Catalog) {
    cat.create_table(schema("Big", &[("id", TypeId::Int, true)])).unwrap();
    let def = ViewDef {
        name: "Big".into(),
        query: "Cust filter .name.len() > 1000 { .id }".into(),
        depends_on: vec!["Cust".into()],
        dirty: true,
    };
    ViewRegistry::open(cat.data_dir()).unwrap().register(def).unwrap();
}

fn fill(cat: &mut Catalog, shape: Shape, ids: std::ops::Range<i64>) {
    for i in ids {
        let name = if i % 25 == 7 { format!("c{i}-{}", "x".repeat(6000)) } else { format!("c{i}") };
        cat.insert("Cust", &vec![Value::Int(i), Value::Str(name)]).unwrap();
        let body = if i % 20 == 3 { Value::Str("n".repeat(9000)) } else { Value::Str(format!("note {i}")) };
        cat.insert("Note", &vec![Value::Int(i), body]).unwrap();
        if shape != Shape::V5 {
            let doc = parse_json_text(&format!(r#"{{"kind":"k{}","n":{i}}}"#, i % 4)).unwrap();
            let cust = if i % 3 == 0 { Value::Empty } else { Value::Int(i) };
            cat.insert("Ord", &vec![Value::Int(i), cust, Value::Json(doc.into_boxed_slice())]).unwrap();
            if i % 25 == 7 {
                cat.insert("Big", &vec![Value::Int(i)]).unwrap();
            }
        }
        cat.commit_autocommit().unwrap();
    }
}

/// Every table's rows, sorted, through a read-only open.
pub fn contents(dir: &Path) -> BTreeMap<String, Vec<Row>> {
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

/// What a restore of some tables does: the filtered catalog, the kept
/// tables' files (index files only when `with_indexes`), `catalog.lsn`,
/// the filtered `views.bin`.
pub fn restore(source: &Path, dest: &Path, choices: &[TableChoice], with_indexes: bool) -> Subset {
    let catalog = CatalogFile::parse(&fs::read(source.join("catalog.bin")).unwrap()).unwrap();
    let subset = catalog.select(choices).unwrap();
    fs::create_dir_all(dest).unwrap();
    fs::write(dest.join("catalog.bin"), &subset.catalog).unwrap();
    for file in subset.files.iter().filter(|f| f.required || with_indexes) {
        match fs::copy(source.join(&file.from), dest.join(&file.to)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound && !file.required => {}
            other => assert!(other.is_ok(), "{file:?}: {other:?}"),
        }
    }
    if source.join("catalog.lsn").exists() {
        fs::copy(source.join("catalog.lsn"), dest.join("catalog.lsn")).unwrap();
    }
    if let Ok(bytes) = fs::read(source.join("views.bin")) {
        let views = Views::parse(&bytes).unwrap().select(&subset.tables);
        fs::write(dest.join("views.bin"), views.bytes).unwrap();
    }
    subset
}
