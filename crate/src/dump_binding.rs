#![cfg_attr(test, allow(dead_code))] // napi-derive compiles registration out of test builds
//! `dump` in the binding (`core::dump`): one table's rows written by Rust,
//! to a new file or a descriptor, off the JS thread; no row reaches JS.
use crate::binding::{job, Job};
use crate::core::dump::{dump_table as core_dump, Dumped, Format, Output};
use crate::core::error::CoreError;
use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::path::{Path, PathBuf};

/// Where the rows go: exactly one of a new file or a descriptor.
#[napi(object)]
pub struct DumpOutput {
    /// Created (it must not exist) and fsynced; the caller publishes it.
    pub new_file: Option<String>,
    /// Written, never closed (stdout is 1).
    pub fd: Option<i32>,
}

#[napi(object, object_from_js = false)]
pub struct DumpSummary {
    pub rows: u64,
    pub bytes: u64,
}

/// Writes every row of `table` of the data directory `dir` (checkpointed or
/// recovered) as `format` (`jsonl` or `csv`). Rejects with `ERR_NO_TABLE`,
/// `ERR_PAGE_FORMAT` (a heap or row the engine would not read),
/// `ERR_INVALID_ARG`, `ERR_ABORTED`, or the errno name of a failed write
/// (`EPIPE` when the reader went away, `EEXIST`).
#[napi(ts_return_type = "Promise<DumpSummary>")]
pub fn dump_table(
    dir: String,
    table: String,
    format: String,
    output: DumpOutput,
    cancel: Option<u32>,
) -> AsyncTask<Job<Dumped, DumpSummary>> {
    let output = match (output.new_file, output.fd) {
        (Some(path), None) => Ok(Output::NewFile(PathBuf::from(path))),
        (None, Some(fd)) if fd >= 0 => Ok(Output::Fd(fd)),
        _ => Err(CoreError::new("ERR_INVALID_ARG", "a dump goes to one new file or one file descriptor")),
    };
    job(
        cancel,
        move || core_dump(Path::new(&dir), &table, Format::parse(&format)?, &output?),
        |d| DumpSummary { rows: d.rows, bytes: d.bytes },
    )
}
