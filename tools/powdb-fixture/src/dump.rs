//! `dump`: a deterministic summary of a database's logical content, so
//! tests can compare a source with its restore: per table the row count, an
//! order-independent hash of every row, the schema, the indexes and whether
//! they agree with the rows, and (0.29) the heap format of its superblock.

use std::path::Path;

use serde_json::{json, Map, Value};

use crate::db::Result;
use crate::db::{Db, IndexName};
use crate::heapfile;
use crate::rows::{scan_all, Scanned};
use crate::value::{position, Column, Val};

/// At most this many index problems are listed per table.
const MAX_PROBLEMS: usize = 5;

pub fn run<D: Db>(dir: &Path) -> Result<Value> {
    let db = D::open_snapshot(dir).map_err(|e| format!("opening {}: {e}", dir.display()))?;
    let mut names = db.tables();
    // Sorted, so the output never depends on catalog order (nor on whether
    // serde_json keeps insertion order).
    names.sort();
    let mut tables = Map::new();
    for table in names {
        let summary = table_dump(&db, dir, &table)?;
        tables.insert(table, summary);
    }
    db.close()?;
    Ok(json!({ "tables": tables }))
}

fn table_dump<D: Db>(db: &D, dir: &Path, table: &str) -> Result<Value> {
    let columns = db.columns(table)?;
    let rows = scan_all(db, table)?;
    let schema: Vec<Value> =
        columns.iter().map(|c| json!({"name": c.name, "type": c.ty.name(), "required": c.required})).collect();
    let mut indexes = Vec::new();
    let mut problems = Vec::new();
    for index in db.indexes(table) {
        match index {
            IndexName::Column(column) => {
                check_index(db, table, &columns, &rows, &column, &mut problems)?;
                indexes.push(column);
            }
            // Listed, not checked: the fixture never creates one, and its
            // keys are derived from a Json value, not stored as is.
            IndexName::Expression(text) => indexes.push(format!("expr:{text}")),
        }
    }
    let index_ok = problems.is_empty();
    problems.truncate(MAX_PROBLEMS);
    let (heap_format, overflow_pages) = if D::CAPS.heap_superblock {
        let info = heapfile::inspect(&dir.join(format!("{table}.heap")))?;
        (json!(info.format), json!(info.overflow_pages))
    } else {
        (Value::Null, Value::Null)
    };
    Ok(json!({
        "count": rows.len(),
        "rows_hash": rows_hash(&rows),
        "schema": schema,
        "indexes": indexes,
        "index_ok": index_ok,
        "index_problems": problems,
        "heap_format": heap_format,
        "overflow_pages": overflow_pages,
    }))
}

/// BLAKE3 of each row's full value list, the digests sorted (so scan order
/// does not matter but duplicate rows still count), then BLAKE3 of the row
/// count followed by the sorted digests.
fn rows_hash<R>(rows: &[Scanned<R>]) -> String {
    let mut buf = Vec::new();
    let mut digests: Vec<[u8; 32]> = rows
        .iter()
        .map(|s| {
            buf.clear();
            buf.extend_from_slice(&(s.row.len() as u64).to_le_bytes());
            for v in &s.row {
                v.encode_into(&mut buf);
            }
            *blake3::hash(&buf).as_bytes()
        })
        .collect();
    digests.sort_unstable();
    let mut all = blake3::Hasher::new();
    all.update(&(digests.len() as u64).to_le_bytes());
    for d in &digests {
        all.update(d);
    }
    all.finalize().to_hex().to_string()
}

/// Every row with a value in `column` must be found through the index at
/// its own address, and the index must hold exactly one entry per such row
/// (the engines do not index Empty cells).
fn check_index<D: Db>(
    db: &D,
    table: &str,
    columns: &[Column],
    rows: &[Scanned<D::Rid>],
    column: &str,
    problems: &mut Vec<String>,
) -> Result<()> {
    let Some(pos) = position(columns, column) else {
        problems.push(format!("{table}.{column}: index on a column the schema does not have"));
        return Ok(());
    };
    let mut valued = 0usize;
    let mut missing = Vec::new();
    for s in rows {
        let key = &s.row[pos];
        if matches!(key, Val::Empty) {
            continue;
        }
        valued += 1;
        let rids = db.index_rids(table, column, key)?;
        if !rids.contains(&s.rid) {
            missing.push(format!(
                "{table}.{column}: row {:?} with value {} not found through the index ({} other entries for it)",
                s.rid,
                key.short(),
                rids.len()
            ));
        }
    }
    // The count first: it summarises what the row list (cut to
    // MAX_PROBLEMS) may only begin to show.
    if let Some(entries) = db.index_entries(table, column) {
        if entries != valued {
            problems
                .push(format!("{table}.{column}: index holds {entries} entries, the table {valued} rows with a value"));
        }
    }
    problems.append(&mut missing);
    Ok(())
}
