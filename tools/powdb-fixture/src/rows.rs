//! Generates rows for any table shape, and reads the ones already there.
//! The fixture columns (`id`, `name`, `score`) get exactly the values
//! `FixtureRow::new` gives them, so a generic insert of id N with pad P is
//! the same row `create`/`insert` would have written.

use std::io;

use crate::db::{Db, FixtureRow};
use crate::prng::Prng;
use crate::value::{ColType, Column, Val};

/// A row of `table` as scanned: its address and every column.
pub struct Scanned<R> {
    pub rid: R,
    pub row: Vec<Val>,
}

pub fn scan_all<D: Db>(db: &D, table: &str) -> io::Result<Vec<Scanned<D::Rid>>> {
    let mut rows = Vec::new();
    db.scan_rows(table, &mut |rid, row| rows.push(Scanned { rid, row }))?;
    Ok(rows)
}

/// One past the largest `id` in `rows` (0 when there is no Int `id`), so
/// new rows keep ids unique within the table.
pub fn next_id<R>(columns: &[Column], rows: &[Scanned<R>]) -> i64 {
    let Some(pos) = id_position(columns) else {
        return 0;
    };
    rows.iter()
        .filter_map(|s| match s.row[pos] {
            Val::Int(id) => Some(id + 1),
            _ => None,
        })
        .max()
        .unwrap_or(0)
}

/// Where the Int `id` column is, if the table has one.
pub fn id_position(columns: &[Column]) -> Option<usize> {
    columns.iter().position(|c| c.name == "id" && c.ty == ColType::Int)
}

/// The row with id `id` for `columns`. `pad` sizes `name` like
/// `FixtureRow::new`; other Str columns get a random length up to `pad`, and
/// optional non-fixture columns are sometimes Empty.
pub fn make_row(columns: &[Column], id: i64, pad: usize, rng: &mut Prng) -> io::Result<Vec<Val>> {
    let fixture = FixtureRow::new(id, pad);
    let mut row = Vec::with_capacity(columns.len());
    for c in columns {
        let v = match (c.name.as_str(), c.ty) {
            ("id", ColType::Int) => Val::Int(id),
            ("name", ColType::Str) => Val::Str(fixture.name.clone()),
            ("score", ColType::Int) => fixture.score.map_or(Val::Empty, Val::Int),
            _ if !c.required && rng.chance(25) => Val::Empty,
            (_, ColType::Int) => Val::Int(rng.below(1_000_000) as i64),
            (_, ColType::Str) => {
                let len = rng.range(0, pad as u64) as usize;
                Val::Str(text(&format!("{}-{id}-", c.name), len, 'y'))
            }
            (_, ColType::Float) => Val::Float(id as f64 / 4.0),
            (_, ColType::Bool) => Val::Bool(id % 2 == 0),
            (_, ColType::DateTime) => Val::DateTime(id.wrapping_mul(1_000_000)),
            (_, ColType::Uuid) => {
                let mut u = [0u8; 16];
                u[..8].copy_from_slice(&id.to_le_bytes());
                Val::Uuid(u)
            }
            (_, ColType::Bytes) => Val::Bytes(vec![id as u8; rng.range(0, pad as u64) as usize]),
            (_, ColType::Json | ColType::Empty) if !c.required => Val::Empty,
            (_, ty) => {
                return Err(io::Error::other(format!(
                    "cannot generate a value for required {} column {}",
                    ty.name(),
                    c.name
                )))
            }
        };
        row.push(v);
    }
    Ok(row)
}

/// Exactly `len` bytes: `prefix` (cut if longer) padded with `fill`.
/// `prefix` must be ASCII.
pub fn text(prefix: &str, len: usize, fill: char) -> String {
    let mut s: String = prefix.chars().take(len).collect();
    s.extend(std::iter::repeat_n(fill, len - s.len()));
    s
}
