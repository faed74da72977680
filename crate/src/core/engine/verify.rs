//! The checks after the checkpoint, on a read-only reopen (which writes
//! nothing and refuses a WAL that still holds records). They cover what
//! `powdb-cli verify` covers: every heap page (CRC, slot layout, row format),
//! every row decoded through the engine's strict get (overflow chains read
//! back), each index against the rows, links and views against the schema.
use super::index::{Depth, IndexCheck, Indexes};
use super::{engine_error, Finalized, Route, TableSummary, ERR_FINALIZE};
use crate::core::error::{CoreError, CoreResult};
use crate::core::page::PAGE_SIZE;
use powdb_storage::catalog::Catalog;
use powdb_storage::data_dir::WAL_FILE;
use powdb_storage::page::{iter_page_slots, verify_page_layout_bytes};
use powdb_storage::row::{decode_row, row_is_v2, validate_row_format};
use powdb_storage::table::Table;
use powdb_storage::types::RowId;
use powdb_storage::view::ViewRegistry;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// A checkpointed `wal.log`: the file header alone (`PWAL`, version 1, flags 0).
const EMPTY_WAL: [u8; 8] = *b"PWAL\x01\x00\x00\x00";
/// Page type byte of a data page (slots and rows).
const DATA_PAGE: u8 = 1;

fn failed(message: String) -> CoreError {
    CoreError::new(ERR_FINALIZE, message)
}

/// Checks `dir` (its WAL checked empty first: [`wal_is_empty`]) and reads
/// what it holds, column indexes to `depth`. Every failure names what failed.
pub(super) fn verify(dir: &Path, depth: Depth) -> CoreResult<Finalized> {
    let catalog = Catalog::open_read_only(dir)
        .map_err(|e| engine_error(&format!("the engine cannot reopen {} read-only", dir.display()), e))?;
    links(&catalog)?;
    views(dir, &catalog)?;
    let mut tables = Vec::new();
    for name in catalog.list_tables() {
        tables.push(table(dir, &catalog, name, depth)?);
    }
    Ok(Finalized {
        max_lsn: catalog.max_lsn(),
        catalog_version: catalog.active_catalog_version(),
        tables,
        route: Route::Engine,
    })
}

/// After the checkpoint every change is in the heaps: a record left in the
/// WAL would be a change the backup does not hold.
pub(super) fn wal_is_empty(dir: &Path) -> CoreResult<()> {
    let path = dir.join(WAL_FILE);
    let mut bytes = Vec::new();
    File::open(&path).and_then(|f| f.take(64).read_to_end(&mut bytes)).map_err(|e| CoreError::io("read", &path, e))?;
    if bytes != EMPTY_WAL {
        return Err(failed(format!(
            "{} is not empty after the checkpoint ({} bytes, expected the 8-byte header alone)",
            path.display(),
            path.metadata().map_or(bytes.len() as u64, |m| m.len())
        )));
    }
    Ok(())
}

/// Each link's owner and target tables and key columns exist (the engine's
/// open does not check them).
fn links(catalog: &Catalog) -> CoreResult<()> {
    for link in catalog.links() {
        let what = format!("link {}.{}", link.owner_type, link.name);
        let has = |table: &str, column: &str| catalog.schema(table).map(|s| s.column_index(column).is_some());
        match (has(&link.owner_type, &link.local_key), has(&link.target_type, &link.target_key)) {
            (None, _) => return Err(failed(format!("{what}: owner table {} is missing", link.owner_type))),
            (Some(false), _) => return Err(failed(format!("{what}: local key column {} is missing", link.local_key))),
            (_, None) => return Err(failed(format!("{what}: target table {} is missing", link.target_type))),
            (_, Some(false)) => {
                return Err(failed(format!("{what}: target key column {} is missing", link.target_key)));
            }
            _ => {}
        }
        if catalog.link_kind(&link.owner_type, &link.name).is_none() {
            return Err(failed(format!("{what}: its cardinality cannot be derived")));
        }
    }
    Ok(())
}

/// `views.bin` parses, and each view's backing table and dependencies exist.
fn views(dir: &Path, catalog: &Catalog) -> CoreResult<()> {
    let registry = ViewRegistry::open(dir).map_err(|e| engine_error("views.bin", e))?;
    registry.validate_backing_tables(catalog).map_err(|e| engine_error("views.bin", e))?;
    for name in registry.list_views() {
        let Some(view) = registry.get(name) else { continue };
        if let Some(missing) = view.depends_on.iter().find(|t| catalog.schema(t).is_none()) {
            return Err(failed(format!("view {name} depends on table {missing}, which is missing")));
        }
    }
    Ok(())
}

fn table(dir: &Path, catalog: &Catalog, name: &str, depth: Depth) -> CoreResult<TableSummary> {
    let table = catalog.get_table(name).ok_or_else(|| failed(format!("table {name} is listed but not open")))?;
    let mut indexes = Indexes::of(dir, catalog, name, depth)?;
    let rows = heap_rows(dir, table, name, &mut indexes.checks)?;
    indexes.finish(catalog)?;
    Ok(TableSummary { name: name.to_string(), rows, indexes: indexes.names })
}

/// Every page straight off disk (not through the engine's caches): its CRC
/// where it has one, its slot layout; then each row of a data page: its
/// format, decoded (a row with spilled values through the strict get, which
/// follows overflow chains and fails where a scan would hand back empty
/// cells) and handed to the index checks. One read of the heap; named by
/// page. Returns the row count.
pub(super) fn heap_rows(dir: &Path, table: &Table, name: &str, checks: &mut [IndexCheck]) -> CoreResult<u64> {
    let path = dir.join(format!("{name}.heap"));
    let mut file = File::open(&path).map_err(|e| CoreError::io("open", &path, e))?;
    let mut page = vec![0u8; PAGE_SIZE];
    let mut page_id = 0u32;
    let mut count = 0u64;
    loop {
        match read_page(&mut file, &mut page) {
            Ok(false) => return Ok(count),
            Ok(true) => {}
            Err(e) => return Err(failed(format!("table {name}: {}: page {page_id}: {e}", path.display()))),
        }
        verify_page_layout_bytes(&page)
            .map_err(|e| failed(format!("table {name}: page {page_id} of {}: {e}", path.display())))?;
        if page[4] == DATA_PAGE {
            for (slot_index, raw) in iter_page_slots(&page) {
                validate_row_format(raw).map_err(|e| {
                    failed(format!("table {name}: page {page_id} of {}: slot {slot_index}: {e}", path.display()))
                })?;
                check_row(table, name, RowId { page_id, slot_index }, raw, checks)?;
                count += 1;
            }
        }
        page_id += 1;
    }
}

/// One whole page into `page`; false at the end of the file.
fn read_page(file: &mut File, page: &mut [u8]) -> io::Result<bool> {
    let mut filled = 0;
    while filled < page.len() {
        match file.read(&mut page[filled..])? {
            0 if filled == 0 => return Ok(false),
            0 => return Err(io::Error::other(format!("the heap ends {filled} bytes into it (not whole pages)"))),
            n => filled += n,
        }
    }
    Ok(true)
}

/// A row that has the row format: decoded, and handed to the index checks.
fn check_row(table: &Table, name: &str, rid: RowId, raw: &[u8], checks: &mut [IndexCheck]) -> CoreResult<()> {
    let at = || format!("table {name}: row {}:{}", rid.page_id, rid.slot_index);
    let row = if row_is_v2(raw) {
        table
            .get(rid)
            .map_err(|e| engine_error(&at(), e))?
            .ok_or_else(|| failed(format!("{} is listed by the page but cannot be read", at())))?
    } else {
        decode_row(table.schema(), raw)
    };
    for check in checks.iter_mut() {
        check.row(table, rid, &row)?;
    }
    Ok(())
}
