//! Each index of a table against its rows. A read-only open rebuilds a
//! missing index file in memory without a word, so the files are looked for
//! first; then every row must be found through its index at its own address,
//! and the index must hold no more entries than the rows give it.
use super::ERR_FINALIZE;
use crate::core::error::{CoreError, CoreResult};
use powdb_storage::catalog::{expression_index_file_name, Catalog, IndexKeySource};
use powdb_storage::pj1::{pj1_get, pj1_scalar, PathSeg, Pj1Scalar};
use powdb_storage::stored_json_path::{StoredJsonPathSegmentV1, StoredJsonPathV1};
use powdb_storage::table::Table;
use powdb_storage::types::{Row, RowId, Value};
use std::path::Path;

fn failed(message: String) -> CoreError {
    CoreError::new(ERR_FINALIZE, message)
}

/// A table's indexes: their names for the summary, and one check each.
pub(super) struct Indexes {
    pub names: Vec<String>,
    pub checks: Vec<IndexCheck>,
}

/// How far a column index is checked against the rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// Every row found through the index at its own address, and as many
    /// entries as rows with a value: an index the engine rebuilt or a copy
    /// whose index and heaps may differ in time.
    Entries,
    /// As many entries as rows with a value: index files copied byte for byte
    /// beside their heaps from one checkpointed moment (a table restore),
    /// which a look-up per row would only confirm, at twice the time.
    Counts,
}

pub(super) struct IndexCheck {
    /// `T.column` or `T.expr:<text>`, for messages.
    label: String,
    depth: Depth,
    table: String,
    unique: bool,
    key: Key,
}

enum Key {
    /// Rows with a value in the column, counted to compare with the index's.
    Column { column: String, pos: usize, valued: u64 },
    /// Every row's (key, address), Empty keys included: compared whole.
    Expression { id: u64, path: StoredJsonPathV1, pos: usize, pairs: Vec<(Value, RowId)> },
}

impl Indexes {
    pub fn of(dir: &Path, catalog: &Catalog, table: &str, depth: Depth) -> CoreResult<Indexes> {
        let schema = catalog.schema(table).ok_or_else(|| failed(format!("table {table} has no schema")))?;
        let position = |column: &str, label: &str| {
            schema.column_index(column).ok_or_else(|| failed(format!("index {label}: no column {column} in the table")))
        };
        let mut out = Indexes { names: Vec::new(), checks: Vec::new() };
        for meta in catalog.index_metadata(table).unwrap_or_default() {
            let (name, file, key) = match meta.source {
                IndexKeySource::Column { column } => {
                    let pos = position(&column, &format!("{table}.{column}"))?;
                    (column.clone(), format!("{table}_{column}.idx"), Key::Column { column, pos, valued: 0 })
                }
                IndexKeySource::Expression { index_id, canonical_text, json_path, .. } => {
                    let name = format!("expr:{canonical_text}");
                    let pos = position(&json_path.column, &format!("{table}.{name}"))?;
                    let file = expression_index_file_name(table, index_id);
                    (name, file, Key::Expression { id: index_id, path: json_path, pos, pairs: Vec::new() })
                }
            };
            let label = format!("{table}.{name}");
            if !dir.join(&file).is_file() {
                return Err(failed(format!("index {label}: its file {file} is missing after the checkpoint")));
            }
            out.checks.push(IndexCheck { label, depth, table: table.to_string(), unique: meta.unique, key });
            out.names.push(name);
        }
        Ok(out)
    }

    /// After the last row: entry counts, and expression indexes whole.
    pub fn finish(&mut self, catalog: &Catalog) -> CoreResult<()> {
        for check in &mut self.checks {
            check.finish(catalog)?;
        }
        Ok(())
    }
}

impl IndexCheck {
    pub fn row(&mut self, table: &Table, rid: RowId, row: &Row) -> CoreResult<()> {
        let at = || format!("index {}: row {}:{}", self.label, rid.page_id, rid.slot_index);
        match &mut self.key {
            Key::Column { column, pos, valued } => {
                let key = &row[*pos];
                if key.is_empty() {
                    // Empty cells are not indexed.
                    return Ok(());
                }
                *valued += 1;
                if self.depth == Depth::Counts {
                    return Ok(());
                }
                let found = table.index_lookup_all(column, key);
                if !found.contains(&rid) {
                    return Err(failed(format!("{} with key {} is not found through it", at(), key.to_wire_string())));
                }
                if self.unique && found.len() > 1 {
                    return Err(failed(format!(
                        "{}: unique key {} maps to {} rows",
                        at(),
                        key.to_wire_string(),
                        found.len()
                    )));
                }
            }
            Key::Expression { path, pos, pairs, .. } => {
                let key = expression_key(path, &row[*pos]).map_err(|e| failed(format!("{}: {e}", at())))?;
                pairs.push((key, rid));
            }
        }
        Ok(())
    }

    fn finish(&mut self, catalog: &Catalog) -> CoreResult<()> {
        match &mut self.key {
            Key::Column { column, valued, .. } => {
                let stats = catalog
                    .index_stats(&self.table, column)
                    .ok_or_else(|| failed(format!("index {}: the engine has no statistics for it", self.label)))?;
                if stats.total_entries != *valued {
                    return Err(failed(format!(
                        "index {} holds {} entries, the rows give it {valued}",
                        self.label, stats.total_entries
                    )));
                }
            }
            Key::Expression { id, pairs, .. } => {
                let tree = catalog
                    .expression_index_btree(&self.table, *id)
                    .ok_or_else(|| failed(format!("index {}: the engine did not load it", self.label)))?;
                let mut held = tree.ordered_pairs_nulls_last();
                sort(&mut held);
                sort(pairs);
                if self.unique {
                    let valued = pairs.iter().filter(|(k, _)| !k.is_empty());
                    if let Some(w) = valued.collect::<Vec<_>>().windows(2).find(|w| w[0].0 == w[1].0) {
                        return Err(failed(format!(
                            "index {}: unique key {} is held twice",
                            self.label,
                            w[0].0.to_wire_string()
                        )));
                    }
                }
                if held != *pairs {
                    return Err(failed(format!(
                        "index {} differs from its rows ({} entries, the rows give it {})",
                        self.label,
                        held.len(),
                        pairs.len()
                    )));
                }
            }
        }
        Ok(())
    }
}

fn sort(pairs: &mut [(Value, RowId)]) {
    pairs.sort_by(|a, b| a.0.cmp(&b.0).then((a.1.page_id, a.1.slot_index).cmp(&(b.1.page_id, b.1.slot_index))));
}

/// The key an expression index gives a row: the scalar its JSON path reaches
/// in the root column; Empty where the column is Empty, the path leads
/// nowhere or ends at null. An array or object there has no key.
fn expression_key(path: &StoredJsonPathV1, root: &Value) -> Result<Value, String> {
    let doc = match root {
        Value::Json(doc) => doc,
        Value::Empty => return Ok(Value::Empty),
        other => return Err(format!("column {} holds {other:?}, not JSON", path.column)),
    };
    let mut node: &[u8] = doc;
    for segment in &path.segments {
        let step = match segment {
            StoredJsonPathSegmentV1::Key(key) => PathSeg::Key(key),
            StoredJsonPathSegmentV1::Index(i) => PathSeg::Index(*i),
        };
        match pj1_get(node, &step) {
            Some(next) => node = next,
            None => return Ok(Value::Empty),
        }
    }
    Ok(match pj1_scalar(node).map_err(|e| format!("malformed JSON in column {}: {e:?}", path.column))? {
        Pj1Scalar::Null => Value::Empty,
        Pj1Scalar::Bool(b) => Value::Bool(b),
        Pj1Scalar::Int(i) => Value::Int(i),
        Pj1Scalar::Float(f) => Value::Float(f),
        Pj1Scalar::Str(s) => Value::Str(s.to_owned()),
        Pj1Scalar::NonScalar => return Err(format!("{} is not a scalar", path.canonical_text())),
    })
}
