//! The commands, written once and instantiated per reference generation.
//!
//! Both releases expose the same entry points (`full_backup`,
//! `incremental_backup`, `restore`, `restore_chain`, the two manifest types),
//! so one macro body serves both; only the extra manifest fields of 0.29, the
//! way a source is opened, its restore sync modes and its `verify_backup`
//! differ.

use serde_json::{json, Value};

use crate::args::SyncMode;
use std::io;
use std::path::{Path, PathBuf};

/// Expands to a module running the commands against one reference release.
/// `$open` opens the source directory (the result derefs to the catalog the
/// backup functions take). `|base, inc| { ... }` copies generation-specific
/// increment fields onto the chained base (0.29 also records the catalog
/// format and sync identity).
macro_rules! generation {
    ($module:ident, $backup:ident, $open:path, |$base:ident, $inc:ident| $advance:block) => {
        pub mod $module {
            use super::*;
            use $backup::{BackupManifest, ChangedFile, FileEntry, IncrementManifest};

            pub fn full(data_dir: &Path, dest: &Path) -> io::Result<Value> {
                let mut catalog = $open(data_dir)?;
                let m = $backup::full_backup(&mut catalog, dest)?;
                drop(catalog); // release the engine before we report success
                Ok(json!({"ok": true, "source_lsn": m.source_lsn, "files": m.files.len()}))
            }

            /// The reference has no "effective manifest" helper (its own test
            /// builds the base for a second increment by hand), so we do the
            /// same: start from the full manifest, check each increment
            /// continues the chain exactly as `restore_chain` would, move to its
            /// high-water LSN and fold in the files it copied whole, since their
            /// hashes decide whether the next increment copies them again.
            fn chained_base(full_dir: &Path, apply: &[PathBuf]) -> io::Result<BackupManifest> {
                let mut $base = BackupManifest::read(full_dir)?;
                for dir in apply {
                    let $inc = IncrementManifest::read(dir)?;
                    if $inc.base_source_lsn != $base.source_lsn {
                        return Err(io::Error::other(format!(
                            "increment chain broken at {}: expected base lsn {}, increment built on {}",
                            dir.display(),
                            $base.source_lsn,
                            $inc.base_source_lsn
                        )));
                    }
                    for cf in &$inc.changed {
                        if let ChangedFile::Whole { name, len, blake3_hex } = cf {
                            let entry = FileEntry {
                                name: name.clone(),
                                len: *len,
                                blake3_hex: blake3_hex.clone(),
                            };
                            match $base.files.iter_mut().find(|f| f.name == *name) {
                                Some(f) => *f = entry,
                                None => $base.files.push(entry),
                            }
                        }
                    }
                    $base.source_lsn = $inc.source_lsn;
                    $advance
                }
                // Same order full_backup writes.
                $base.files.sort_by(|a, b| a.name.cmp(&b.name));
                Ok($base)
            }

            pub fn incr(
                data_dir: &Path,
                dest: &Path,
                full_dir: &Path,
                apply: &[PathBuf],
            ) -> io::Result<Value> {
                let base = chained_base(full_dir, apply)?;
                let mut catalog = $open(data_dir)?;
                let m = $backup::incremental_backup(&mut catalog, &base, dest)?;
                drop(catalog);
                Ok(json!({
                    "ok": true,
                    "base_source_lsn": m.base_source_lsn,
                    "source_lsn": m.source_lsn,
                    "changed": m.changed.len(),
                }))
            }
        }
    };
}

use powdb_sync::open_preserving_retained_segments as open_new;
use storage_old::catalog::Catalog as CatalogOld;

/// 0.4.7 has no sync: the plain open.
fn open_old(data_dir: &Path) -> io::Result<CatalogOld> {
    CatalogOld::open(data_dir)
}

generation!(old, backup_old, open_old, |base, inc| {
    // 0.4.7 manifests carry nothing beyond the LSN and the file list.
});

// `open_new` is the sync-aware open: in a sync-enabled directory
// (`.powdb-sync/identity.json`) a plain `Catalog::open` refuses to recover a
// non-empty WAL, and a plain checkpoint to truncate one; this one archives the
// WAL into a retained segment first (and so does its drop). Elsewhere it is
// `Catalog::open`.
generation!(new, backup_new, open_new, |base, inc| {
    // incremental_backup refuses a base whose catalog format or sync identity
    // differs from the live one, so carry the latest values forward.
    base.catalog_version = inc.catalog_version;
    base.sync = inc.sync.clone();
});

/// 0.4.7 restores have no sync identity to handle: strip only (the caller
/// refuses the other modes).
pub fn restore_old(backup_dir: &Path, dest: &Path, apply: &[PathBuf]) -> io::Result<Value> {
    if apply.is_empty() {
        backup_old::restore(backup_dir, dest)?;
    } else {
        let incs: Vec<&Path> = apply.iter().map(PathBuf::as_path).collect();
        backup_old::restore_chain(backup_dir, &incs, dest)?;
    }
    Ok(json!({"ok": true, "sync_mode": "strip"}))
}

/// `restore_with_sync_mode` / `restore_chain_with_sync_mode` (0.29).
pub fn restore_new(backup_dir: &Path, dest: &Path, apply: &[PathBuf], mode: SyncMode) -> io::Result<Value> {
    use backup_new::RestoreSyncMode;
    let (sync_mode, name) = match mode {
        SyncMode::Strip => (RestoreSyncMode::StripSyncIdentity, "strip"),
        SyncMode::Preserve => (RestoreSyncMode::PreserveSyncIdentity, "preserve"),
        SyncMode::Fork => (RestoreSyncMode::ForkWithNewSyncIdentity, "fork"),
    };
    if apply.is_empty() {
        backup_new::restore_with_sync_mode(backup_dir, dest, sync_mode)?;
    } else {
        let incs: Vec<&Path> = apply.iter().map(PathBuf::as_path).collect();
        backup_new::restore_chain_with_sync_mode(backup_dir, &incs, dest, sync_mode)?;
    }
    Ok(json!({"ok": true, "sync_mode": name}))
}

/// Only 0.29 can check a backup without restoring it. Returns the
/// reference's own report when it passes, its findings as the error otherwise.
pub fn verify_new(backup_dir: &Path) -> io::Result<Value> {
    let report = backup_new::verify_backup(backup_dir, &backup_new::VerifyOptions::default());
    if report.ok {
        return serde_json::to_value(&report).map_err(io::Error::other);
    }
    let findings: Vec<String> = report.errors.iter().map(|e| format!("{}: {}", e.code, e.message)).collect();
    Err(io::Error::other(format!("verify failed: {}", findings.join("; "))))
}
