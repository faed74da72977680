//! The commands, written once against [`Db`] and run for either generation.

use std::io::{self, Write};
use std::path::Path;

use serde_json::{json, Map, Value};

use crate::args::{Command, Fill, IdRange, NewColumnType};
use crate::db::{self, open, Db, FixtureRow, Result};
use crate::ops::{self, Done};
use crate::prng::Prng;
use crate::rows::{self, Scanned};
use crate::value::{fixture_columns, ColType};
use crate::{dump, extras, sync, typed, workload};

/// Rows per "statement": the WAL is committed this often, as a server
/// committing batched inserts would, and `bulk` checks the heap size.
const BATCH: u64 = 10_000;

/// Runs `command`. Returns the JSON line to print, or `None` when the
/// command already printed its own output (`hold`).
pub fn run<D: Db>(command: &Command) -> Result<Option<Value>> {
    let out = match command {
        Command::Create { dir, table, fill } => fill_table(create_fresh::<D>(dir)?, table, fill)?,
        Command::Insert { dir, table, ids } => insert::<D>(dir, table, ids)?,
        Command::AddTable { dir, table, fill } => fill_table(open::<D>(dir)?, table, fill)?,
        Command::Update { dir, table, every } => update::<D>(dir, table, *every)?,
        Command::DropTable { dir, table } => drop_table::<D>(dir, table)?,
        Command::Dirty { dir, table, ids } => dirty::<D>(dir, table, ids)?,
        Command::Report { dir, ids } => report::<D>(dir, *ids)?,
        Command::Hold { dir } => return hold::<D>(dir).map(|()| None),
        Command::Bulk { dir, mib, pad } => bulk::<D>(dir, *mib, *pad)?,
        Command::Workload { dir, seed, ops, skip } => workload::run::<D>(dir, *seed, *ops, skip)?,
        Command::Dump { dir } => dump::run::<D>(dir)?,
        Command::Delete { dir, table, every } => single::<D>(dir, |db| {
            let targets = every_kth(db, table, *every)?;
            ops::delete_rows(db, table, &targets)
        })?,
        Command::Grow { dir, table, every, bytes } => single::<D>(dir, |db| {
            let targets = every_kth(db, table, *every)?;
            ops::set_string(db, table, "name", &targets, *bytes, "grow")
        })?,
        Command::Big { dir, table, id, bytes } => {
            single::<D>(dir, |db| ops::insert_big(db, table, *id, "name", *bytes, &mut Prng::new(0)))?
        }
        Command::CreateIndex { dir, table, column } => single::<D>(dir, |db| ops::create_index(db, table, column))?,
        Command::AddColumn { dir, table, column, ty } => single::<D>(dir, |db| {
            let ty = match ty {
                NewColumnType::Int => ColType::Int,
                NewColumnType::Str => ColType::Str,
            };
            ops::add_column(db, table, column, ty)
        })?,
        Command::DropColumn { dir, table, column } => single::<D>(dir, |db| ops::drop_column(db, table, column))?,
        Command::Recreate { dir, table, rows, pad } => {
            single::<D>(dir, |db| ops::recreate(db, table, *rows, *pad, &mut Prng::new(0)))?
        }
        Command::Sweep { dir } => single::<D>(dir, ops::sweep)?,
        Command::Extras { dir, target, rows, no_link } => {
            if !D::CAPS.sync {
                return Err(
                    format!("{} has no expression indexes or links: extras needs --gen new", D::CAPS.name).into()
                );
            }
            extras::run(dir, target, *rows, !*no_link)?
        }
        Command::Typed { dir, rows } => {
            if !D::CAPS.sync {
                return Err(format!("{} has no Json type: typed needs --gen new", D::CAPS.name).into());
            }
            typed::run(dir, *rows)?
        }
        Command::Rows { dir, table } => typed::rows::<D>(dir, table)?,
        Command::SyncEnable { dir } => sync::enable::<D>(dir)?,
        Command::Segments { dir, units } => sync::segments(dir, *units)?,
        Command::Tx { dir, table, from, count, pad, update_every, delete_every, rollback, crash } => {
            let end = match (rollback, crash) {
                (true, _) => TxEnd::Rollback,
                (_, true) => TxEnd::Crash,
                _ => TxEnd::Commit,
            };
            let work = TxWork {
                table,
                inserts: *from..from + count,
                pad: *pad,
                update_every: *update_every,
                delete_every: *delete_every,
            };
            tx::<D>(dir, &work, end)?
        }
    };
    Ok(Some(out))
}

/// Opens, runs one op, closes (checkpointed) and reports the op's fields
/// plus `ok` and `max_lsn`.
fn single<D: Db>(dir: &Path, op: impl FnOnce(&mut D) -> Result<Done>) -> Result<Value> {
    let mut db = open::<D>(dir)?;
    let done = op(&mut db)?;
    let lsn = db.max_lsn();
    db.close()?;
    let mut out = Map::new();
    out.insert("ok".into(), json!(true));
    out.extend(done.json);
    out.insert("max_lsn".into(), json!(lsn));
    Ok(Value::Object(out))
}

/// Rows 0, K, 2K, ... of `table` in scan order.
fn every_kth<D: Db>(db: &D, table: &str, every: u64) -> Result<Vec<Scanned<D::Rid>>> {
    let every = every.max(1) as usize;
    Ok(rows::scan_all(db, table)?.into_iter().step_by(every).collect())
}

/// Creates `table` in `db` (fresh for `create`, existing for `add-table`)
/// and fills it with ids `0..rows`.
fn fill_table<D: Db>(mut db: D, table: &str, fill: &Fill) -> Result<Value> {
    db.create_table(table)?;
    insert_ids(&mut db, table, 0, fill.rows, fill.pad)?;
    // After the inserts, so the index is built from the heap in one go.
    if fill.index {
        db.create_index(table, "id")?;
    }
    close_with_lsn(db)
}

fn insert<D: Db>(dir: &Path, table: &str, ids: &IdRange) -> Result<Value> {
    let mut db = open::<D>(dir)?;
    insert_ids(&mut db, table, ids.from, ids.count, ids.pad)?;
    close_with_lsn(db)
}

/// Rewrites the score of every K-th row in scan order. The score is a
/// fixed-width Int, so each row keeps its size and stays on its page: the
/// fraction of pages touched is controlled by K.
fn update<D: Db>(dir: &Path, table: &str, every: u64) -> Result<Value> {
    let every = every.max(1);
    let mut db = open::<D>(dir)?;
    let mut targets = Vec::new();
    let mut position = 0u64;
    db.for_each_row(table, &mut |rid, row| {
        if position.is_multiple_of(every) {
            targets.push((rid, row));
        }
        position += 1;
    })?;
    for (rid, mut row) in targets.iter().cloned() {
        row.score = Some(row.score.map_or(0, |s| s + 1));
        db.update(table, rid, &row)?;
    }
    db.commit()?;
    let lsn = db.max_lsn();
    db.close()?;
    Ok(json!({"ok": true, "updated": targets.len(), "max_lsn": lsn}))
}

fn drop_table<D: Db>(dir: &Path, table: &str) -> Result<Value> {
    let mut db = open::<D>(dir)?;
    db.drop_table(table)?;
    close_with_lsn(db)
}

/// Inserts, makes the WAL durable, then abandons the catalog without a
/// checkpoint: the directory looks like a server that crashed after
/// acknowledging the writes (heap pages unflushed, WAL not truncated).
fn dirty<D: Db>(dir: &Path, table: &str, ids: &IdRange) -> Result<Value> {
    let mut db = open::<D>(dir)?;
    insert_ids(&mut db, table, ids.from, ids.count, ids.pad)?;
    let lsn = db.max_lsn();
    // No Drop: no checkpoint, no WAL truncate, and (0.29) no LOCK removal.
    std::mem::forget(db);
    Ok(json!({"ok": true, "max_lsn": lsn}))
}

/// Opens read-write (a crashed directory is recovered), except that a
/// sync-enabled one is opened like `dump` does: read-only when its WAL is
/// empty, so inspecting it writes nothing; recovered (sync-aware) otherwise.
fn report<D: Db>(dir: &Path, with_ids: bool) -> Result<Value> {
    let db = if db::sync_enabled(dir) {
        D::open_snapshot(dir).map_err(|e| format!("opening {}: {e}", dir.display()))?
    } else {
        open::<D>(dir)?
    };
    let mut tables = Map::new();
    for table in db.tables() {
        tables.insert(table.clone(), table_report(&db, &table, with_ids)?);
    }
    db.close()?;
    Ok(json!({ "tables": tables }))
}

fn table_report<D: Db>(db: &D, table: &str, with_ids: bool) -> io::Result<Value> {
    let mut count = 0u64;
    let mut ids = Vec::new();
    db.for_each_row(table, &mut |_, row| {
        count += 1;
        if with_ids {
            ids.push(row.id);
        }
    })?;
    if !with_ids {
        return Ok(json!({ "count": count }));
    }
    ids.sort_unstable();
    Ok(json!({ "count": count, "ids": ids }))
}

enum TxEnd {
    Commit,
    Rollback,
    Crash,
}

/// What `tx` changes inside its transaction.
struct TxWork<'a> {
    table: &'a str,
    inserts: std::ops::Range<u64>,
    pad: usize,
    update_every: Option<u64>,
    delete_every: Option<u64>,
}

/// One explicit transaction through the engine's transaction API: BEGIN;
/// score + 1 on every K-th row; delete every J-th row; insert the ids; then
/// COMMIT, ROLLBACK, or a crash (WAL fsynced, nothing checkpointed, `LOCK`
/// left, as `dirty`). Reports the LSNs: the last one before BEGIN, BEGIN's,
/// the last row record's and COMMIT's. A rollback cuts its records from the
/// WAL, so the next writes reuse those LSNs (`max_lsn` is back to
/// `lsn_before`).
fn tx<D: Db>(dir: &Path, work: &TxWork, end: TxEnd) -> Result<Value> {
    if !D::CAPS.transactions {
        return Err(format!("{} has no explicit transaction API", D::CAPS.name).into());
    }
    let table = work.table;
    let mut db = open::<D>(dir)?;
    // Its rows are `FixtureRow`s: refuse any other shape before BEGIN (an
    // altered table would get rows of the wrong width).
    if db.columns(table)? != fixture_columns() {
        return Err(format!("table {table} does not have the fixture shape (id, name, score)").into());
    }
    let mut rows = Vec::new();
    db.for_each_row(table, &mut |rid, row| rows.push((rid, row)))?;
    let lsn_before = db.max_lsn();
    db.begin()?;
    let begin_lsn = db.max_lsn();
    let mut rids: Vec<D::Rid> = rows.iter().map(|(rid, _)| *rid).collect();
    let mut updated = 0u64;
    if let Some(every) = work.update_every {
        for (i, (rid, row)) in rows.iter().enumerate().step_by(every.max(1) as usize) {
            let mut row = row.clone();
            row.score = Some(row.score.map_or(0, |s| s + 1));
            rids[i] = db.update(table, *rid, &row)?;
            updated += 1;
        }
    }
    let mut deleted = 0u64;
    if let Some(every) = work.delete_every {
        let targets: Vec<D::Rid> = rids.iter().copied().step_by(every.max(1) as usize).collect();
        deleted = db.delete_rows(table, &targets)?;
    }
    for id in work.inserts.clone() {
        db.insert(table, &FixtureRow::new(id as i64, work.pad))?;
    }
    let last_lsn = db.max_lsn();
    let (outcome, commit_lsn) = match end {
        TxEnd::Commit => {
            db.commit_tx()?;
            ("commit", Some(db.max_lsn()))
        }
        TxEnd::Rollback => {
            db.rollback()?;
            ("rollback", None)
        }
        TxEnd::Crash => {
            // Inside the transaction this only flushes and fsyncs the WAL
            // (no Commit record is written for it).
            db.commit()?;
            ("crash", None)
        }
    };
    let lsn = db.max_lsn();
    if let TxEnd::Crash = end {
        // No Drop: no checkpoint, no WAL truncate, no LOCK removal.
        std::mem::forget(db);
    } else {
        db.close()?;
    }
    Ok(json!({
        "ok": true,
        "outcome": outcome,
        "updated": updated,
        "deleted": deleted,
        "inserted": work.inserts.end - work.inserts.start,
        "lsn_before": lsn_before,
        "begin_lsn": begin_lsn,
        "last_lsn": last_lsn,
        "commit_lsn": commit_lsn,
        "max_lsn": lsn,
    }))
}

/// Keeps the database open (and, on 0.29, `LOCK` held) until stdin closes,
/// standing in for a live server.
fn hold<D: Db>(dir: &Path) -> Result<()> {
    let db = open::<D>(dir)?;
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "{}", json!({"ok": true, "pid": std::process::id()}))?;
    stdout.flush()?;
    drop(stdout);
    io::copy(&mut io::stdin().lock(), &mut io::sink())?;
    db.close()?;
    Ok(())
}

/// One table T grown until its heap file reaches `--mib` MiB, plus an index
/// on id. The size is checked on disk once per batch, so it overshoots by at
/// most one batch of rows.
fn bulk<D: Db>(dir: &Path, mib: u64, pad: usize) -> Result<Value> {
    let target = mib * 1024 * 1024;
    let table = "T";
    let heap = dir.join(format!("{table}.heap"));
    let mut db = create_fresh::<D>(dir)?;
    db.create_table(table)?;
    let mut rows = 0u64;
    while file_len(&heap)? < target {
        insert_ids(&mut db, table, rows, BATCH, pad)?;
        rows += BATCH;
    }
    db.create_index(table, "id")?;
    db.close()?;
    Ok(json!({"ok": true, "rows": rows, "heap_bytes": file_len(&heap)?}))
}

/// Opens an existing database, naming the directory in any error (the
/// engine's own messages often do not).
/// `Catalog::create` silently reuses table files left in the directory, so
/// a fixture is only ever created in a directory without a database.
fn create_fresh<D: Db>(dir: &Path) -> Result<D> {
    if dir.join("catalog.bin").exists() {
        return Err(format!("{} already holds a database", dir.display()).into());
    }
    D::create(dir).map_err(|e| format!("creating {}: {e}", dir.display()).into())
}

/// Inserts ids `from..from + count`, committing every [`BATCH`] rows.
fn insert_ids<D: Db>(db: &mut D, table: &str, from: u64, count: u64, pad: usize) -> io::Result<()> {
    for id in from..from + count {
        db.insert(table, &FixtureRow::new(id as i64, pad))?;
        if (id - from + 1).is_multiple_of(BATCH) {
            db.commit()?;
        }
    }
    db.commit()
}

fn close_with_lsn<D: Db>(db: D) -> Result<Value> {
    let lsn = db.max_lsn();
    db.close()?;
    Ok(json!({"ok": true, "max_lsn": lsn}))
}

fn file_len(path: &Path) -> io::Result<u64> {
    match std::fs::metadata(path) {
        Ok(meta) => Ok(meta.len()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e),
    }
}
