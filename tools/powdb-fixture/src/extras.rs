//! `extras` (0.29 only): what a fixture-shaped database lacks for table-level
//! restore tests, added beside an existing table `target` (fixture shape, `id`
//! Int): table `Doc` (`id` Int required, `owner` Int, `doc` Json, `note` Str)
//! with a unique index on `id`, an expression index on `doc.kind` and a link
//! `Doc.owner` to `target.id`; a materialized view `Big` over `target` (its
//! backing table in the catalog, its definition in `views.bin`). Every 7th
//! `note` is an overflow value (9 KB). With `--no-link` the link is left out
//! and the catalog stays at version 6.

use std::path::Path;

use engine_new::catalog::{Catalog, LinkDef, LinkKind};
use engine_new::dir_lock::DirLock;
use engine_new::pj1::parse_json_text;
use engine_new::stored_json_path::{StoredJsonPathSegmentV1, StoredJsonPathV1};
use engine_new::types::{ColumnDef, Schema, TypeId, Value};
use engine_new::view::{ViewDef, ViewRegistry};
use serde_json::{json, Value as Json};

use crate::db::Result;

fn schema(table: &str, columns: &[(&str, TypeId, bool)]) -> Schema {
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

pub fn run(dir: &Path, target: &str, rows: u64, link: bool) -> Result<Json> {
    let _lock = DirLock::acquire(dir)?;
    let mut cat = Catalog::open(dir).map_err(|e| format!("opening {}: {e}", dir.display()))?;
    if cat.schema(target).is_none() {
        return Err(format!("no table {target} to link to").into());
    }
    let cols = [("id", TypeId::Int, true), ("owner", TypeId::Int, false), ("doc", TypeId::Json, false)];
    let mut cols = cols.to_vec();
    cols.push(("note", TypeId::Str, false));
    cat.create_table(schema("Doc", &cols))?;
    cat.create_index_unique("Doc", "id", true)?;
    let path = StoredJsonPathV1::new("doc", vec![StoredJsonPathSegmentV1::Key("kind".into())]);
    cat.create_expression_index_metadata("Doc", 1, path.canonical_text(), path, false)?;
    if link {
        cat.create_link(LinkDef {
            owner_type: "Doc".into(),
            name: "owner_row".into(),
            target_type: target.into(),
            local_key: "owner".into(),
            target_key: "id".into(),
            kind: LinkKind::ToOne,
        })?;
    }
    for i in 0..rows as i64 {
        let doc = parse_json_text(&format!(r#"{{"kind":"k{}","n":{i},"s":"a,\"b\"\n"}}"#, i % 4))
            .map_err(|e| format!("json: {e:?}"))?;
        let owner = if i % 3 == 0 { Value::Empty } else { Value::Int(i) };
        let note = if i % 7 == 3 { format!("n{i}-{}", "y".repeat(9000)) } else { format!("note {i}") };
        let row = vec![Value::Int(i), owner, Value::Json(doc.into_boxed_slice()), Value::Str(note)];
        cat.insert("Doc", &row)?;
        cat.commit_autocommit()?;
    }
    cat.create_table(schema("Big", &[("id", TypeId::Int, true)]))?;
    for i in (0..rows as i64).step_by(5) {
        cat.insert("Big", &vec![Value::Int(i)])?;
        cat.commit_autocommit()?;
    }
    let def = ViewDef {
        name: "Big".into(),
        query: format!("{target} filter .id > 3 {{ .id }}"),
        depends_on: vec![target.into()],
        dirty: true,
    };
    ViewRegistry::open(dir)?.register(def)?;
    cat.checkpoint()?;
    let lsn = cat.max_lsn();
    drop(cat);
    Ok(json!({ "ok": true, "tables": ["Doc", "Big"], "max_lsn": lsn }))
}
