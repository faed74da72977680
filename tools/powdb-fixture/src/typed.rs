//! `typed` (0.29 only): a table `Typed` with a column of every type and the
//! values a text dump must take care with: i64 extremes and ints past 2^53,
//! floats that print in exponent form, -0.0, NaN and infinities, strings
//! with commas, quotes, CR/LF and non-ASCII, empty strings and bytes,
//! timestamps before 1970 and past year 9999, JSON documents, Empty cells,
//! and overflow values (a 9 KB string, 5 KB bytes). `rows` prints any
//! table's rows as the engine reads them.

use std::path::Path;

use engine_new::catalog::Catalog;
use engine_new::dir_lock::DirLock;
use engine_new::pj1::{parse_json_text, pj1_to_text};
use engine_new::types::{ColumnDef, Schema, TypeId, Value};
use serde_json::{json, Value as Json};

use crate::db::{Db, Result};
use crate::rows::scan_all;
use crate::value::Val;

const COLUMNS: [(&str, TypeId, bool); 9] = [
    ("id", TypeId::Int, true),
    ("big", TypeId::Int, false),
    ("f", TypeId::Float, false),
    ("flag", TypeId::Bool, false),
    ("s", TypeId::Str, false),
    ("at", TypeId::DateTime, false),
    ("u", TypeId::Uuid, false),
    ("b", TypeId::Bytes, false),
    ("j", TypeId::Json, false),
];

pub fn run(dir: &Path, rows: u64) -> Result<Json> {
    let _lock = DirLock::acquire(dir)?;
    let mut cat = Catalog::open(dir).map_err(|e| format!("opening {}: {e}", dir.display()))?;
    let columns = COLUMNS
        .iter()
        .enumerate()
        .map(|(i, (name, type_id, required))| ColumnDef {
            name: name.to_string(),
            type_id: *type_id,
            required: *required,
            position: i as u16,
        })
        .collect();
    cat.create_table(Schema { table_name: "Typed".into(), columns })?;
    for i in 0..rows as i64 {
        cat.insert("Typed", &row(i)?)?;
        cat.commit_autocommit()?;
    }
    cat.checkpoint()?;
    Ok(json!({ "ok": true, "table": "Typed", "rows": rows, "max_lsn": cat.max_lsn() }))
}

fn pick<T: Clone>(i: i64, values: &[T]) -> T {
    values[i as usize % values.len()].clone()
}

fn row(i: i64) -> Result<Vec<Value>> {
    let big = pick(i, &[Some(i64::MAX), Some(i64::MIN), Some((1 << 53) + 1), Some(-(1 << 53) - 1), None, Some(i)]);
    let floats = [0.1, -0.0, 1e300, 5e-324, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1.0 / 3.0, 2.0];
    let f = if i % 10 == 9 { None } else { Some(pick(i, &floats)) };
    let strings = ["a,b", "say \"hi\"", "line1\nline2\r\nend", "", "ünï €😀", "plain", "\"", ",", " lead"];
    let s = match i % 11 {
        10 => None,
        7 => Some(format!("long {i},\"{}\"\n", "z".repeat(9000))),
        _ => Some(pick(i, &strings).to_string()),
    };
    let at = pick(i, &[Some(0), Some(-1), Some(1_796_637_845_123_456), Some(253_402_300_800_000_000), None]);
    let b = match i % 5 {
        0 => Some(Vec::new()),
        1 => Some(vec![0, 255, 1, i as u8]),
        2 => None,
        3 => Some((0..5000).map(|k| (k * 7 + i) as u8).collect()),
        _ => Some(b"csv,\"q\"\n".to_vec()),
    };
    let docs = [r#"{"k":[1,2.5,"x,\"y\"\n"],"n":null}"#, r#"[true,false,"ü"]"#, r#""text""#, "-12"];
    let j = if i % 4 == 1 { None } else { Some(parse_json_text(pick(i, &docs)).map_err(|e| format!("json: {e:?}"))?) };
    let mut u = [0u8; 16];
    u[..8].copy_from_slice(&i.to_le_bytes());
    u[15] = 0xab;
    Ok(vec![
        Value::Int(i),
        big.map_or(Value::Empty, Value::Int),
        f.map_or(Value::Empty, Value::Float),
        if i % 3 == 2 { Value::Empty } else { Value::Bool(i % 2 == 0) },
        s.map_or(Value::Empty, Value::Str),
        at.map_or(Value::Empty, Value::DateTime),
        if i % 6 == 5 { Value::Empty } else { Value::Uuid(u) },
        b.map_or(Value::Empty, Value::Bytes),
        j.map_or(Value::Empty, |d| Value::Json(d.into_boxed_slice())),
    ])
}

/// Every row of `table` as the engine scans it, in scan order, each value in
/// a form JSON carries exactly: ints and timestamps (microseconds) as
/// decimal strings, floats as their bits (16 hex digits), UUIDs and bytes as
/// hex, JSON documents as the engine's canonical text, Empty as null.
pub fn rows<D: Db>(dir: &Path, table: &str) -> Result<Json> {
    let db = D::open_snapshot(dir).map_err(|e| format!("opening {}: {e}", dir.display()))?;
    let columns: Vec<Json> = db.columns(table)?.iter().map(|c| json!({"name": c.name, "type": c.ty.name()})).collect();
    let scanned = scan_all(&db, table)?;
    let rows: Vec<Json> = scanned
        .iter()
        .map(|s| s.row.iter().map(exact).collect::<Result<Vec<_>>>().map(Json::from))
        .collect::<Result<_>>()?;
    db.close()?;
    Ok(json!({ "columns": columns, "rows": rows }))
}

fn exact(v: &Val) -> Result<Json> {
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    Ok(match v {
        Val::Int(n) | Val::DateTime(n) => json!(n.to_string()),
        Val::Float(f) => json!(format!("{:016x}", f.to_bits())),
        Val::Bool(b) => json!(b),
        Val::Str(s) => json!(s),
        Val::Uuid(u) => json!(hex(u)),
        Val::Bytes(b) => json!(hex(b)),
        Val::Json(doc) => json!(pj1_to_text(doc).map_err(|e| format!("json: {e:?}"))?),
        Val::Empty => Json::Null,
    })
}
