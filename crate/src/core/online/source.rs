//! The live data directory's facts a stage checks before it starts, and its
//! small files, read under the freeze. Nothing here writes to the directory or
//! takes its `LOCK` or a reader lock: `LOCK` is only read, for the server's pid.
use crate::core::error::{CoreError, CoreResult};
use std::path::Path;
use std::time::Duration;

/// The newest `catalog.bin` format this build reads (PowDB 0.29 writes 5 to 7).
pub const MAX_CATALOG_VERSION: u16 = 7;
pub const CATALOG: &str = "catalog.bin";
pub const WAL: &str = "wal.log";
const AUTH: &str = "auth.json";
/// Written by tmp + rename (or, for `auth.json`, rarely and in place), small,
/// and read whole under the freeze. `catalog.bin` is required, the others
/// exist or not.
const SMALL_FILES: [&str; 4] = [CATALOG, "catalog.lsn", "views.bin", AUTH];
/// `auth.json` is written in place by `powdb-cli useradd/passwd`, which no
/// freeze holds: a read that does not parse is read again.
const AUTH_READS: u32 = 20;
const AUTH_PAUSE: Duration = Duration::from_millis(2);

/// Refuses what a stage cannot copy: `staging` not an empty directory of its
/// own, a catalog newer than this build reads, a directory no server holds,
/// and a server that writes no WAL.
pub fn preflight(data_dir: &Path, staging: &Path) -> CoreResult<()> {
    check_staging(data_dir, staging)?;
    check_catalog(data_dir)?;
    let Some(pid) = server_pid(data_dir)? else { return Ok(()) };
    if wal_mode(pid).is_some_and(|m| m == "off") {
        return Err(CoreError::new(
            "ERR_WAL_OFF",
            format!(
                "the server serving {} (pid {pid}) runs with POWDB_SYNC_MODE=off: it writes no WAL, so what it \
                 committed since its last checkpoint exists only in its memory and no copy of the files holds it; \
                 restart it with POWDB_SYNC_MODE=full (or normal) to back it up online, or stop it and back up offline",
                data_dir.display()
            ),
        ));
    }
    Ok(())
}

fn check_staging(data_dir: &Path, staging: &Path) -> CoreResult<()> {
    let canon = |p: &Path| std::fs::canonicalize(p).map_err(|e| CoreError::io("resolve", p, e));
    let (source, target) = (canon(data_dir)?, canon(staging)?);
    if target.starts_with(&source) {
        return Err(CoreError::new(
            "ERR_INVALID_ARG",
            format!("the staging directory {} is inside the data directory {}", staging.display(), data_dir.display()),
        ));
    }
    let mut entries = std::fs::read_dir(&target).map_err(|e| CoreError::io("list", staging, e))?;
    if entries.next().is_some() {
        return Err(CoreError::new("ERR_DEST_NOT_EMPTY", format!("{} is not empty", staging.display())));
    }
    Ok(())
}

/// Reads `catalog.bin`'s magic and version.
fn check_catalog(data_dir: &Path) -> CoreResult<()> {
    let path = data_dir.join(CATALOG);
    let head = std::fs::read(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => CoreError::new(
            "ERR_NOT_A_DATA_DIR",
            format!("{} has no {CATALOG}: not a PowDB data directory", data_dir.display()),
        ),
        _ => CoreError::io("read", &path, e),
    })?;
    if head.len() < 6 || &head[..4] != b"BCAT" {
        return Err(CoreError::new("ERR_NOT_A_DATA_DIR", format!("{}: bad catalog magic", path.display())));
    }
    let version = u16::from_le_bytes([head[4], head[5]]);
    if version > MAX_CATALOG_VERSION {
        return Err(CoreError::new(
            "ERR_UNSUPPORTED_FORMAT",
            format!(
                "{}: catalog format v{version} is newer than this powdb-backup reads (up to v{MAX_CATALOG_VERSION}); \
                 upgrade powdb-backup",
                path.display()
            ),
        ));
    }
    Ok(())
}

/// The pid `LOCK` names: a serving writer holds `LOCK` and writes its pid in
/// it (in place: a read can catch it empty, so it is read again). No `LOCK`
/// means no server writes this directory; None when it never reads as a pid.
fn server_pid(data_dir: &Path) -> CoreResult<Option<u32>> {
    let path = data_dir.join("LOCK");
    for _ in 0..5 {
        match std::fs::read_to_string(&path) {
            Ok(text) => match text.trim().parse() {
                Ok(pid) => return Ok(Some(pid)),
                Err(_) => std::thread::sleep(Duration::from_millis(2)),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(CoreError::new(
                    "ERR_SERVER_MISMATCH",
                    format!(
                        "{} has no LOCK: no server is serving it (an online backup copies a directory a live \
                         powdb-server serves; a stopped one is backed up offline)",
                        data_dir.display()
                    ),
                ))
            }
            Err(e) => return Err(CoreError::io("read", &path, e)),
        }
    }
    Ok(None)
}

/// The server's `POWDB_SYNC_MODE` (the WAL mode is set by this variable only),
/// lowercased: None when unset or when its environment cannot be read (another
/// user's process, another pid namespace, not Linux). Then the stage still
/// finds out, later: a server without WAL writes no Begin for our freeze.
fn wal_mode(pid: u32) -> Option<String> {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    environ
        .split(|&b| b == 0)
        .find_map(|kv| kv.strip_prefix(b"POWDB_SYNC_MODE="))
        .map(|v| String::from_utf8_lossy(v).trim().to_ascii_lowercase())
        .filter(|v| !v.is_empty())
}

/// The small files as read under the freeze: (name, bytes) of those present.
pub struct SmallFiles(pub Vec<(&'static str, Vec<u8>)>);

impl SmallFiles {
    /// Reads them; `Err(reason)` when `auth.json` never read as JSON (a
    /// write in progress: the attempt is retried).
    pub fn read(data_dir: &Path) -> CoreResult<Result<SmallFiles, String>> {
        let mut files = Vec::new();
        for name in SMALL_FILES {
            let Some(mut bytes) = read_optional(&data_dir.join(name))? else {
                if name == CATALOG {
                    return Err(CoreError::new(
                        "ERR_NOT_A_DATA_DIR",
                        format!("{} has no {CATALOG}", data_dir.display()),
                    ));
                }
                continue;
            };
            let mut reads = 1;
            while name == AUTH && serde_json::from_slice::<serde_json::Value>(&bytes).is_err() {
                if reads == AUTH_READS {
                    return Ok(Err(format!("{AUTH} did not read as JSON in {AUTH_READS} reads")));
                }
                std::thread::sleep(AUTH_PAUSE);
                bytes = read_optional(&data_dir.join(name))?.unwrap_or_default();
                reads += 1;
            }
            files.push((name, bytes));
        }
        Ok(Ok(SmallFiles(files)))
    }

    pub fn catalog(&self) -> &[u8] {
        self.0.iter().find(|(n, _)| *n == CATALOG).map_or(&[], |(_, b)| b.as_slice())
    }
}

/// A file's bytes, None when it does not exist.
pub fn read_optional(path: &Path) -> CoreResult<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CoreError::io("read", path, e)),
    }
}
