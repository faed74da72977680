//! An engine-neutral view of a PowDB catalog, so the commands are written once
//! and run against either storage generation.

use std::io;
use std::path::Path;

use crate::value::{Column, Val};

/// One row of the fixture table shape: `id` Int required, `name` Str
/// required, `score` Int optional.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FixtureRow {
    pub id: i64,
    pub name: String,
    pub score: Option<i64>,
}

impl FixtureRow {
    /// The canonical row for `id`. `name` is padded with 'x' to `pad` bytes so
    /// tests control the row size (it is never shorter than its prefix).
    pub fn new(id: i64, pad: usize) -> FixtureRow {
        let mut name = format!("row-{id}-");
        if name.len() < pad {
            name.extend(std::iter::repeat_n('x', pad - name.len()));
        }
        FixtureRow { id, name, score: Some(id * 7 % 1000) }
    }
}

/// What a generation can do, so generic code never attempts what the engine
/// lacks (or gets wrong).
pub struct Caps {
    /// Release name for messages.
    pub name: &'static str,
    /// Rows larger than a page spill into overflow chains (0.11+). 0.4.7
    /// rejects any row over one page.
    pub overflow: bool,
    /// Heap files start with a page-0 `PHEAP` superblock (0.5+).
    pub heap_superblock: bool,
    /// `alter table drop column` re-resolves the remaining indexes by name.
    /// 0.4.7 rebuilds them with their stale column positions, so dropping an
    /// indexed column, or one before an indexed column, corrupts (or panics).
    pub drop_column_keeps_indexes: bool,
    /// `Catalog::begin_transaction` / `commit_transaction` /
    /// `rollback_to_last_sync` (0.29). 0.4.7 has no explicit transactions on
    /// its catalog (its `tx` module is an unused in-memory manager).
    pub transactions: bool,
    /// Sync (`powdb-sync`: `.powdb-sync/identity.json` and retained WAL
    /// segments) exists for this generation (0.29 only).
    pub sync: bool,
}

/// Whether `dir` is sync-enabled: `.powdb-sync/identity.json` exists. The
/// 0.29 engine itself decides on exactly this file (it refuses a plain
/// checkpoint or recovery that would truncate a non-empty WAL).
pub fn sync_enabled(dir: &Path) -> bool {
    dir.join(powdb_sync::SYNC_STATE_DIR).join(powdb_sync::IDENTITY_FILE).exists()
}

/// One index of a table, as `dump` lists it.
pub enum IndexName {
    Column(String),
    /// 0.29 expression index, by its canonical text.
    Expression(String),
}

/// The fixture's errors: any, with a message that says what was being done.
pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Opens the database in `dir` with the engine generation `D`.
pub fn open<D: Db>(dir: &Path) -> Result<D> {
    D::open(dir).map_err(|e| format!("opening {}: {e}", dir.display()).into())
}

/// The operations the commands need, implemented for each engine generation
/// by [`engine_db!`].
pub trait Db: Sized {
    /// The engine's row address (`types::RowId` of that generation).
    type Rid: Copy + Eq + std::fmt::Debug;
    const CAPS: Caps;

    /// `Catalog::create`: a new, empty database in `dir`.
    fn create(dir: &Path) -> io::Result<Self>;
    /// `Catalog::open`: replays a non-empty WAL, like a server restart. In a
    /// sync-enabled directory (0.29) the open is sync-aware, as a sync-aware
    /// server's: the replayed WAL is archived into a retained segment before
    /// recovery truncates it, and [`Db::close`] (or a drop) archives the
    /// session's records before its checkpoint truncates them.
    fn open(dir: &Path) -> io::Result<Self>;
    /// Create a table with the fixture shape.
    fn create_table(&mut self, table: &str) -> io::Result<()>;
    fn insert(&mut self, table: &str, row: &FixtureRow) -> io::Result<()>;
    fn create_index(&mut self, table: &str, column: &str) -> io::Result<()>;
    /// Returns the row's address after the update (unchanged when in place).
    fn update(&mut self, table: &str, rid: Self::Rid, row: &FixtureRow) -> io::Result<Self::Rid>;
    fn drop_table(&mut self, table: &str) -> io::Result<()>;
    /// Visit every row of `table` in scan order.
    fn for_each_row(&self, table: &str, f: &mut dyn FnMut(Self::Rid, FixtureRow)) -> io::Result<()>;
    fn tables(&self) -> Vec<String>;
    fn max_lsn(&self) -> u64;
    /// End of a statement: make the WAL durable the way the engine's own
    /// executor does, so the WAL content matches what a server would write.
    fn commit(&mut self) -> io::Result<()>;
    /// Clean shutdown. Checkpoints explicitly so a failure is reported;
    /// `Drop` would swallow it. Sync-enabled: the WAL is archived into a
    /// retained segment first.
    fn close(self) -> io::Result<()>;

    /// The directory was sync-enabled when opened (or became so through
    /// [`Db::enable_sync`]).
    fn sync_enabled(&self) -> bool;
    /// Whether generated rows may spill into overflow pages. Not in a
    /// sync-enabled directory: powdb-sync 0.29.0 refuses the overflow WAL
    /// records (types 11 and 12), so archiving, checkpoint and reopen would
    /// fail there. Random ops keep rows inline instead (explicit `big` does
    /// not, to reproduce that engine bug on purpose).
    fn overflow(&self) -> bool {
        Self::CAPS.overflow && !self.sync_enabled()
    }
    /// Enable sync like `powdb-cli sync-enable`: create the identity if
    /// missing and checkpoint through the archive hook.
    fn enable_sync(&mut self) -> io::Result<()>;
    /// Explicit transaction: BEGIN (written and fsynced).
    fn begin(&mut self) -> io::Result<()>;
    /// COMMIT of the explicit transaction (written and fsynced).
    fn commit_tx(&mut self) -> io::Result<()>;
    /// ROLLBACK of the explicit transaction: its records are cut from the WAL
    /// and the catalog reopened from disk (sync-aware when sync is enabled).
    fn rollback(&mut self) -> io::Result<()>;

    // Generic (any table shape) operations, for `workload`, `dump` and the
    // single-op commands.

    /// Opens for inspection: read-only where the generation offers it and
    /// the directory is checkpointed (nothing is written, no lock taken),
    /// else a normal open.
    fn open_snapshot(dir: &Path) -> io::Result<Self>;
    fn columns(&self, table: &str) -> io::Result<Vec<Column>>;
    fn create_table_with(&mut self, table: &str, columns: &[Column]) -> io::Result<()>;
    fn insert_row(&mut self, table: &str, row: &[Val]) -> io::Result<Self::Rid>;
    /// Returns the row's address after the update.
    fn update_row(&mut self, table: &str, rid: Self::Rid, row: &[Val]) -> io::Result<Self::Rid>;
    fn delete_rows(&mut self, table: &str, rids: &[Self::Rid]) -> io::Result<u64>;
    /// Visit every row in scan order, with every column.
    fn scan_rows(&self, table: &str, f: &mut dyn FnMut(Self::Rid, Vec<Val>)) -> io::Result<()>;
    fn indexes(&self, table: &str) -> Vec<IndexName>;
    /// Every row address the column index holds for `key`.
    fn index_rids(&self, table: &str, column: &str, key: &Val) -> io::Result<Vec<Self::Rid>>;
    /// Entries in the column index (each non-Empty value of each row).
    fn index_entries(&self, table: &str, column: &str) -> Option<usize>;
    fn add_column(&mut self, table: &str, column: &Column) -> io::Result<()>;
    fn drop_column(&mut self, table: &str, column: &str) -> io::Result<()>;
    /// Overflow sweep of every table; `None` where the generation has none.
    fn sweep(&mut self) -> io::Result<Option<usize>>;
}

/// Implements [`Db`] for one `powdb-storage` generation. Expands inside a
/// module that provides the per-version differences:
/// - `storage`: the engine crate,
/// - `Lock` / `lock(dir)`: the writer lock a server holds while open,
/// - `scan_item(item)`: normalises a `Catalog::scan` item to `io::Result`,
/// - `commit(&mut Catalog)`: the end-of-statement WAL call,
/// - `open_catalog(dir)`: the read-write open, and whether it is sync-aware,
/// - `checkpoint(&mut Catalog)`: the close-time checkpoint,
/// - `enable_sync`, `begin`, `commit_tx`, `rollback`: see the trait,
/// - `CAPS`, `open_snapshot`, `index_names`, `sweep`, `reread`: see the trait,
/// - `to_val` / `from_val` / `to_type` / `from_type`: value conversions (the
///   generations' `Value`/`TypeId` differ by the 0.29 `Json` variant).
macro_rules! engine_db {
    () => {
        use std::io;
        use std::path::Path;

        use storage::catalog::Catalog;
        use storage::types::{ColumnDef, Row, RowId, Schema, TypeId, Value};

        use crate::db::{FixtureRow, IndexName};
        use crate::value::{ColType, Column, Val};

        /// An open catalog. Field order matters: the catalog is dropped (and
        /// checkpointed) before the directory lock is released.
        pub struct Db {
            cat: Catalog,
            _lock: Option<Lock>,
            /// Opened with `Catalog::open_read_only`: nothing to checkpoint.
            read_only: bool,
            /// Sync-enabled directory: checkpoints go through the archive
            /// hook, on close and on drop.
            sync: bool,
            /// `close` checkpointed already: the drop has nothing to do.
            closed: bool,
        }

        /// Like `powdb_sync::SyncCatalog`'s drop: a sync-enabled catalog
        /// dropped without `close` (an error part-way, say) archives and
        /// checkpoints, best effort. The catalog's own drop then finds an
        /// empty WAL; without this it would refuse to truncate and leave the
        /// records for the next sync-aware open to archive.
        impl Drop for Db {
            fn drop(&mut self) {
                if self.sync && !self.read_only && !self.closed {
                    let _ = checkpoint(&mut self.cat);
                }
            }
        }

        impl crate::db::Db for Db {
            type Rid = RowId;
            const CAPS: crate::db::Caps = CAPS;

            fn create(dir: &Path) -> io::Result<Self> {
                // The lock file lives in the directory, so it must exist first.
                std::fs::create_dir_all(dir)?;
                let lock = lock(dir)?;
                let cat = Catalog::create(dir)?;
                Ok(Db { cat, _lock: Some(lock), read_only: false, sync: false, closed: false })
            }

            fn open(dir: &Path) -> io::Result<Self> {
                let lock = lock(dir)?;
                let (cat, sync) = open_catalog(dir)?;
                Ok(Db { cat, _lock: Some(lock), read_only: false, sync, closed: false })
            }

            fn create_table(&mut self, table: &str) -> io::Result<()> {
                self.cat.create_table(schema(table))
            }

            fn insert(&mut self, table: &str, row: &FixtureRow) -> io::Result<()> {
                self.cat.insert(table, &to_row(row)).map(drop)
            }

            fn create_index(&mut self, table: &str, column: &str) -> io::Result<()> {
                self.cat.create_index(table, column)
            }

            fn update(&mut self, table: &str, rid: RowId, row: &FixtureRow) -> io::Result<RowId> {
                self.cat.update(table, rid, &to_row(row))
            }

            fn drop_table(&mut self, table: &str) -> io::Result<()> {
                self.cat.drop_table(table)
            }

            fn for_each_row(&self, table: &str, f: &mut dyn FnMut(RowId, FixtureRow)) -> io::Result<()> {
                for item in self.cat.scan(table)? {
                    let (rid, row) = scan_item(item)?;
                    f(rid, from_row(table, row)?);
                }
                Ok(())
            }

            fn tables(&self) -> Vec<String> {
                self.cat.list_tables().into_iter().map(String::from).collect()
            }

            fn max_lsn(&self) -> u64 {
                self.cat.max_lsn()
            }

            fn commit(&mut self) -> io::Result<()> {
                commit(&mut self.cat)
            }

            fn close(mut self) -> io::Result<()> {
                if self.read_only {
                    return Ok(());
                }
                checkpoint(&mut self.cat)?;
                self.closed = true;
                Ok(())
                // Dropping `self` now checkpoints again (a no-op) and closes.
            }

            fn sync_enabled(&self) -> bool {
                self.sync
            }

            fn enable_sync(&mut self) -> io::Result<()> {
                enable_sync(&mut self.cat)?;
                self.sync = true;
                Ok(())
            }

            fn begin(&mut self) -> io::Result<()> {
                begin(&mut self.cat)
            }

            fn commit_tx(&mut self) -> io::Result<()> {
                commit_tx(&mut self.cat)
            }

            fn rollback(&mut self) -> io::Result<()> {
                rollback(&mut self.cat)
            }

            fn open_snapshot(dir: &Path) -> io::Result<Self> {
                match open_snapshot(dir)? {
                    Some(cat) => {
                        Ok(Db { cat, _lock: None, read_only: true, sync: crate::db::sync_enabled(dir), closed: false })
                    }
                    None => Self::open(dir),
                }
            }

            fn columns(&self, table: &str) -> io::Result<Vec<Column>> {
                let schema = self.cat.schema(table).ok_or_else(|| not_found(table))?;
                Ok(schema
                    .columns
                    .iter()
                    .map(|c| Column { name: c.name.clone(), ty: to_type(c.type_id), required: c.required })
                    .collect())
            }

            fn create_table_with(&mut self, table: &str, columns: &[Column]) -> io::Result<()> {
                let mut defs = Vec::with_capacity(columns.len());
                for (position, c) in columns.iter().enumerate() {
                    defs.push(column_def(c, position)?);
                }
                self.cat.create_table(Schema { table_name: table.to_string(), columns: defs })
            }

            fn insert_row(&mut self, table: &str, row: &[Val]) -> io::Result<RowId> {
                let row = engine_row(row)?;
                self.cat.insert(table, &row)
            }

            fn update_row(&mut self, table: &str, rid: RowId, row: &[Val]) -> io::Result<RowId> {
                let row = engine_row(row)?;
                self.cat.update(table, rid, &row)
            }

            fn delete_rows(&mut self, table: &str, rids: &[RowId]) -> io::Result<u64> {
                self.cat.delete_many(table, rids)
            }

            fn scan_rows(&self, table: &str, f: &mut dyn FnMut(RowId, Vec<Val>)) -> io::Result<()> {
                for item in self.cat.scan(table)? {
                    let (rid, row) = scan_item(item)?;
                    let row = reread(&self.cat, table, rid, row)?;
                    f(rid, row.into_iter().map(to_val).collect());
                }
                Ok(())
            }

            fn indexes(&self, table: &str) -> Vec<IndexName> {
                index_names(&self.cat, table)
            }

            fn index_rids(&self, table: &str, column: &str, key: &Val) -> io::Result<Vec<RowId>> {
                let tbl = self.cat.get_table(table).ok_or_else(|| not_found(table))?;
                Ok(tbl.index_lookup_all(column, &from_val(key)?))
            }

            fn index_entries(&self, table: &str, column: &str) -> Option<usize> {
                Some(self.cat.get_table(table)?.index(column)?.len())
            }

            fn add_column(&mut self, table: &str, column: &Column) -> io::Result<()> {
                let position = self.cat.schema(table).ok_or_else(|| not_found(table))?.columns.len();
                self.cat.alter_table_add_column(table, column_def(column, position)?)
            }

            fn drop_column(&mut self, table: &str, column: &str) -> io::Result<()> {
                self.cat.alter_table_drop_column(table, column)
            }

            fn sweep(&mut self) -> io::Result<Option<usize>> {
                sweep(&mut self.cat)
            }
        }

        fn not_found(table: &str) -> io::Error {
            io::Error::new(io::ErrorKind::NotFound, format!("table '{table}' not found"))
        }

        fn column_def(c: &Column, position: usize) -> io::Result<ColumnDef> {
            Ok(ColumnDef {
                name: c.name.clone(),
                type_id: from_type(c.ty)?,
                required: c.required,
                position: position as u16,
            })
        }

        fn engine_row(row: &[Val]) -> io::Result<Row> {
            row.iter().map(from_val).collect()
        }

        // Used by the conversions of a generation lacking a type (0.4.7: Json).
        #[allow(dead_code)]
        fn unsupported(what: &str) -> io::Error {
            io::Error::new(io::ErrorKind::Unsupported, format!("{what} does not exist in {}", CAPS.name))
        }

        fn schema(table: &str) -> Schema {
            let column = |name: &str, type_id, required, position| ColumnDef {
                name: name.to_string(),
                type_id,
                required,
                position,
            };
            Schema {
                table_name: table.to_string(),
                columns: vec![
                    column("id", TypeId::Int, true, 0),
                    column("name", TypeId::Str, true, 1),
                    column("score", TypeId::Int, false, 2),
                ],
            }
        }

        fn to_row(row: &FixtureRow) -> Row {
            vec![Value::Int(row.id), Value::Str(row.name.clone()), row.score.map_or(Value::Empty, Value::Int)]
        }

        fn from_row(table: &str, row: Row) -> io::Result<FixtureRow> {
            match <[Value; 3]>::try_from(row) {
                Ok([Value::Int(id), Value::Str(name), score]) => {
                    let score = match score {
                        Value::Int(s) => Some(s),
                        _ => None,
                    };
                    Ok(FixtureRow { id, name, score })
                }
                other => Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("table {table}: row does not have the fixture shape: {other:?}"),
                )),
            }
        }
    };
}

/// powdb-storage 0.4.7.
pub mod old {
    use engine_old as storage;

    /// 0.4.7 has no directory lock.
    type Lock = ();

    fn lock(_dir: &Path) -> io::Result<Lock> {
        Ok(())
    }

    fn scan_item(item: (RowId, Row)) -> io::Result<(RowId, Row)> {
        Ok(item)
    }

    /// 0.4.7 has no commit records: a statement ends with a WAL fsync.
    fn commit(cat: &mut Catalog) -> io::Result<()> {
        cat.sync_wal()
    }

    /// 0.4.7 knows nothing of sync: always the plain open.
    fn open_catalog(dir: &Path) -> io::Result<(Catalog, bool)> {
        Ok((Catalog::open(dir)?, false))
    }

    fn checkpoint(cat: &mut Catalog) -> io::Result<()> {
        cat.checkpoint()
    }

    fn enable_sync(_cat: &mut Catalog) -> io::Result<()> {
        Err(unsupported("sync (retained WAL segments)"))
    }

    fn begin(_cat: &mut Catalog) -> io::Result<()> {
        Err(unsupported("an explicit transaction API"))
    }

    fn commit_tx(_cat: &mut Catalog) -> io::Result<()> {
        Err(unsupported("an explicit transaction API"))
    }

    fn rollback(_cat: &mut Catalog) -> io::Result<()> {
        Err(unsupported("an explicit transaction API"))
    }

    const CAPS: crate::db::Caps = crate::db::Caps {
        name: "powdb-storage 0.4.7",
        overflow: false,
        heap_superblock: false,
        drop_column_keeps_indexes: false,
        transactions: false,
        sync: false,
    };

    /// 0.4.7 has no read-only open: the caller falls back to `open`.
    fn open_snapshot(_dir: &Path) -> io::Result<Option<Catalog>> {
        Ok(None)
    }

    /// 0.4.7 keeps its index list private; `has_index` per schema column
    /// gives the same set (it has no expression indexes).
    fn index_names(cat: &Catalog, table: &str) -> Vec<IndexName> {
        let Some(schema) = cat.schema(table) else {
            return Vec::new();
        };
        schema
            .columns
            .iter()
            .filter(|c| cat.has_index(table, &c.name))
            .map(|c| IndexName::Column(c.name.clone()))
            .collect()
    }

    /// 0.4.7 has no overflow pages, hence no sweep (and no vacuum/compact).
    fn sweep(_cat: &mut Catalog) -> io::Result<Option<usize>> {
        Ok(None)
    }

    /// Every 0.4.7 row is inline: the scanned row is the row.
    fn reread(_cat: &Catalog, _table: &str, _rid: RowId, row: Row) -> io::Result<Row> {
        Ok(row)
    }

    fn to_val(v: Value) -> Val {
        match v {
            Value::Int(x) => Val::Int(x),
            Value::Float(x) => Val::Float(x),
            Value::Bool(x) => Val::Bool(x),
            Value::Str(x) => Val::Str(x),
            Value::DateTime(x) => Val::DateTime(x),
            Value::Uuid(x) => Val::Uuid(x),
            Value::Bytes(x) => Val::Bytes(x),
            Value::Empty => Val::Empty,
        }
    }

    fn from_val(v: &Val) -> io::Result<Value> {
        Ok(match v {
            Val::Int(x) => Value::Int(*x),
            Val::Float(x) => Value::Float(*x),
            Val::Bool(x) => Value::Bool(*x),
            Val::Str(x) => Value::Str(x.clone()),
            Val::DateTime(x) => Value::DateTime(*x),
            Val::Uuid(x) => Value::Uuid(*x),
            Val::Bytes(x) => Value::Bytes(x.clone()),
            Val::Json(_) => return Err(unsupported("a Json value")),
            Val::Empty => Value::Empty,
        })
    }

    fn to_type(t: TypeId) -> ColType {
        match t {
            TypeId::Empty => ColType::Empty,
            TypeId::Int => ColType::Int,
            TypeId::Float => ColType::Float,
            TypeId::Bool => ColType::Bool,
            TypeId::Str => ColType::Str,
            TypeId::DateTime => ColType::DateTime,
            TypeId::Uuid => ColType::Uuid,
            TypeId::Bytes => ColType::Bytes,
        }
    }

    fn from_type(t: ColType) -> io::Result<TypeId> {
        Ok(match t {
            ColType::Empty => TypeId::Empty,
            ColType::Int => TypeId::Int,
            ColType::Float => TypeId::Float,
            ColType::Bool => TypeId::Bool,
            ColType::Str => TypeId::Str,
            ColType::DateTime => TypeId::DateTime,
            ColType::Uuid => TypeId::Uuid,
            ColType::Bytes => TypeId::Bytes,
            ColType::Json => return Err(unsupported("the Json type")),
        })
    }

    engine_db!();
}

/// powdb-storage 0.29.0.
pub mod new {
    use engine_new as storage;

    /// The `Catalog` itself does not lock the directory; the server does, so
    /// the fixture takes the same `LOCK` a live server would hold.
    type Lock = storage::dir_lock::DirLock;

    fn lock(dir: &Path) -> io::Result<Lock> {
        Lock::acquire(dir)
    }

    fn scan_item(item: io::Result<(RowId, Row)>) -> io::Result<(RowId, Row)> {
        item
    }

    /// Appends the Commit records for the statement's autocommit
    /// transactions and fsyncs, as the 0.29 executor does. Without them a
    /// crash-replay treats the rows as uncommitted once any boundary exists.
    fn commit(cat: &mut Catalog) -> io::Result<()> {
        cat.commit_autocommit()
    }

    /// The identity of a sync-enabled directory, `None` without
    /// `.powdb-sync/identity.json`; a corrupt one is an error, as in
    /// powdb-sync.
    fn sync_identity(dir: &Path) -> io::Result<Option<powdb_sync::DatabaseIdentity>> {
        match powdb_sync::read_identity(dir) {
            Ok(identity) => Ok(Some(identity)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The archive hook: the WAL records a truncation is about to drop become
    /// one immutable retained segment first. The same hook
    /// `powdb_sync::open_preserving_retained_segments` and the sync
    /// checkpoints install.
    fn archive_hook(
        identity: powdb_sync::DatabaseIdentity,
    ) -> impl FnMut(&Path, &[storage::wal::WalRecord]) -> io::Result<()> {
        move |dir, records| powdb_sync::archive_wal_records_for_identity(dir, identity, records)
    }

    /// `powdb_sync::open_preserving_retained_segments`, keeping the plain
    /// `Catalog` (its `SyncCatalog` wrapper cannot be built from one, and
    /// `create` returns a plain one): sync-aware when the identity exists.
    fn open_catalog(dir: &Path) -> io::Result<(Catalog, bool)> {
        match sync_identity(dir)? {
            Some(identity) => Ok((Catalog::open_with_wal_archive(dir, archive_hook(identity))?, true)),
            None => Ok((Catalog::open(dir)?, false)),
        }
    }

    /// Plain checkpoint, or archive-then-truncate when sync is enabled.
    fn checkpoint(cat: &mut Catalog) -> io::Result<()> {
        powdb_sync::checkpoint_preserving_retained_segments_if_enabled(cat)
    }

    /// `powdb-cli sync-enable`: identity created if missing, then a
    /// checkpoint through the archive hook (a segment only if the WAL holds
    /// records, which it does not right after an open).
    fn enable_sync(cat: &mut Catalog) -> io::Result<()> {
        powdb_sync::checkpoint_with_retained_segments(cat)
    }

    fn begin(cat: &mut Catalog) -> io::Result<()> {
        cat.begin_transaction()
    }

    fn commit_tx(cat: &mut Catalog) -> io::Result<()> {
        cat.commit_transaction()
    }

    /// Sync-enabled: committed records before the transaction are archived
    /// before the rollback cuts the WAL, as a sync-aware server does.
    fn rollback(cat: &mut Catalog) -> io::Result<()> {
        match sync_identity(cat.data_dir())? {
            Some(identity) => cat.rollback_to_last_sync_with_wal_archive(archive_hook(identity)),
            None => cat.rollback_to_last_sync(),
        }
    }

    const CAPS: crate::db::Caps = crate::db::Caps {
        name: "powdb-storage 0.29.0",
        overflow: true,
        heap_superblock: true,
        drop_column_keeps_indexes: true,
        transactions: true,
        sync: true,
    };

    /// `Catalog::open_read_only` opens every file read-only and writes
    /// nothing, but refuses a WAL holding records (a crashed directory):
    /// `None` then, and the caller recovers it with a normal open. No reader
    /// lock is taken, because `DirLock::acquire_reader` would leave a
    /// `readers/` directory behind in the fixture.
    fn open_snapshot(dir: &Path) -> io::Result<Option<Catalog>> {
        let wal = dir.join("wal.log");
        if storage::wal::wal_has_committed_records(&wal)? {
            return Ok(None);
        }
        Catalog::open_read_only(dir).map(Some)
    }

    fn index_names(cat: &Catalog, table: &str) -> Vec<IndexName> {
        use storage::catalog::IndexKeySource;
        cat.index_metadata(table)
            .unwrap_or_default()
            .into_iter()
            .map(|m| match m.source {
                IndexKeySource::Column { column } => IndexName::Column(column),
                IndexKeySource::Expression { canonical_text, .. } => IndexName::Expression(canonical_text),
            })
            .collect()
    }

    /// `Catalog::sweep_all`: the mark-and-sweep of unreferenced overflow
    /// pages (the only sweep/vacuum/compact the 0.29 catalog offers). It
    /// returns reclaimed pages to the in-memory free list and logs one
    /// `OverflowFree` WAL record per table; the pages stay on disk, typed
    /// Overflow, until a later spill reuses them.
    fn sweep(cat: &mut Catalog) -> io::Result<Option<usize>> {
        cat.sweep_all().map(Some)
    }

    /// `Table::scan` turns a row whose overflow chain is corrupt into all
    /// Empty cells; `get` reports the error instead, so rows of a table
    /// that has ever spilled are read again through it.
    fn reread(cat: &Catalog, table: &str, rid: RowId, row: Row) -> io::Result<Row> {
        if !cat.table_has_overflow(table) {
            return Ok(row);
        }
        cat.get(table, rid)?.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("table {table}: scanned row {rid:?} cannot be read back"),
            )
        })
    }

    fn to_val(v: Value) -> Val {
        match v {
            Value::Int(x) => Val::Int(x),
            Value::Float(x) => Val::Float(x),
            Value::Bool(x) => Val::Bool(x),
            Value::Str(x) => Val::Str(x),
            Value::DateTime(x) => Val::DateTime(x),
            Value::Uuid(x) => Val::Uuid(x),
            Value::Bytes(x) => Val::Bytes(x),
            Value::Json(x) => Val::Json(x.into_vec()),
            Value::Empty => Val::Empty,
        }
    }

    fn from_val(v: &Val) -> io::Result<Value> {
        Ok(match v {
            Val::Int(x) => Value::Int(*x),
            Val::Float(x) => Value::Float(*x),
            Val::Bool(x) => Value::Bool(*x),
            Val::Str(x) => Value::Str(x.clone()),
            Val::DateTime(x) => Value::DateTime(*x),
            Val::Uuid(x) => Value::Uuid(*x),
            Val::Bytes(x) => Value::Bytes(x.clone()),
            Val::Json(x) => Value::Json(x.clone().into_boxed_slice()),
            Val::Empty => Value::Empty,
        })
    }

    fn to_type(t: TypeId) -> ColType {
        match t {
            TypeId::Empty => ColType::Empty,
            TypeId::Int => ColType::Int,
            TypeId::Float => ColType::Float,
            TypeId::Bool => ColType::Bool,
            TypeId::Str => ColType::Str,
            TypeId::DateTime => ColType::DateTime,
            TypeId::Uuid => ColType::Uuid,
            TypeId::Bytes => ColType::Bytes,
            TypeId::Json => ColType::Json,
        }
    }

    fn from_type(t: ColType) -> io::Result<TypeId> {
        Ok(match t {
            ColType::Empty => TypeId::Empty,
            ColType::Int => TypeId::Int,
            ColType::Float => TypeId::Float,
            ColType::Bool => TypeId::Bool,
            ColType::Str => TypeId::Str,
            ColType::DateTime => TypeId::DateTime,
            ColType::Uuid => TypeId::Uuid,
            ColType::Bytes => TypeId::Bytes,
            ColType::Json => TypeId::Json,
        })
    }

    engine_db!();
}
