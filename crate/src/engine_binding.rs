#![cfg_attr(test, allow(dead_code))] // napi-derive compiles registration out of test builds
//! The PowDB engine side of the binding: finalizing a staged online copy
//! (`core::engine`), off the JS thread.
use crate::binding::{job, u64_arg, Job};
use crate::core::engine::{check, finalize_by, Finalized, Route};
use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::path::PathBuf;

#[napi(object, object_from_js = false)]
pub struct FinalizedTable {
    pub name: String,
    pub rows: u64,
    /// Column indexes by column, expression indexes as `expr:<canonical text>`.
    pub indexes: Vec<String>,
}

/// A staged copy recovered, checkpointed and verified by the engine.
#[napi(object, object_from_js = false)]
pub struct FinalizedCopy {
    /// The engine's LSN after the checkpoint: the backup's source LSN.
    pub max_lsn: u64,
    pub catalog_version: u32,
    /// In catalog order.
    pub tables: Vec<FinalizedTable>,
    /// `engine` (recovered by the engine's open, index files rebuilt) or
    /// `redo` (our redo in bounded memory; the engine rebuilds the index
    /// files at its first open).
    pub route: String,
}

impl From<Finalized> for FinalizedCopy {
    fn from(f: Finalized) -> Self {
        FinalizedCopy {
            max_lsn: f.max_lsn,
            catalog_version: f.catalog_version.into(),
            tables: f
                .tables
                .into_iter()
                .map(|t| FinalizedTable { name: t.name, rows: t.rows, indexes: t.indexes })
                .collect(),
            route: match f.route {
                Route::Redo => "redo",
                _ => "engine",
            }
            .to_string(),
        }
    }
}

/// A table's row count as the server reported it under the write freeze.
#[napi(object)]
pub struct TableRows {
    pub table: String,
    pub rows: BigInt,
}

/// Recovers the staged copy in place (WAL replay, by `route`: `engine`,
/// `redo` or `auto`, the default), checkpoints and verifies it; with
/// `expectedRows`, also checks every table's count against them. Rejects
/// with `ERR_ONLINE_FINALIZE` (`ERR_SYNC_ENABLED`, `ERR_UNSUPPORTED_FORMAT`
/// before anything is written).
#[napi(ts_return_type = "Promise<FinalizedCopy>")]
pub fn finalize_staged_copy(
    staged: String,
    expected_rows: Option<Vec<TableRows>>,
    route: Option<String>,
) -> Result<AsyncTask<Job<Finalized, FinalizedCopy>>> {
    let route = match route.as_deref() {
        None | Some("auto") => Route::Auto,
        Some("engine") => Route::Engine,
        Some("redo") => Route::Redo,
        Some(other) => {
            return Err(Error::new(
                Status::InvalidArg,
                format!("ERR_INVALID_ARG: route {other} is not engine, redo or auto"),
            ));
        }
    };
    let expected = match expected_rows {
        Some(rows) => {
            Some(rows.iter().map(|r| Ok((r.table.clone(), u64_arg("rows", &r.rows)?))).collect::<Result<Vec<_>>>()?)
        }
        None => None,
    };
    Ok(job(
        None,
        move || {
            let done = finalize_by(&PathBuf::from(staged), route)?;
            if let Some(expected) = &expected {
                done.check_rows(expected)?;
            }
            Ok(done)
        },
        FinalizedCopy::from,
    ))
}

/// Checks a table restore's result without writing to it (`core::engine::
/// check`): a checkpointed directory of the backup's heaps and index files
/// beside a rewritten catalog. Rejects with `ERR_ONLINE_FINALIZE` naming what
/// failed.
#[napi(ts_return_type = "Promise<FinalizedCopy>")]
pub fn check_restored_copy(dir: String) -> AsyncTask<Job<Finalized, FinalizedCopy>> {
    job(None, move || check(&PathBuf::from(dir)), FinalizedCopy::from)
}
