//! The changes a workload makes, each one a "statement": engine calls, then
//! the end-of-statement commit a server would do. Shared by `workload`
//! (random parameters) and the single-op commands (parameters from flags).
//! Every op works on any table shape through `Val` rows.

use serde_json::{json, Map, Value};

use crate::db::Result;
use crate::db::{Db, IndexName};
use crate::prng::Prng;
use crate::rows::{self, make_row, text, Scanned};
use crate::value::{position, row_size_bound, ColType, Column, Val};

/// Rows of a generation without overflow must fit one 4 KiB page (0.4.7:
/// `MAX_ROW_DATA_SIZE` = 4070 bytes); this bound on `row_size_bound` leaves
/// room for its header and slot entry.
pub const INLINE_LIMIT: usize = 3800;

/// What an op did: a line for `workload`, fields for the single commands.
pub struct Done {
    pub desc: String,
    pub json: Map<String, Value>,
}

fn done(desc: String, json: Value) -> Done {
    let Value::Object(json) = json else { unreachable!("op results are JSON objects") };
    Done { desc, json }
}

/// Whether `db` should store `row`: a generation without overflow pages
/// cannot, and in a sync-enabled directory a spilled row would break sync
/// (see [`Db::overflow`]).
pub fn storable<D: Db>(db: &D, row: &[Val]) -> bool {
    db.overflow() || row_size_bound(row) <= INLINE_LIMIT
}

/// Inserts `count` new rows with ids after the table's largest, each padded
/// to a random length in `pads`.
pub fn insert_rows<D: Db>(db: &mut D, table: &str, count: u64, pads: (usize, usize), rng: &mut Prng) -> Result<Done> {
    let columns = db.columns(table)?;
    let first = rows::next_id(&columns, &rows::scan_all(db, table)?);
    for id in first..first + count as i64 {
        let pad = rng.range(pads.0 as u64, pads.1 as u64) as usize;
        let mut row = make_row(&columns, id, pad, rng)?;
        if !storable(&*db, &row) {
            row = make_row(&columns, id, 0, rng)?;
        }
        db.insert_row(table, &row)?;
    }
    db.commit()?;
    let last = first + count as i64 - 1;
    Ok(done(
        format!("insert {count} rows into {table} (ids {first}..={last}, pad {}..{})", pads.0, pads.1),
        json!({"inserted": count, "first_id": first}),
    ))
}

/// Rewrites one fixed-width or same-length value of each target row, so
/// every row keeps its size and its page: an Int column other than `id`
/// (score + 1, Empty becomes 0; Empty and set cells take the same room), else
/// the last byte of a non-empty string.
pub fn update_in_place<D: Db>(db: &mut D, table: &str, targets: &[Scanned<D::Rid>]) -> Result<Done> {
    let columns = db.columns(table)?;
    let Some(col) = in_place_column(&columns) else {
        return Err(format!("table {table} has no column to update in place").into());
    };
    let mut updated = 0u64;
    for t in targets {
        let mut row = t.row.clone();
        row[col] = match &row[col] {
            Val::Int(v) => Val::Int(v.wrapping_add(1)),
            Val::Empty if columns[col].ty == ColType::Int => Val::Int(0),
            Val::Str(s) if !s.is_empty() && s.is_ascii() => {
                let last = if s.ends_with('z') { 'a' } else { 'z' };
                Val::Str(format!("{}{last}", &s[..s.len() - 1]))
            }
            _ => continue,
        };
        db.update_row(table, t.rid, &row)?;
        updated += 1;
    }
    db.commit()?;
    Ok(done(format!("update {updated} rows of {table} in place ({})", columns[col].name), json!({"updated": updated})))
}

/// The column `update_in_place` changes: an Int other than `id` (`score`
/// first), else a Str.
pub fn in_place_column(columns: &[Column]) -> Option<usize> {
    position(columns, "score")
        .filter(|&i| columns[i].ty == ColType::Int)
        .or_else(|| columns.iter().position(|c| c.ty == ColType::Int && c.name != "id"))
        .or_else(|| columns.iter().position(|c| c.ty == ColType::Str))
}

/// Sets `column` of each target row to a `bytes`-long string. Bigger than
/// the old value, the row no longer fits its (full) page and relocates; on
/// 0.29, beyond a page it spills to an overflow chain. Rows a generation
/// cannot store are skipped.
pub fn set_string<D: Db>(
    db: &mut D,
    table: &str,
    column: &str,
    targets: &[Scanned<D::Rid>],
    bytes: usize,
    what: &str,
) -> Result<Done> {
    let columns = db.columns(table)?;
    let col = position(&columns, column)
        .filter(|&i| columns[i].ty == ColType::Str)
        .ok_or_else(|| format!("table {table} has no Str column {column}"))?;
    let id_pos = rows::id_position(&columns);
    let (mut updated, mut relocated, mut skipped) = (0u64, 0u64, 0u64);
    for t in targets {
        let mut row = t.row.clone();
        let id = id_pos.and_then(|p| match row[p] {
            Val::Int(id) => Some(id),
            _ => None,
        });
        let prefix = format!("{what}-{}-", id.map_or(String::from("x"), |i| i.to_string()));
        row[col] = Val::Str(text(&prefix, bytes, 'g'));
        if !storable(&*db, &row) {
            skipped += 1;
            continue;
        }
        if db.update_row(table, t.rid, &row)? != t.rid {
            relocated += 1;
        }
        updated += 1;
    }
    db.commit()?;
    let skip_note = if skipped > 0 { format!(", {skipped} too big skipped") } else { String::new() };
    Ok(done(
        format!("{what} {updated} rows of {table}: {column} to {bytes} bytes ({relocated} relocated{skip_note})"),
        json!({"updated": updated, "relocated": relocated, "skipped": skipped}),
    ))
}

/// Inserts one row with id `id` whose `column` is `bytes` long: past a page
/// on 0.29 it spills into an overflow chain (heap superblock 2 -> 3).
pub fn insert_big<D: Db>(db: &mut D, table: &str, id: i64, column: &str, bytes: usize, rng: &mut Prng) -> Result<Done> {
    let columns = db.columns(table)?;
    let col = position(&columns, column)
        .filter(|&i| columns[i].ty == ColType::Str)
        .ok_or_else(|| format!("table {table} has no Str column {column}"))?;
    let mut row = make_row(&columns, id, 40, rng)?;
    row[col] = Val::Str(text(&format!("big-{id}-"), bytes, 'b'));
    // Only what the engine cannot do is refused here: in a sync-enabled
    // directory the row is written, and the engine then fails to archive its
    // overflow records (powdb-sync 0.29.0 accepts WAL record types 1..=10),
    // which is what `big` is for there. Random ops never get this far: the
    // workload leaves `Big` out when `db.overflow()` is false.
    if !D::CAPS.overflow && row_size_bound(&row) > INLINE_LIMIT {
        return Err(format!(
            "{} cannot store a {bytes}-byte value: it has no overflow pages, a row must fit one page",
            D::CAPS.name
        )
        .into());
    }
    db.insert_row(table, &row)?;
    db.commit()?;
    Ok(done(format!("insert a big row into {table} (id {id}, {column} {bytes} bytes)"), json!({"inserted": 1})))
}

pub fn delete_rows<D: Db>(db: &mut D, table: &str, targets: &[Scanned<D::Rid>]) -> Result<Done> {
    let rids: Vec<D::Rid> = targets.iter().map(|t| t.rid).collect();
    let deleted = db.delete_rows(table, &rids)?;
    db.commit()?;
    Ok(done(format!("delete {deleted} rows from {table}"), json!({"deleted": deleted})))
}

/// Creates `table` with `columns`, fills it with ids `0..rows`, then indexes
/// `indexes` (after the inserts, as `create --index` does).
pub fn create_table<D: Db>(
    db: &mut D,
    table: &str,
    columns: &[Column],
    rows: u64,
    pad: usize,
    indexes: &[String],
    rng: &mut Prng,
) -> Result<Done> {
    db.create_table_with(table, columns)?;
    for id in 0..rows as i64 {
        let mut row = make_row(columns, id, pad, rng)?;
        if !storable(&*db, &row) {
            row = make_row(columns, id, 0, rng)?;
        }
        db.insert_row(table, &row)?;
    }
    db.commit()?;
    for column in indexes {
        db.create_index(table, column)?;
    }
    let index_note = if indexes.is_empty() { String::new() } else { format!(", indexed on {}", indexes.join(",")) };
    Ok(done(format!("create table {table} with {rows} rows (pad {pad}{index_note})"), json!({"rows": rows})))
}

pub fn drop_table<D: Db>(db: &mut D, table: &str) -> Result<Done> {
    db.drop_table(table)?;
    db.commit()?;
    Ok(done(format!("drop table {table}"), json!({})))
}

/// Drops `table` and creates it again with the same columns and column
/// indexes, holding ids `0..rows`: a smaller or larger heap under the same
/// name.
pub fn recreate<D: Db>(db: &mut D, table: &str, rows: u64, pad: usize, rng: &mut Prng) -> Result<Done> {
    let columns = db.columns(table)?;
    let indexes = column_indexes(db, table);
    let before = rows::scan_all(db, table)?.len();
    db.drop_table(table)?;
    db.commit()?;
    let created = create_table(db, table, &columns, rows, pad, &indexes, rng)?;
    Ok(done(
        format!("re-create {table} (had {before} rows): {}", created.desc),
        json!({"rows": rows, "rows_before": before}),
    ))
}

/// The plain column indexes of `table` (expression indexes left out).
pub fn column_indexes<D: Db>(db: &D, table: &str) -> Vec<String> {
    db.indexes(table)
        .into_iter()
        .filter_map(|i| match i {
            IndexName::Column(c) => Some(c),
            IndexName::Expression(_) => None,
        })
        .collect()
}

pub fn create_index<D: Db>(db: &mut D, table: &str, column: &str) -> Result<Done> {
    let columns = db.columns(table)?;
    if position(&columns, column).is_none() {
        return Err(format!("table {table} has no column {column}").into());
    }
    db.create_index(table, column)?;
    db.commit()?;
    Ok(done(format!("create index on {table}.{column}"), json!({})))
}

/// Adds an optional column (existing rows get Empty; a required one cannot
/// be added to a non-empty table). Every row is rewritten by the engine.
pub fn add_column<D: Db>(db: &mut D, table: &str, column: &str, ty: ColType) -> Result<Done> {
    db.add_column(table, &Column::new(column, ty, false))?;
    db.commit()?;
    Ok(done(format!("alter {table} add column {column} {}", ty.name()), json!({})))
}

pub fn drop_column<D: Db>(db: &mut D, table: &str, column: &str) -> Result<Done> {
    if !D::CAPS.drop_column_keeps_indexes && !drop_column_safe(&db.columns(table)?, &column_indexes(db, table), column)
    {
        return Err(format!(
            "refusing to drop {table}.{column} on {}: it rebuilds indexes at stale column positions \
             (the column is indexed or precedes an indexed column)",
            D::CAPS.name
        )
        .into());
    }
    db.drop_column(table, column)?;
    db.commit()?;
    Ok(done(format!("alter {table} drop column {column}"), json!({})))
}

/// For 0.4.7: dropping `column` leaves every index's position valid only
/// when no indexed column sits at or after it.
pub fn drop_column_safe(columns: &[Column], indexes: &[String], column: &str) -> bool {
    let Some(pos) = position(columns, column) else {
        return false;
    };
    indexes.iter().filter_map(|i| position(columns, i)).all(|i| i < pos)
}

pub fn sweep<D: Db>(db: &mut D) -> Result<Done> {
    let Some(reclaimed) = db.sweep()? else {
        return Err(format!("{} has no overflow sweep", D::CAPS.name).into());
    };
    db.commit()?;
    Ok(done(format!("sweep overflow pages: {reclaimed} reclaimed"), json!({"reclaimed": reclaimed})))
}
