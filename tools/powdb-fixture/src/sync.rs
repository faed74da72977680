//! Sync-enabled directories (powdb-sync 0.29.0): `sync-enable` turns sync
//! on, `segments` lists the retained WAL segments it keeps.
//!
//! Once `.powdb-sync/identity.json` exists, every command of the new
//! generation opens and checkpoints through the archive hook (see
//! `db::new`), so each truncation of `wal.log` first writes the records it
//! drops into `.powdb-sync/retained/retained-{start:020}-{end:020}.prul`.

use std::path::Path;

use serde_json::{json, Value};

use crate::db::{self, Db};
use crate::db::{open, Result};

/// Like `powdb-cli sync-enable`: opens the database (recovering a crashed
/// one), creates the identity if there is none and checkpoints through the
/// archive hook. Running it again on a sync-enabled directory keeps the
/// identity (`created` false).
pub fn enable<D: Db>(dir: &Path) -> Result<Value> {
    if !D::CAPS.sync {
        return Err(format!("{} has no sync (retained WAL segments): sync-enable needs --gen new", D::CAPS.name).into());
    }
    let existed = db::sync_enabled(dir);
    let mut db = open::<D>(dir)?;
    db.enable_sync()?;
    let lsn = db.max_lsn();
    db.close()?;
    let identity = powdb_sync::read_identity_snapshot(dir)?
        .ok_or_else(|| format!("{}: no sync identity after sync-enable", dir.display()))?;
    Ok(json!({
        "ok": true,
        "created": !existed,
        "database_id": identity.database_id,
        "primary_generation": identity.primary_generation,
        "created_unix_secs": identity.created_unix_secs,
        "max_lsn": lsn,
    }))
}

/// The retained segments in LSN order, each read and checked in full by
/// powdb-sync's reader (CRCs, LSN contiguity inside the file, known record
/// types), plus the identity file and whether the segments together cover
/// one contiguous LSN range. Never opens the catalog, so it works with
/// either `--gen` and writes nothing.
pub fn segments(dir: &Path, with_units: bool) -> Result<Value> {
    let identity = match powdb_sync::read_identity_snapshot_if_exists(dir)? {
        Some(snapshot) => json!({
            "format_version": snapshot.format_version,
            "database_id": snapshot.database_id,
            "primary_generation": snapshot.primary_generation,
            "created_unix_secs": snapshot.created_unix_secs,
        }),
        None => Value::Null,
    };
    let files = powdb_sync::list_segment_files(&powdb_sync::retained_segments_dir(dir))?;
    let mut segments = Vec::with_capacity(files.len());
    let mut contiguous = true;
    let mut previous_end: Option<u64> = None;
    let mut total_units = 0usize;
    for file in &files {
        let segment = powdb_sync::read_segment_file(&file.path).map_err(|e| format!("{}: {e}", file.path.display()))?;
        if previous_end.is_some_and(|end| segment.start_lsn != end + 1) {
            contiguous = false;
        }
        previous_end = Some(segment.end_lsn);
        total_units += segment.units.len();
        let name = file.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let mut entry = json!({
            "file": name,
            "start_lsn": segment.start_lsn,
            "end_lsn": segment.end_lsn,
            "units": segment.units.len(),
            "database_id": hex(&segment.identity.database_id),
            "primary_generation": segment.identity.primary_generation,
            "wal_format_version": segment.identity.wal_format_version,
            "catalog_version": segment.identity.catalog_version,
        });
        if with_units {
            let records: Vec<Value> =
                segment.units.iter().map(|u| json!({"lsn": u.lsn, "tx_id": u.tx_id, "type": u.record_type})).collect();
            entry["records"] = Value::Array(records);
        }
        segments.push(entry);
    }
    let first = files.first().map(|f| f.start_lsn);
    let last = files.last().map(|f| f.end_lsn);
    Ok(json!({
        "ok": true,
        "identity": identity,
        "segments": segments,
        "units": total_units,
        "first_lsn": first,
        "last_lsn": last,
        "contiguous": contiguous,
    }))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
