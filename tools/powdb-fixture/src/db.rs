//! An engine-neutral view of a PowDB catalog, so the commands are written once
//! and run against either storage generation.

use std::io;
use std::path::Path;

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
        FixtureRow {
            id,
            name,
            score: Some(id * 7 % 1000),
        }
    }
}

/// The operations the commands need, implemented for each engine generation
/// by [`engine_db!`].
pub trait Db: Sized {
    /// The engine's row address (`types::RowId` of that generation).
    type Rid: Copy;

    /// `Catalog::create`: a new, empty database in `dir`.
    fn create(dir: &Path) -> io::Result<Self>;
    /// `Catalog::open`: replays a non-empty WAL, like a server restart.
    fn open(dir: &Path) -> io::Result<Self>;
    /// Create a table with the fixture shape.
    fn create_table(&mut self, table: &str) -> io::Result<()>;
    fn insert(&mut self, table: &str, row: &FixtureRow) -> io::Result<()>;
    fn create_index(&mut self, table: &str, column: &str) -> io::Result<()>;
    /// Returns the row's address after the update (unchanged when in place).
    fn update(&mut self, table: &str, rid: Self::Rid, row: &FixtureRow) -> io::Result<Self::Rid>;
    fn drop_table(&mut self, table: &str) -> io::Result<()>;
    /// Visit every row of `table` in scan order.
    fn for_each_row(&self, table: &str, f: &mut dyn FnMut(Self::Rid, FixtureRow))
        -> io::Result<()>;
    fn tables(&self) -> Vec<String>;
    fn max_lsn(&self) -> u64;
    /// End of a statement: make the WAL durable the way the engine's own
    /// executor does, so the WAL content matches what a server would write.
    fn commit(&mut self) -> io::Result<()>;
    /// Clean shutdown. Checkpoints explicitly so a failure is reported;
    /// `Drop` would swallow it.
    fn close(self) -> io::Result<()>;
}

/// Implements [`Db`] for one `powdb-storage` generation. Expands inside a
/// module that provides the per-version differences:
/// - `storage`: the engine crate,
/// - `Lock` / `lock(dir)`: the writer lock a server holds while open,
/// - `scan_item(item)`: normalises a `Catalog::scan` item to `io::Result`,
/// - `commit(&mut Catalog)`: the end-of-statement WAL call.
macro_rules! engine_db {
    () => {
        use std::io;
        use std::path::Path;

        use storage::catalog::Catalog;
        use storage::types::{ColumnDef, Row, RowId, Schema, TypeId, Value};

        use crate::db::FixtureRow;

        /// An open catalog. Field order matters: the catalog is dropped (and
        /// checkpointed) before the directory lock is released.
        pub struct Db {
            cat: Catalog,
            _lock: Lock,
        }

        impl crate::db::Db for Db {
            type Rid = RowId;

            fn create(dir: &Path) -> io::Result<Self> {
                // The lock file lives in the directory, so it must exist first.
                std::fs::create_dir_all(dir)?;
                let lock = lock(dir)?;
                let cat = Catalog::create(dir)?;
                Ok(Db { cat, _lock: lock })
            }

            fn open(dir: &Path) -> io::Result<Self> {
                let lock = lock(dir)?;
                let cat = Catalog::open(dir)?;
                Ok(Db { cat, _lock: lock })
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

            fn for_each_row(
                &self,
                table: &str,
                f: &mut dyn FnMut(RowId, FixtureRow),
            ) -> io::Result<()> {
                for item in self.cat.scan(table)? {
                    let (rid, row) = scan_item(item)?;
                    f(rid, from_row(table, row)?);
                }
                Ok(())
            }

            fn tables(&self) -> Vec<String> {
                self.cat
                    .list_tables()
                    .into_iter()
                    .map(String::from)
                    .collect()
            }

            fn max_lsn(&self) -> u64 {
                self.cat.max_lsn()
            }

            fn commit(&mut self) -> io::Result<()> {
                commit(&mut self.cat)
            }

            fn close(mut self) -> io::Result<()> {
                self.cat.checkpoint()
                // Dropping `self` now checkpoints again (a no-op) and closes.
            }
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
            vec![
                Value::Int(row.id),
                Value::Str(row.name.clone()),
                row.score.map_or(Value::Empty, Value::Int),
            ]
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

    engine_db!();
}
