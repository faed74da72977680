//! `dump`: the rows of one table of a data directory, written as JSON Lines
//! or CSV, in bounded memory whatever the table's size. The rows are read as
//! the engine reads them: each page CRC-checked as its heap scan checks it,
//! rows through its row decoding (overflow values reassembled from their
//! chains by its heap, CRC-checked), but without opening the catalog, which
//! would load every index into memory: one row is held at a time (a value at
//! most the engine's 64 MiB), plus one page, the output buffer, and, once a
//! row has spilled values, the few bytes per heap page of the free-space map
//! the heap builds at open. The directory must be at rest:
//! checkpointed (an empty WAL) or recovered by the engine first.
mod encode;
mod sink;
mod text;

pub use encode::{Encoder, Format};
pub use sink::{Output, Sink};

use super::cancel;
use super::catalog::{CatalogFile, TableChoice, TableEntry};
use super::error::{CoreError, CoreResult};
use super::page::PAGE_SIZE;
use powdb_storage::heap::HeapFile;
use powdb_storage::page::Page;
use powdb_storage::row::{decode_row_v2, row_is_v2, RowLayout};
use powdb_storage::types::{ColumnDef, Row, Schema, TypeId};
use std::fs::File;
use std::io::{self, Read};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

/// What a dump wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dumped {
    pub rows: u64,
    pub bytes: u64,
}

/// Writes every row of `table` (in `dir`, at rest) to `output`.
pub fn dump_table(dir: &Path, table: &str, format: Format, output: &Output) -> CoreResult<Dumped> {
    let path = dir.join("catalog.bin");
    let bytes = std::fs::read(&path).map_err(|e| CoreError::io("read", &path, e))?;
    let catalog = CatalogFile::parse(&bytes)?;
    let Some(entry) = catalog.table(table) else {
        let has = catalog.table_names();
        let has = if has.is_empty() { "no table".to_string() } else { has.join(", ") };
        return Err(CoreError::new("ERR_NO_TABLE", format!("the backup has no table {table}; it has: {has}")));
    };
    // The heap's name, checked as a table restore checks it (no path can come from the catalog).
    let heap_name = catalog.select(&[TableChoice::keep(table)])?.files.swap_remove(0).from;
    let schema = schema(entry)?;
    let damaged = |e: String| {
        CoreError::new("ERR_PAGE_FORMAT", format!("table {table}: {heap_name} does not read as the engine's heap: {e}"))
    };
    let heap_path = dir.join(&heap_name);
    let mut pages = Pages::open(&heap_path)?;
    // The engine's heap, for overflow chains only: its open reads every page once for a free-space map, which
    // rows stored inline never need.
    let mut heap: Option<HeapFile> = None;
    let layout = RowLayout::new(&schema);
    let names: Vec<&str> = entry.columns.iter().map(|c| c.name.as_str()).collect();
    let encoder = Encoder::new(format, &names);
    let mut sink = Sink::open(output)?;
    let mut line = Vec::new();
    encoder.header(&mut line);
    sink.write(&line)?;
    let mut rows = 0u64;
    // Each page as the engine's scan reads it: CRC-checked, overflow pages holding no rows. Progress is counted
    // in heap bytes, a page at a time; an abort is checked there too.
    while let Some(page) = pages.next().map_err(|e| damaged(e.to_string()))? {
        for (_, data) in page.iter() {
            let row = if row_is_v2(data) {
                if heap.is_none() {
                    heap = Some(HeapFile::open_read_only(&heap_path).map_err(|e| damaged(e.to_string()))?);
                }
                read_row(heap.as_ref(), &schema, &layout, data)
            } else {
                read_row(None, &schema, &layout, data)
            }
            .map_err(damaged)?;
            line.clear();
            encoder.row(&row, &mut line)?;
            sink.write(&line)?;
            rows += 1;
        }
        cancel::advance(PAGE_SIZE as u64);
        cancel::check()?;
    }
    Ok(Dumped { rows, bytes: sink.finish()? })
}

/// A heap's pages, one at a time, each checked as the engine's scan checks it.
struct Pages {
    file: File,
    buf: Vec<u8>,
}

impl Pages {
    fn open(path: &Path) -> CoreResult<Pages> {
        let file = File::open(path).map_err(|e| CoreError::io("open", path, e))?;
        Ok(Pages { file, buf: vec![0u8; PAGE_SIZE] })
    }

    /// The next page; `None` at the end; an error for a page cut short or failing its CRC.
    fn next(&mut self) -> io::Result<Option<Page>> {
        let mut filled = 0;
        while filled < PAGE_SIZE {
            match self.file.read(&mut self.buf[filled..])? {
                0 if filled == 0 => return Ok(None),
                0 => return Err(io::Error::other(format!("the heap ends {filled} bytes into a page"))),
                n => filled += n,
            }
        }
        Page::from_bytes_verified(&self.buf).map(Some).map_err(io::Error::from)
    }
}

/// One row's values as the engine decodes them, its overflow values read
/// from their chains (through `heap`, which a row with spilled values
/// needs). A malformed row (which page checks let through) is an error,
/// never a panic.
fn read_row(heap: Option<&HeapFile>, schema: &Schema, layout: &RowLayout, data: &[u8]) -> Result<Row, String> {
    let decoded = catch_unwind(AssertUnwindSafe(|| {
        decode_row_v2(schema, layout, data, |stub| match heap {
            Some(heap) => heap.read_overflow_value(stub).map_err(io::Error::from),
            None => Err(io::Error::other("a row stored inline points to an overflow chain")),
        })
    }));
    match decoded {
        Ok(Ok(row)) => Ok(row),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("a row does not decode with the table's schema".to_string()),
    }
}

/// The engine's schema of a catalog entry.
fn schema(entry: &TableEntry) -> CoreResult<Schema> {
    let columns = entry
        .columns
        .iter()
        .map(|c| {
            let type_id = type_id(c.type_name).ok_or_else(|| {
                CoreError::new("ERR_CATALOG", format!("column {}.{} has an unknown type", entry.name, c.name))
            })?;
            Ok(ColumnDef { name: c.name.clone(), type_id, required: c.required, position: c.position })
        })
        .collect::<CoreResult<_>>()?;
    Ok(Schema { table_name: entry.name.clone(), columns })
}

fn type_id(name: &str) -> Option<TypeId> {
    Some(match name {
        "empty" => TypeId::Empty,
        "int" => TypeId::Int,
        "float" => TypeId::Float,
        "bool" => TypeId::Bool,
        "str" => TypeId::Str,
        "datetime" => TypeId::DateTime,
        "uuid" => TypeId::Uuid,
        "bytes" => TypeId::Bytes,
        "json" => TypeId::Json,
        _ => return None,
    })
}

#[cfg(test)]
mod tests;
