//! `workload`: N random ops picked from a seed. The choice depends only on
//! the seed and the directory's state (tables, columns, indexes, rows in
//! scan order, whether sync is enabled), so the same seed on the same
//! directory repeats the same ops. In a sync-enabled directory no row
//! spills to overflow pages (see `Db::overflow`): no `big` or `sweep` ops,
//! and grown values stay well inside a page.
//!
//! `--skip` leaves kinds of op out of the draw (for instance the alters,
//! whose WAL PowDB 0.29 cannot always replay: see `pitr-randomized.spec.ts`).
//! The sequence then differs from the one without `--skip`, but is just as
//! repeatable; with an empty list it is unchanged.

use std::path::Path;

use serde_json::{json, Value};

use crate::args::OpKind;
use crate::db::Db;
use crate::db::{open, Result};
use crate::ops::{self, Done};
use crate::prng::Prng;
use crate::rows::{self, Scanned};
use crate::value::{fixture_columns, position, ColType};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Insert,
    UpdateInPlace,
    Grow,
    Delete,
    Big,
    CreateTable,
    DropTable,
    Recreate,
    CreateIndex,
    AddColumn,
    DropColumn,
    Sweep,
}

/// Relative weights: row changes dominate, as in a real workload; DDL is
/// rarer but frequent enough that a dozen ops usually include some.
const KINDS: [(Kind, u64); 12] = [
    (Kind::Insert, 20),
    (Kind::UpdateInPlace, 12),
    (Kind::Grow, 10),
    (Kind::Delete, 12),
    (Kind::Big, 8),
    (Kind::CreateTable, 6),
    (Kind::DropTable, 4),
    (Kind::Recreate, 5),
    (Kind::CreateIndex, 6),
    (Kind::AddColumn, 5),
    (Kind::DropColumn, 4),
    (Kind::Sweep, 3),
];

/// Beyond this many columns `add column` is not picked: wide rows would
/// crowd out the other ops on 0.4.7's one-page rows.
const MAX_COLUMNS: usize = 10;

/// The kinds `--skip` leaves out. An add column whose (random) type is
/// skipped counts as impossible, so another kind is drawn.
#[derive(Default)]
struct Skip {
    kinds: Vec<Kind>,
    int_column: bool,
    str_column: bool,
}

impl Skip {
    fn new(list: &[OpKind]) -> Skip {
        let mut skip = Skip::default();
        for kind in list {
            let kind = match kind {
                OpKind::AddIntColumn => {
                    skip.int_column = true;
                    continue;
                }
                OpKind::AddStrColumn => {
                    skip.str_column = true;
                    continue;
                }
                OpKind::AddColumn => {
                    skip.int_column = true;
                    skip.str_column = true;
                    continue;
                }
                OpKind::Insert => Kind::Insert,
                OpKind::UpdateInPlace => Kind::UpdateInPlace,
                OpKind::Grow => Kind::Grow,
                OpKind::Delete => Kind::Delete,
                OpKind::Big => Kind::Big,
                OpKind::CreateTable => Kind::CreateTable,
                OpKind::DropTable => Kind::DropTable,
                OpKind::Recreate => Kind::Recreate,
                OpKind::CreateIndex => Kind::CreateIndex,
                OpKind::DropColumn => Kind::DropColumn,
                OpKind::Sweep => Kind::Sweep,
            };
            skip.kinds.push(kind);
        }
        if skip.int_column && skip.str_column {
            skip.kinds.push(Kind::AddColumn);
        }
        skip
    }

    fn column(&self, ty: ColType) -> bool {
        match ty {
            ColType::Int => self.int_column,
            ColType::Str => self.str_column,
            _ => false,
        }
    }
}

pub fn run<D: Db>(dir: &Path, seed: u64, n_ops: u64, skip: &[OpKind]) -> Result<Value> {
    let skip = Skip::new(skip);
    let mut db = open::<D>(dir)?;
    let mut rng = Prng::new(seed);
    let mut descs = Vec::new();
    for _ in 0..n_ops {
        let (desc, kind) = one_op(&mut db, &mut rng, &skip)?;
        descs.push(desc);
        if D::CAPS.overflow && matches!(kind, Kind::AddColumn | Kind::DropColumn) {
            // Restart the "server" after an alter on 0.29. Upstream bug:
            // the alter's LSN barrier (`stamp_all_pages_min_lsn`) loads every
            // page, overflow pages included, through the data-page cache,
            // which files them in the free-space map; the next insert of
            // the session can then put rows into an overflow chain page
            // (a chain tail looks like an empty data page) and break the
            // chain. A fresh open rebuilds the map without overflow pages.
            db.close()?;
            db = open::<D>(dir)?;
        }
    }
    let lsn = db.max_lsn();
    db.close()?;
    Ok(json!({"ok": true, "ops": descs, "max_lsn": lsn}))
}

/// Picks kinds by weight until one is possible in the current state.
fn one_op<D: Db>(db: &mut D, rng: &mut Prng, skip: &Skip) -> Result<(String, Kind)> {
    let kinds: Vec<(Kind, u64)> = KINDS
        .iter()
        .copied()
        .filter(|(k, _)| db.overflow() || !matches!(k, Kind::Big | Kind::Sweep))
        .filter(|(k, _)| !skip.kinds.contains(k))
        .collect();
    let total: u64 = kinds.iter().map(|(_, w)| w).sum();
    if total == 0 {
        return Err("workload: --skip leaves no kind of op".into());
    }
    // Create table is always possible, so this ends quickly; the bound only
    // guards against a bug turning it into a hang.
    for _ in 0..1000 {
        let mut roll = rng.below(total);
        let kind = kinds
            .iter()
            .find(|(_, w)| {
                let hit = roll < *w;
                roll = roll.saturating_sub(*w);
                hit
            })
            .map(|(k, _)| *k)
            .expect("roll below total weight");
        if let Some(done) = try_op(kind, db, rng, skip)? {
            return Ok((done.desc, kind));
        }
    }
    Err("workload found no possible op".into())
}

/// Runs `kind` with random parameters, or `None` when the state rules it out.
fn try_op<D: Db>(kind: Kind, db: &mut D, rng: &mut Prng, skip: &Skip) -> Result<Option<Done>> {
    let mut tables = db.tables();
    tables.sort();
    if let Kind::CreateTable = kind {
        return create_table(db, &tables, rng).map(Some);
    }
    if let Kind::Sweep = kind {
        return ops::sweep(db).map(Some);
    }
    if tables.is_empty() {
        return Ok(None);
    }
    let table = rng.pick(&tables).clone();
    let columns = db.columns(&table)?;
    let str_columns: Vec<String> = columns.iter().filter(|c| c.ty == ColType::Str).map(|c| c.name.clone()).collect();
    let done = match kind {
        Kind::Insert => {
            let count = rng.range(1, 300);
            let lo = rng.range(0, 60) as usize;
            let hi = lo + rng.range(0, 240) as usize;
            ops::insert_rows(db, &table, count, (lo, hi), rng)?
        }
        Kind::UpdateInPlace => {
            if ops::in_place_column(&columns).is_none() {
                return Ok(None);
            }
            let rows = rows::scan_all(db, &table)?;
            let Some(targets) = some_rows(rows, 50, rng) else {
                return Ok(None);
            };
            ops::update_in_place(db, &table, &targets)?
        }
        Kind::Grow => {
            if str_columns.is_empty() {
                return Ok(None);
            }
            let column = rng.pick(&str_columns).clone();
            let Some(targets) = some_rows(rows::scan_all(db, &table)?, 20, rng) else {
                return Ok(None);
            };
            // Past the ~40-100 bytes rows start at, to relocate; below a
            // page, so it stays inline on both generations.
            let bytes = rng.range(300, if db.overflow() { 3000 } else { 1800 }) as usize;
            ops::set_string(db, &table, &column, &targets, bytes, "grow")?
        }
        Kind::Delete => {
            let Some(targets) = some_rows(rows::scan_all(db, &table)?, 20, rng) else {
                return Ok(None);
            };
            ops::delete_rows(db, &table, &targets)?
        }
        Kind::Big => {
            if str_columns.is_empty() {
                return Ok(None);
            }
            let column = rng.pick(&str_columns).clone();
            let bytes = rng.range(5 * 1024, 20 * 1024) as usize;
            let rows = rows::scan_all(db, &table)?;
            if rows.is_empty() || rng.chance(50) {
                let id = rows::next_id(&columns, &rows);
                ops::insert_big(db, &table, id, &column, bytes, rng)?
            } else {
                let k = rng.range(1, 3) as usize;
                let picked = rng.sample_indices(rows.len(), k);
                let targets = take(rows, &picked);
                ops::set_string(db, &table, &column, &targets, bytes, "spill")?
            }
        }
        Kind::DropTable => {
            // Never the last table: an empty catalog leaves nothing for the
            // row ops to work on.
            if tables.len() < 2 {
                return Ok(None);
            }
            ops::drop_table(db, &table)?
        }
        Kind::Recreate => {
            let n = rows::scan_all(db, &table)?.len() as u64;
            let rows = if rng.chance(50) { rng.below(n / 2 + 1) } else { n + rng.range(50, n.min(2000) + 300) };
            let pad = rng.range(10, 200) as usize;
            ops::recreate(db, &table, rows, pad, rng)?
        }
        Kind::CreateIndex => {
            let indexed = ops::column_indexes(db, &table);
            let candidates: Vec<String> = columns
                .iter()
                .filter(|c| matches!(c.ty, ColType::Int | ColType::Str))
                .filter(|c| !indexed.contains(&c.name))
                .map(|c| c.name.clone())
                .collect();
            if candidates.is_empty() {
                return Ok(None);
            }
            let column = rng.pick(&candidates).clone();
            ops::create_index(db, &table, &column)?
        }
        Kind::AddColumn => {
            if columns.len() >= MAX_COLUMNS {
                return Ok(None);
            }
            let name = (0..20).map(|_| format!("c{}", rng.below(1000))).find(|n| position(&columns, n).is_none());
            let Some(name) = name else {
                return Ok(None);
            };
            let ty = if rng.chance(50) { ColType::Int } else { ColType::Str };
            if skip.column(ty) {
                return Ok(None);
            }
            ops::add_column(db, &table, &name, ty)?
        }
        Kind::DropColumn => {
            // Keep `id` (row identity for the other ops) and at least two
            // columns.
            if columns.len() <= 2 {
                return Ok(None);
            }
            let indexed = ops::column_indexes(db, &table);
            let candidates: Vec<String> = columns
                .iter()
                .filter(|c| c.name != "id")
                .filter(|c| D::CAPS.drop_column_keeps_indexes || ops::drop_column_safe(&columns, &indexed, &c.name))
                .map(|c| c.name.clone())
                .collect();
            if candidates.is_empty() {
                return Ok(None);
            }
            let column = rng.pick(&candidates).clone();
            ops::drop_column(db, &table, &column)?
        }
        Kind::CreateTable | Kind::Sweep => unreachable!("handled above"),
    };
    Ok(Some(done))
}

/// A new table `W<n>` of the fixture shape, sometimes empty, sometimes
/// indexed on id and/or name.
fn create_table<D: Db>(db: &mut D, tables: &[String], rng: &mut Prng) -> Result<Done> {
    let name = (0..1000)
        .map(|_| format!("W{}", rng.below(100)))
        .find(|n| !tables.contains(n))
        .unwrap_or_else(|| format!("W{}", tables.len()));
    let rows = if rng.chance(10) { 0 } else { rng.range(1, 400) };
    let pad = rng.range(10, 200) as usize;
    let indexes: Vec<String> = match rng.below(5) {
        0 | 1 => vec![],
        2 | 3 => vec!["id".into()],
        _ => vec!["id".into(), "name".into()],
    };
    ops::create_table(db, &name, &fixture_columns(), rows, pad, &indexes, rng)
}

/// Random rows to change: usually a few (up to `few`), sometimes a large
/// share of the table. `None` for an empty table.
fn some_rows<R>(rows: Vec<Scanned<R>>, few: u64, rng: &mut Prng) -> Option<Vec<Scanned<R>>> {
    let n = rows.len() as u64;
    if n == 0 {
        return None;
    }
    let k = if rng.chance(70) { rng.range(1, few.min(n)) } else { (n * rng.range(10, 70) / 100).max(1) };
    let picked = rng.sample_indices(rows.len(), k as usize);
    Some(take(rows, &picked))
}

/// The rows at ascending `indices`.
fn take<R>(rows: Vec<Scanned<R>>, indices: &[usize]) -> Vec<Scanned<R>> {
    let mut wanted = indices.iter().peekable();
    rows.into_iter().enumerate().filter(|(i, _)| wanted.next_if_eq(&i).is_some()).map(|(_, r)| r).collect()
}
