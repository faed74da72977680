//! The last step of an online backup: the staged copy of a live server's
//! directory (heaps copied page by page, `wal.log` and the small files under
//! the write freeze, no index files) is a crash image plus its WAL. The
//! engine's normal open recovers it (replays the WAL, rebuilds every index),
//! a checkpoint moves everything into the heaps and empties the WAL, and the
//! result is checked before it is backed up like any stopped directory.
use super::index::Depth;
use super::{bounded, engine_error, guarded, verify, ERR_FINALIZE};
use crate::core::error::{CoreError, CoreResult};
use crate::core::lock::{WriterLock, LOCK_FILE};
use powdb_storage::catalog::{Catalog, CATALOG_VERSION};
use powdb_storage::data_dir::{CATALOG_FILE, READERS_DIR, WAL_FILE};
use std::fs;
use std::io::{self, Read};
use std::path::Path;

/// What the finalized directory holds, as the engine reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finalized {
    /// The engine's durability high-water mark after the checkpoint (highest
    /// page LSN or `catalog.lsn`): the backup's `source_lsn`.
    pub max_lsn: u64,
    /// `catalog.bin`'s active version (5, 6 or 7 for a 0.29 server).
    pub catalog_version: u16,
    /// In catalog order.
    pub tables: Vec<TableSummary>,
    /// How it was recovered: by `Redo`, the copy holds no index file.
    pub route: Route,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSummary {
    pub name: String,
    /// Rows decoded one by one (overflow values read back).
    pub rows: u64,
    /// Column indexes by column, expression indexes as `expr:<canonical text>`.
    pub indexes: Vec<String>,
}

impl Finalized {
    /// Compares the row counts with those read from the server under the
    /// write freeze (table, rows): a copy recovered without the WAL it
    /// needed opens and verifies fine, and only a count shows what it lost.
    pub fn check_rows(&self, expected: &[(String, u64)]) -> CoreResult<()> {
        for (name, want) in expected {
            match self.tables.iter().find(|t| &t.name == name) {
                Some(t) if t.rows == *want => {}
                Some(t) => {
                    return Err(CoreError::new(
                        ERR_FINALIZE,
                        format!("table {name}: the finalized copy holds {} rows, the server held {want}", t.rows),
                    ));
                }
                None => {
                    return Err(CoreError::new(
                        ERR_FINALIZE,
                        format!("table {name} is missing from the finalized copy"),
                    ))
                }
            }
        }
        match self.tables.iter().find(|t| !expected.iter().any(|(name, _)| name == &t.name)) {
            Some(extra) => Err(CoreError::new(
                ERR_FINALIZE,
                format!("table {} is in the finalized copy, not on the server", extra.name),
            )),
            None => Ok(()),
        }
    }
}

/// Where sync keeps its identity; with it the engine refuses a checkpoint
/// that would truncate history it has not archived.
const SYNC_IDENTITY: &str = ".powdb-sync/identity.json";

/// How a staged copy is recovered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// The engine's own open: replay, every index rebuilt in memory and
    /// saved, checked against the rows. Needs memory like a server's.
    Engine,
    /// Our redo of the WAL into the heaps in bounded memory, index files
    /// left for the engine to rebuild at its first open (`bounded.rs`).
    Redo,
    /// `Redo` when the heaps exceed [`AUTO_REDO_HEAP_BYTES`], else `Engine`.
    Auto,
}

/// Above this much heap, the engine's open would need hundreds of MiB.
pub const AUTO_REDO_HEAP_BYTES: u64 = 64 << 20;

/// Recovers `staged` in place with the engine, checkpoints it and verifies
/// it. Writes nothing outside `staged`; leaves no `LOCK`, reader lock or temp
/// file in it.
pub fn finalize(staged: &Path) -> CoreResult<Finalized> {
    finalize_by(staged, Route::Engine)
}

/// [`finalize`] by `route`; a redo that meets a schema change in the WAL
/// leaves the copy untouched and the engine recovers it.
pub fn finalize_by(staged: &Path, route: Route) -> CoreResult<Finalized> {
    preflight(staged)?;
    let route = match route {
        Route::Auto if heap_bytes(staged)? > AUTO_REDO_HEAP_BYTES => Route::Redo,
        Route::Auto => Route::Engine,
        chosen => chosen,
    };
    // A server pointed at this directory by mistake must not open it while
    // the engine works in it.
    under_lock(staged, || {
        let (recovered, route) = guarded("recovering the staged copy", || match route {
            Route::Redo => match bounded::recover(staged)? {
                Ok(lsn) => Ok((lsn, Route::Redo)),
                Err(_) => recover(staged).map(|lsn| (lsn, Route::Engine)),
            },
            _ => recover(staged).map(|lsn| (lsn, Route::Engine)),
        })?;
        let found = guarded("verifying the finalized copy", || match route {
            Route::Redo => bounded::verify(staged),
            _ => verify::wal_is_empty(staged).and_then(|()| verify::verify(staged, Depth::Entries)),
        })?;
        if found.max_lsn != recovered {
            return Err(CoreError::new(
                ERR_FINALIZE,
                format!("the checkpoint ended at LSN {recovered} but the reopened copy reads {}", found.max_lsn),
            ));
        }
        Ok(found)
    })
}

/// Runs `work` holding `dir`'s writer lock; our lock's `LOCK` and anything
/// else a process left are checked even after a failure (so our `LOCK`
/// goes), reported only after success: the first error is the one that says
/// what went wrong.
fn under_lock<T>(dir: &Path, work: impl FnOnce() -> CoreResult<T>) -> CoreResult<T> {
    let lock = WriterLock::acquire(dir)?;
    let outcome = work();
    drop(lock);
    let leftovers = remove_lock_and_check(dir);
    let done = outcome?;
    leftovers?;
    Ok(done)
}

/// Checks a checkpointed directory that was written, not recovered (a table
/// restore at a backup: the backup's heaps and index files beside a catalog
/// rewritten for them), and writes nothing to it: the engine's read-only
/// open, every page, every row decoded, links and views, each index file
/// present with as many entries as rows with a value. A WAL that holds
/// records is refused: such a directory needs [`finalize`].
pub fn check(dir: &Path) -> CoreResult<Finalized> {
    preflight(dir)?;
    // A directory without `wal.log` has nothing to replay (the engine makes
    // one at its first open).
    if dir.join(WAL_FILE).exists() {
        verify::wal_is_empty(dir)?;
    }
    under_lock(dir, || guarded("checking the restored copy", || verify::verify(dir, Depth::Counts)))
}

/// The size of every heap in `dir`.
fn heap_bytes(dir: &Path) -> CoreResult<u64> {
    let mut total = 0;
    for entry in fs::read_dir(dir).map_err(|e| CoreError::io("list", dir, e))? {
        let entry = entry.map_err(|e| CoreError::io("list", dir, e))?;
        if entry.file_name().to_string_lossy().ends_with(".heap") {
            total += entry.metadata().map_err(|e| CoreError::io("stat", &entry.path(), e))?.len();
        }
    }
    Ok(total)
}

/// What must hold before the engine writes anything.
fn preflight(dir: &Path) -> CoreResult<()> {
    let meta = fs::symlink_metadata(dir).map_err(|e| CoreError::io("open the staged copy", dir, e))?;
    if !meta.is_dir() {
        return Err(CoreError::new("ERR_NOT_A_DATA_DIR", format!("staged copy {} is not a directory", dir.display())));
    }
    if dir.join(SYNC_IDENTITY).exists() {
        return Err(CoreError::new(
            "ERR_SYNC_ENABLED",
            format!(
                "{} holds {SYNC_IDENTITY}: a staged copy leaves .powdb-sync/ out, because the engine would \
                 refuse to checkpoint away WAL history it has not archived (the backup records the live \
                 directory's sync identity instead); stage the copy again",
                dir.display()
            ),
        ));
    }
    catalog_version(dir)?;
    if let Some(name) = first_transient(dir)? {
        return Err(CoreError::new(
            ERR_FINALIZE,
            format!(
                "the staged copy {} holds {name}, which a copy must skip (LOCK, readers/, temp files)",
                dir.display()
            ),
        ));
    }
    Ok(())
}

/// `catalog.bin`'s version, refused when this engine does not know it: the
/// engine would refuse it too, but only after starting on the heaps.
fn catalog_version(dir: &Path) -> CoreResult<u16> {
    let path = dir.join(CATALOG_FILE);
    let mut head = [0u8; 6];
    fs::File::open(&path).and_then(|mut f| f.read_exact(&mut head)).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => CoreError::new(
            "ERR_NOT_A_DATA_DIR",
            format!("the staged copy {} has no {CATALOG_FILE}: not a PowDB data directory", dir.display()),
        ),
        io::ErrorKind::UnexpectedEof => CoreError::new("ERR_NOT_A_DATA_DIR", format!("{}: truncated", path.display())),
        _ => CoreError::io("read", &path, e),
    })?;
    if &head[..4] != b"BCAT" {
        return Err(CoreError::new("ERR_NOT_A_DATA_DIR", format!("{}: bad catalog magic", path.display())));
    }
    let version = u16::from_le_bytes([head[4], head[5]]);
    if version == 0 || version > CATALOG_VERSION {
        return Err(CoreError::new(
            "ERR_UNSUPPORTED_FORMAT",
            format!(
                "{}: catalog version {version} is not one the PowDB 0.29 engine reads (1 to {CATALOG_VERSION})",
                path.display()
            ),
        ));
    }
    Ok(version)
}

/// The engine's own recovery, then an explicit checkpoint (a drop would
/// swallow its error). Returns the engine's LSN after it.
fn recover(dir: &Path) -> CoreResult<u64> {
    let mut catalog = Catalog::open(dir).map_err(|e| {
        // The engine does not say which file: one the catalog names.
        let missing = if e.kind() == io::ErrorKind::NotFound { " (a table's .heap file is missing)" } else { "" };
        engine_error(&format!("the engine cannot open the staged copy {}{missing}", dir.display()), e)
    })?;
    catalog.checkpoint().map_err(|e| engine_error(&format!("checkpoint of {}", dir.display()), e))?;
    if catalog.is_sync_poisoned() {
        return Err(CoreError::new(
            ERR_FINALIZE,
            format!("the engine gave up on {} after a storage failure", dir.display()),
        ));
    }
    Ok(catalog.max_lsn())
    // The drop checkpoints again: nothing is left to write.
}

/// Our lock's drop removes `LOCK` while it names us; should that have
/// failed, it goes here. A `LOCK` naming another process is not ours to
/// remove: it is reported, like anything else the engine leaves while it
/// works (a reader lock, a temp file).
pub(super) fn remove_lock_and_check(dir: &Path) -> CoreResult<()> {
    let lock = dir.join(LOCK_FILE);
    let ours = fs::read_to_string(&lock).is_ok_and(|pid| pid.trim() == std::process::id().to_string());
    if ours {
        fs::remove_file(&lock).map_err(|e| CoreError::io("remove", &lock, e))?;
    }
    match first_transient(dir)? {
        Some(name) => Err(CoreError::new(ERR_FINALIZE, format!("{name} is left in {} after finalize", dir.display()))),
        None => Ok(()),
    }
}

/// The first entry of `dir` that belongs to a process rather than to the
/// database: the writer lock, reader locks, temp files (`x.tmp`,
/// `.x.tmp.<pid>.<nanos>`).
fn first_transient(dir: &Path) -> CoreResult<Option<String>> {
    let entries = fs::read_dir(dir).map_err(|e| CoreError::io("list", dir, e))?;
    for entry in entries {
        let name = entry.map_err(|e| CoreError::io("list", dir, e))?.file_name().to_string_lossy().into_owned();
        if name == LOCK_FILE || name == READERS_DIR || name.ends_with(".tmp") || name.contains(".tmp.") {
            return Ok(Some(name));
        }
    }
    Ok(None)
}
