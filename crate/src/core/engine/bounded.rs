//! Finalize in bounded memory: the redo (`redo.rs`), then what the engine's
//! checkpoint would leave (`catalog.lsn` raised, the WAL emptied), then the
//! checks of `verify.rs` that need no index: every page, every row decoded
//! (overflow chains read back), counted. Index files are left out; the
//! engine rebuilds them at the first open after a restore.
use super::redo::{redo, NeedsEngine};
use super::schema::table_schema;
use super::verify::{heap_rows, wal_is_empty};
use super::{engine_error, Finalized, Route, TableSummary};
use crate::core::catalog::{CatalogFile, TableEntry};
use crate::core::error::{CoreError, CoreResult};
use powdb_storage::data_dir::{CATALOG_FILE, CATALOG_LSN_FILE, WAL_FILE};
use powdb_storage::table::Table;
use std::fs;
use std::io::Write;
use std::path::Path;

/// A checkpointed `wal.log`: its header alone.
const EMPTY_WAL: [u8; 8] = *b"PWAL\x01\x00\x00\x00";

/// Recovers `dir` in place; `Err(NeedsEngine)` before anything is written
/// when only the engine can.
pub fn recover(dir: &Path) -> CoreResult<Result<u64, NeedsEngine>> {
    let catalog = read_catalog(dir)?;
    let redone = match redo(dir, &catalog)? {
        Ok(redone) => redone,
        Err(needs) => return Ok(Err(needs)),
    };
    remove_index_files(dir, &catalog)?;
    // The engine's LSN after its checkpoint: the highest of the log's
    // records, the pages and catalog.lsn, which is raised to it.
    let durable = read_durable_lsn(dir)?;
    let lsn = durable.max(redone.max_record_lsn).max(redone.max_page_lsn);
    if lsn > durable {
        replace(dir, CATALOG_LSN_FILE, &lsn.to_le_bytes())?;
    }
    // Last: until the heaps and catalog.lsn are durable, the WAL still holds
    // every change.
    replace(dir, WAL_FILE, &EMPTY_WAL)?;
    Ok(Ok(lsn))
}

/// Checks the recovered `dir` and reads what it holds.
pub fn verify(dir: &Path) -> CoreResult<Finalized> {
    wal_is_empty(dir)?;
    let catalog = read_catalog(dir)?;
    let mut max_lsn = read_durable_lsn(dir)?;
    let mut tables = Vec::new();
    for entry in &catalog.tables {
        let table = Table::open(table_schema(entry)?, dir)
            .map_err(|e| engine_error(&format!("open the heap of table {}", entry.name), e))?;
        let rows = heap_rows(dir, &table, &entry.name, &mut [])?;
        max_lsn = max_lsn.max(table.heap.max_page_lsn());
        tables.push(TableSummary { name: entry.name.clone(), rows, indexes: index_names(entry) });
    }
    Ok(Finalized { max_lsn, catalog_version: catalog.version, tables, route: Route::Redo })
}

fn read_catalog(dir: &Path) -> CoreResult<CatalogFile> {
    let path = dir.join(CATALOG_FILE);
    CatalogFile::parse(&fs::read(&path).map_err(|e| CoreError::io("read", &path, e))?)
}

/// `catalog.lsn` (0 when absent, as the engine reads it).
fn read_durable_lsn(dir: &Path) -> CoreResult<u64> {
    let path = dir.join(CATALOG_LSN_FILE);
    match fs::read(&path) {
        Ok(bytes) => bytes.as_slice().try_into().map(u64::from_le_bytes).map_err(|_| {
            CoreError::new(super::ERR_FINALIZE, format!("{}: {} bytes, expected 8", path.display(), bytes.len()))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(CoreError::io("read", &path, e)),
    }
}

/// Index files in the copy would be older than its heaps; the engine
/// rebuilds missing ones at open, and trusts present ones.
fn remove_index_files(dir: &Path, catalog: &CatalogFile) -> CoreResult<()> {
    for entry in &catalog.tables {
        let columns = entry.indexes.iter().map(|i| format!("{}_{}.idx", entry.name, i.column));
        let expressions = entry.expression_indexes.iter().map(|i| format!("{}_{}.eidx", entry.name, i.id));
        for name in columns.chain(expressions) {
            let path = dir.join(&name);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(CoreError::io("remove", &path, e)),
            }
        }
    }
    Ok(())
}

/// Replaces `dir/name` with `bytes` durably (temp file, fsync, rename,
/// directory fsync).
fn replace(dir: &Path, name: &str, bytes: &[u8]) -> CoreResult<()> {
    let path = dir.join(name);
    let tmp = dir.join(format!("{name}.tmp"));
    let mut file = fs::File::create(&tmp).map_err(|e| CoreError::io("create", &tmp, e))?;
    file.write_all(bytes).and_then(|()| file.sync_all()).map_err(|e| CoreError::io("write", &tmp, e))?;
    drop(file);
    fs::rename(&tmp, &path).map_err(|e| CoreError::io("rename", &tmp, e))?;
    fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| CoreError::io("sync", dir, e))
}

/// As the engine's verify names them: columns, then `expr:<canonical text>`.
fn index_names(entry: &TableEntry) -> Vec<String> {
    let columns = entry.indexes.iter().map(|i| i.column.clone());
    columns.chain(entry.expression_indexes.iter().map(|i| format!("expr:{}", i.canonical_text))).collect()
}
