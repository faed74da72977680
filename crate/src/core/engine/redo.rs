//! Recovery of a staged online copy in bounded memory: the WAL's row records
//! applied to the heaps page by page, by the rules of the engine's own replay
//! (`Catalog::replay_records` in powdb-storage 0.29.0), without opening the
//! catalog. The engine's open also rebuilds every index in memory (its
//! B-trees are held whole, about twice the heap's size), which on a large
//! database needs as much memory as the server; here no index is built: the
//! copy leaves them out and the engine rebuilds them at its first open.
use super::schema::table_schema;
use super::ERR_FINALIZE;
use crate::core::catalog::CatalogFile;
use crate::core::error::{CoreError, CoreResult};
use crate::core::wal::record::{UnitHeader, BEGIN, COMMIT, OVERFLOW_FREE, OVERFLOW_WRITE, ROLLBACK};
use crate::core::wal::stream::WalStream;
use powdb_storage::heap::DirtyPageBudget;
use powdb_storage::table::Table;
use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::Arc;

const INSERT: u8 = 1;
const UPDATE: u8 = 2;
const DELETE: u8 = 3;
/// CreateTable .. DropColumn: replayed by name, which only the engine does.
const DDL: std::ops::RangeInclusive<u8> = 6..=9;
/// The engine's allowance past its page ceiling (`REPLAY_PAGE_SLACK`).
const PAGE_SLACK: u64 = 64;
/// Dirty pages held before they are written, across all heaps.
const DIRTY_BUDGET: usize = 32 << 20;

/// What a redo did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Redone {
    /// The highest LSN in the log (uncommitted records included, as the
    /// engine raises `catalog.lsn` to it), 0 for an empty log.
    pub max_record_lsn: u64,
    /// The highest page LSN of the heaps afterwards.
    pub max_page_lsn: u64,
    pub applied: u64,
    pub skipped: u64,
}

/// Where the engine must recover the copy itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NeedsEngine {
    /// The log holds a schema change.
    Ddl { lsn: u64 },
}

/// Applies `dir`'s `wal.log` to its heaps and flushes them (data synced);
/// leaves the WAL and `catalog.lsn` to the caller.
pub fn redo(dir: &Path, catalog: &CatalogFile) -> CoreResult<Result<Redone, NeedsEngine>> {
    let wal = dir.join(powdb_storage::data_dir::WAL_FILE);
    let plan = match plan(&wal)? {
        Ok(plan) => plan,
        Err(needs) => return Ok(Err(needs)),
    };
    let mut heaps = Heaps::open(dir, catalog)?;
    let ceiling = heaps.max_pages() + plan.records + PAGE_SLACK;
    let mut done = Redone { max_record_lsn: plan.max_lsn, ..Redone::default() };
    let mut stream = WalStream::open(&wal)?;
    let mut index = 0usize;
    while let Some((header, data)) = stream.next_record()? {
        crate::core::cancel::check()?;
        let committed = plan.committed[index];
        index += 1;
        if !committed || !matches!(header.kind, INSERT | UPDATE | DELETE | OVERFLOW_WRITE) {
            // Boundaries were read by the plan; an OverflowFree only returns
            // pages to an in-memory free list that this copy never allocates from.
            continue;
        }
        if heaps.apply(&header, &data, ceiling)? {
            done.applied += 1;
        } else {
            done.skipped += 1;
        }
    }
    heaps.flush()?;
    done.max_page_lsn = heaps.max_page_lsn();
    Ok(Ok(done))
}

/// The log read once ahead: which records belong to committed work, how
/// many there are, the highest LSN, and whether a schema change is in it.
struct Plan {
    committed: Vec<bool>,
    records: u64,
    max_lsn: u64,
}

/// The engine's rule: when any Begin/Commit/Rollback is present, a row
/// record of a transaction applies only if that transaction's Commit is in
/// the log; transaction 0 always applies; without boundaries all apply.
fn plan(wal: &Path) -> CoreResult<Result<Plan, NeedsEngine>> {
    let mut stream = WalStream::open(wal)?;
    let mut committed = Vec::new();
    let mut has_boundaries = false;
    let mut max_lsn = 0u64;
    // Open transactions and their row records, newest last, as the engine keeps them.
    let mut pending: Vec<(u64, Vec<usize>)> = Vec::new();
    while let Some((h, _)) = stream.next_record()? {
        crate::core::cancel::check()?;
        if DDL.contains(&h.kind) {
            return Ok(Err(NeedsEngine::Ddl { lsn: h.lsn }));
        }
        max_lsn = max_lsn.max(h.lsn);
        let index = committed.len();
        committed.push(false);
        let row = matches!(h.kind, INSERT | UPDATE | DELETE | OVERFLOW_WRITE | OVERFLOW_FREE);
        has_boundaries |= matches!(h.kind, BEGIN | COMMIT | ROLLBACK);
        match h.kind {
            _ if row && h.tx_id == 0 => committed[index] = true,
            _ if row => match pending.iter_mut().rev().find(|(tx, _)| *tx == h.tx_id) {
                Some((_, rows)) => rows.push(index),
                None => pending.push((h.tx_id, vec![index])),
            },
            BEGIN if h.tx_id != 0 => pending.push((h.tx_id, Vec::new())),
            COMMIT if h.tx_id != 0 => {
                if let Some(at) = pending.iter().rposition(|(tx, _)| *tx == h.tx_id) {
                    for row in pending.remove(at).1 {
                        committed[row] = true;
                    }
                }
            }
            ROLLBACK if h.tx_id != 0 => {
                if let Some(at) = pending.iter().rposition(|(tx, _)| *tx == h.tx_id) {
                    pending.remove(at);
                }
            }
            _ => {}
        }
    }
    if !has_boundaries {
        committed.fill(true);
    }
    let records = committed.len() as u64;
    Ok(Ok(Plan { committed, records, max_lsn }))
}

/// Every table's heap, opened without its indexes, sharing one dirty budget.
struct Heaps {
    tables: HashMap<String, Table>,
}

impl Heaps {
    fn open(dir: &Path, catalog: &CatalogFile) -> CoreResult<Heaps> {
        let budget = Arc::new(DirtyPageBudget::new(DIRTY_BUDGET));
        let mut tables = HashMap::new();
        for entry in &catalog.tables {
            let mut table = Table::open(table_schema(entry)?, dir)
                .map_err(|e| failed(format!("open the heap of table {}", entry.name), e))?;
            table.heap.set_dirty_budget(budget.clone());
            tables.insert(entry.name.clone(), table);
        }
        Ok(Heaps { tables })
    }

    fn max_page_lsn(&self) -> u64 {
        self.tables.values().map(|t| t.heap.max_page_lsn()).max().unwrap_or(0)
    }

    fn max_pages(&self) -> u64 {
        self.tables.values().map(|t| u64::from(t.heap.num_pages())).max().unwrap_or(0)
    }

    /// One committed row or overflow record; false when its page already
    /// holds it (the page's LSN is at least the record's).
    fn apply(&mut self, h: &UnitHeader, data: &[u8], ceiling: u64) -> CoreResult<bool> {
        let at = |what: &str| format!("WAL record at LSN {} ({what})", h.lsn);
        if h.kind == OVERFLOW_WRITE {
            let (table, page, next, chunk) =
                payload::overflow_write(data).ok_or_else(|| bad(at("overflow write payload")))?;
            let heap = &mut self.table(&table, h.lsn)?.heap;
            check_page(&table, page, ceiling, h.lsn)?;
            if heap.overflow_page_lsn(page) >= h.lsn {
                return Ok(false);
            }
            heap.write_overflow_page(page, next, chunk, h.lsn).map_err(|e| failed(at("overflow write"), e))?;
            return Ok(true);
        }
        let (table, rid, row) = payload::row(data).ok_or_else(|| bad(at("row payload")))?;
        check_page(&table, rid.page_id, ceiling, h.lsn)?;
        let heap = &mut self.table(&table, h.lsn)?.heap;
        if heap.page_lsn(rid.page_id) >= h.lsn {
            return Ok(false);
        }
        let applied = match h.kind {
            INSERT => heap.insert_at(rid, row).and_then(|()| heap.set_page_lsn(rid.page_id, h.lsn)),
            UPDATE => heap.update(rid, row).and_then(|moved| {
                // As the engine does: a relocated row stamps its old page too.
                if moved != rid {
                    heap.set_page_lsn(rid.page_id, h.lsn)?;
                }
                heap.set_page_lsn(moved.page_id, h.lsn)
            }),
            _ => {
                // The engine ignores a delete of a slot already empty.
                let _ = heap.delete(rid);
                heap.set_page_lsn(rid.page_id, h.lsn)
            }
        };
        applied.map_err(|e| failed(at(&format!("table {table}, row {}:{}", rid.page_id, rid.slot_index)), e))?;
        Ok(true)
    }

    /// A record for a table the catalog lacks is refused: the engine drops it
    /// with a warning, which in a backup would be a lost change.
    fn table(&mut self, name: &str, lsn: u64) -> CoreResult<&mut Table> {
        self.tables.get_mut(name).ok_or_else(|| {
            CoreError::new(
                ERR_FINALIZE,
                format!("WAL record at LSN {lsn} is for table {name}, which catalog.bin does not have"),
            )
        })
    }

    fn flush(&mut self) -> CoreResult<()> {
        for (name, table) in &mut self.tables {
            table
                .heap
                .flush_all_dirty()
                .and_then(|()| table.heap.flush())
                .map_err(|e| failed(format!("flush the heap of table {name}"), e))?;
        }
        Ok(())
    }
}

/// A page id past what the log could have grown the heap to comes from a
/// damaged record (the heap would grow to it one page at a time).
fn check_page(table: &str, page: u32, ceiling: u64, lsn: u64) -> CoreResult<()> {
    if u64::from(page) > ceiling {
        return Err(CoreError::new(
            ERR_FINALIZE,
            format!("WAL record at LSN {lsn} for table {table} targets page {page}, beyond the {ceiling}-page ceiling"),
        ));
    }
    Ok(())
}

fn failed(doing: String, err: io::Error) -> CoreError {
    CoreError::new(ERR_FINALIZE, format!("{doing}: {err}"))
}

fn bad(what: String) -> CoreError {
    CoreError::new(ERR_FINALIZE, format!("{what} does not decode"))
}

/// The payloads of row and overflow records (`catalog/wal_payload.rs` of
/// powdb-storage 0.29.0, private there).
mod payload {
    use powdb_storage::types::RowId;

    struct Reader<'a> {
        data: &'a [u8],
        at: usize,
    }

    impl<'a> Reader<'a> {
        fn take(&mut self, n: usize) -> Option<&'a [u8]> {
            let bytes = self.data.get(self.at..self.at.checked_add(n)?)?;
            self.at += n;
            Some(bytes)
        }
        fn u16(&mut self) -> Option<u16> {
            self.take(2).map(|b| u16::from_le_bytes([b[0], b[1]]))
        }
        fn u32(&mut self) -> Option<u32> {
            self.take(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        }
        fn name(&mut self, len: usize) -> Option<String> {
            self.take(len).and_then(|b| std::str::from_utf8(b).ok()).map(str::to_string)
        }
    }

    /// `name_len u32 | name | page u32 | slot u16 | row_len u32 | row`.
    pub fn row(data: &[u8]) -> Option<(String, RowId, &[u8])> {
        let mut r = Reader { data, at: 0 };
        let len = r.u32()? as usize;
        let name = r.name(len)?;
        let rid = RowId { page_id: r.u32()?, slot_index: r.u16()? };
        let row_len = r.u32()? as usize;
        Some((name, rid, r.take(row_len)?))
    }

    /// `name_len u16 | name | page u32 | next u32 | chunk_len u16 | chunk`.
    pub fn overflow_write(data: &[u8]) -> Option<(String, u32, u32, &[u8])> {
        let mut r = Reader { data, at: 0 };
        let len = r.u16()? as usize;
        let name = r.name(len)?;
        let (page, next) = (r.u32()?, r.u32()?);
        let chunk_len = r.u16()? as usize;
        Some((name, page, next, r.take(chunk_len)?))
    }
}
