//! Reading `catalog.bin` the way powdb-storage 0.29.0 does
//! (`catalog/file.rs`, `read_catalog_file_with_max_version`), with the same
//! checks, plus one it lacks: bytes after the last section are refused.
use super::cursor::Cursor;
use super::{CatalogFile, Column, ColumnIndex, ExpressionIndex, Link, PathSegment, TableEntry, ERR_CATALOG};
use crate::core::error::{CoreError, CoreResult};
use powdb_storage::stored_json_path::{StoredJsonPathSegmentV1, StoredJsonPathV1};
use std::collections::HashSet;

pub(super) const MAGIC: &[u8; 4] = b"BCAT";
/// The newest version the linked engine reads and writes.
pub const NEWEST_VERSION: u16 = 7;

/// Column type names by type id.
pub(crate) const TYPES: [&str; 9] = ["empty", "int", "float", "bool", "str", "datetime", "uuid", "bytes", "json"];

impl CatalogFile {
    /// Parses a whole `catalog.bin`. Every defect is an `ERR_CATALOG` error
    /// naming the byte offset.
    pub fn parse(bytes: &[u8]) -> CoreResult<CatalogFile> {
        let payload = check_frame(bytes)?;
        let mut cur = Cursor::new(payload, 4, "catalog.bin");
        let version = cur.u16("catalog version")?;
        if version == 0 || version > NEWEST_VERSION {
            return Err(CoreError::new(
                ERR_CATALOG,
                format!("catalog.bin has version {version}; the versions known are 1 to {NEWEST_VERSION}"),
            ));
        }
        let n_tables = cur.u32("table count")? as usize;
        let next_index_id = if version >= 6 { Some(next_index_id(&mut cur)?) } else { None };
        let n_tables = cur.count(n_tables, 6, "table")?;
        let mut tables = Vec::with_capacity(n_tables);
        for _ in 0..n_tables {
            tables.push(table(&mut cur, version)?);
        }
        let links = if version >= 7 { links(&mut cur)? } else { Vec::new() };
        if cur.remaining() != 0 {
            return Err(cur.error(cur.pos(), format!("{} bytes after the last section", cur.remaining())));
        }
        let file = CatalogFile { version, next_index_id, tables, links };
        check_expression_indexes(&file)?;
        check_table_names(&file)?;
        Ok(file)
    }
}

/// Magic and trailing CRC-32; returns the bytes before the CRC.
fn check_frame(bytes: &[u8]) -> CoreResult<&[u8]> {
    if bytes.len() < 14 || &bytes[..4] != MAGIC {
        return Err(CoreError::new(ERR_CATALOG, "catalog.bin has no BCAT header: not a PowDB catalog"));
    }
    let (payload, crc) = bytes.split_at(bytes.len() - 4);
    let stored = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    let computed = crc32fast::hash(payload);
    if stored != computed {
        return Err(CoreError::new(
            ERR_CATALOG,
            format!("catalog.bin CRC32 mismatch: stored {stored:#010x}, computed {computed:#010x}"),
        ));
    }
    Ok(payload)
}

fn next_index_id(cur: &mut Cursor) -> CoreResult<u64> {
    let at = cur.pos();
    match cur.u64("next index id")? {
        0 => Err(cur.error(at, "the next index id is 0".into())),
        id => Ok(id),
    }
}

/// One table entry; its bytes after the name are kept for re-emission.
fn table(cur: &mut Cursor, version: u16) -> CoreResult<TableEntry> {
    let name = cur.string("table name")?;
    let body_start = cur.pos();
    let n_cols = cur.u16("column count")? as usize;
    let mut columns = Vec::with_capacity(n_cols.min(cur.remaining()));
    for _ in 0..n_cols {
        columns.push(column(cur)?);
    }
    let indexes = match version {
        1 => Vec::new(),
        _ => column_indexes(cur, version >= 3)?,
    };
    let defaults = if version >= 4 { defaults(cur, n_cols)? } else { Vec::new() };
    let auto_columns = if version >= 5 { positions(cur, n_cols)? } else { Vec::new() };
    let base_len = cur.pos() - body_start;
    let expression_indexes = if version >= 6 { expression_indexes(cur)? } else { Vec::new() };
    let body = cur.since(body_start).to_vec();
    Ok(TableEntry { name, columns, indexes, defaults, auto_columns, expression_indexes, body, base_len })
}

fn column(cur: &mut Cursor) -> CoreResult<Column> {
    let name = cur.string("column name")?;
    let at = cur.pos();
    let type_id = cur.u8("column type")?;
    let type_name = *TYPES.get(type_id as usize).ok_or_else(|| cur.error(at, format!("unknown type id {type_id}")))?;
    let required = cur.u8("column flag")? != 0;
    let position = cur.u16("column position")?;
    Ok(Column { name, type_name, required, position })
}

/// Version 2 lists indexed columns; version 3 adds a uniqueness flag.
fn column_indexes(cur: &mut Cursor, with_unique: bool) -> CoreResult<Vec<ColumnIndex>> {
    let n = cur.u16("index count")? as usize;
    let mut out = Vec::with_capacity(n.min(cur.remaining()));
    for _ in 0..n {
        let column = cur.string("indexed column")?;
        let unique = with_unique && cur.u8("index flag")? != 0;
        out.push(ColumnIndex { column, unique });
    }
    Ok(out)
}

/// Sparse defaults: `(column u16, value)` pairs. Like the engine, a column
/// number past the last column is skipped, not refused.
fn defaults(cur: &mut Cursor, n_cols: usize) -> CoreResult<Vec<u16>> {
    let n = cur.u16("default count")?;
    let mut out = Vec::new();
    for _ in 0..n {
        let col = cur.u16("default column")?;
        skip_value(cur)?;
        if (col as usize) < n_cols {
            out.push(col);
        }
    }
    Ok(out)
}

/// A value blob: type tag, then 8 bytes (int, float, datetime), 1 (bool),
/// 16 (uuid), a `u32` length and bytes (str, bytes, json), or nothing.
fn skip_value(cur: &mut Cursor) -> CoreResult<()> {
    let at = cur.pos();
    let tag = cur.u8("default value tag")?;
    let len = match tag {
        0 => 0,
        1 | 2 | 5 => 8,
        3 => 1,
        6 => 16,
        4 | 7 | 8 => cur.u32("default value length")? as usize,
        tag => return Err(cur.error(at, format!("unknown default value type {tag}"))),
    };
    let bytes = cur.take(len, "default value")?;
    if tag == 4 && std::str::from_utf8(bytes).is_err() {
        return Err(cur.error(at, "a text default is not UTF-8".into()));
    }
    Ok(())
}

/// Auto-increment columns: a `u16` count of `u16` column numbers.
fn positions(cur: &mut Cursor, n_cols: usize) -> CoreResult<Vec<u16>> {
    let n = cur.u16("auto column count")?;
    let mut out = Vec::new();
    for _ in 0..n {
        let col = cur.u16("auto column")?;
        if (col as usize) < n_cols {
            out.push(col);
        }
    }
    Ok(out)
}

fn expression_indexes(cur: &mut Cursor) -> CoreResult<Vec<ExpressionIndex>> {
    let n = cur.u16("expression index count")? as usize;
    let mut out = Vec::with_capacity(n.min(cur.remaining()));
    for _ in 0..n {
        let at = cur.pos();
        let id = cur.u64("expression index id")?;
        if id == 0 {
            return Err(cur.error(at, "an expression index id is 0".into()));
        }
        let unique = cur.u8("expression index flag")? != 0;
        let canonical_version = cur.u16("expression index canonical version")?;
        let canonical_text = cur.string("expression index canonical text")?;
        let column = cur.string("expression index column")?;
        let path = json_path(cur)?;
        out.push(ExpressionIndex { id, unique, canonical_version, canonical_text, column, path });
    }
    Ok(out)
}

fn json_path(cur: &mut Cursor) -> CoreResult<Vec<PathSegment>> {
    let n = cur.u16("JSON path length")? as usize;
    let mut out = Vec::with_capacity(n.min(cur.remaining()));
    for _ in 0..n {
        let at = cur.pos();
        out.push(match cur.u8("JSON path segment tag")? {
            1 => PathSegment::Key(cur.string("JSON path key")?),
            2 => PathSegment::Index(cur.u32("JSON path index")?),
            tag => return Err(cur.error(at, format!("unknown JSON path segment tag {tag}"))),
        });
    }
    Ok(out)
}

fn links(cur: &mut Cursor) -> CoreResult<Vec<Link>> {
    let n = cur.u32("link count")? as usize;
    let n = cur.count(n, 21, "link")?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let owner = cur.string("link owner")?;
        let name = cur.string("link name")?;
        let target = cur.string("link target")?;
        let local_key = cur.string("link local key")?;
        let target_key = cur.string("link target key")?;
        let at = cur.pos();
        let kind = cur.u8("link kind")?;
        if kind > 1 {
            return Err(cur.error(at, format!("unknown link kind {kind}")));
        }
        out.push(Link { owner, name, target, local_key, target_key, kind });
    }
    Ok(out)
}

/// What the engine checks after parsing: each expression index's identity
/// and JSON root column, unique ids, and `next_index_id` above them all.
fn check_expression_indexes(file: &CatalogFile) -> CoreResult<()> {
    let mut seen = HashSet::new();
    let mut max_id = 0;
    for table in &file.tables {
        for index in &table.expression_indexes {
            let what = format!("expression index {} of table {}", index.id, table.name);
            let identity_ok = index.canonical_version != 0
                && !index.canonical_text.is_empty()
                && (index.canonical_version != 1 || index.canonical_text == canonical_text(index));
            if !identity_ok {
                return Err(invalid(format!("{what} has an invalid canonical identity")));
            }
            match table.columns.iter().find(|c| c.name == index.column) {
                None => return Err(invalid(format!("{what} starts from column {}, absent", index.column))),
                Some(c) if c.type_name != "json" => {
                    return Err(invalid(format!("{what} starts from column {}, not JSON", index.column)))
                }
                Some(_) => {}
            }
            if !seen.insert(index.id) {
                return Err(invalid(format!("{what}: the id is used twice")));
            }
            max_id = max_id.max(index.id);
        }
    }
    match file.next_index_id {
        Some(next) if next <= max_id => {
            Err(invalid(format!("the next index id {next} does not exceed the index id {max_id}")))
        }
        _ => Ok(()),
    }
}

/// Two entries of one name would make one table's files another's.
fn check_table_names(file: &CatalogFile) -> CoreResult<()> {
    let mut seen = HashSet::new();
    match file.tables.iter().find(|t| !seen.insert(t.name.as_str())) {
        Some(t) => Err(invalid(format!("table {} is listed twice", t.name))),
        None => Ok(()),
    }
}

/// The engine's own canonical text of a version-1 path.
fn canonical_text(index: &ExpressionIndex) -> String {
    let segments = index
        .path
        .iter()
        .map(|s| match s {
            PathSegment::Key(k) => StoredJsonPathSegmentV1::Key(k.clone()),
            PathSegment::Index(i) => StoredJsonPathSegmentV1::Index(*i),
        })
        .collect();
    StoredJsonPathV1::new(index.column.clone(), segments).canonical_text()
}

fn invalid(what: String) -> CoreError {
    CoreError::new(ERR_CATALOG, format!("catalog.bin is invalid: {what}"))
}
