#![cfg_attr(test, allow(dead_code))] // napi-derive compiles registration out of test builds
//! Delta restore (restore in place) of chain files, off the JS thread.
use crate::binding::{job, u64_arg, Job, RestoreLayer};
use crate::core::heapdiff::MapSource;
use crate::core::patch::{patch_heap as core_patch_heap, PatchOutcome};
use crate::core::repo::patch::{patch_file, RepoPatch};
use crate::repo_binding::{ids, repo};
use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::path::PathBuf;

#[napi(object, object_from_js = false)]
pub struct PatchResult {
    pub pages_compared: u64,
    pub pages_rewritten: u64,
    pub bytes_written: u64,
}

impl From<PatchOutcome> for PatchResult {
    fn from(o: PatchOutcome) -> Self {
        PatchResult {
            pages_compared: o.pages_compared,
            pages_rewritten: o.pages_rewritten,
            bytes_written: o.bytes_written,
        }
    }
}

/// Brings the heap `dest` to the state its `layers` build, writing only the
/// pages that differ from the content map (`map`, else computed from the layers).
#[napi(ts_return_type = "Promise<PatchResult>")]
pub fn patch_heap(
    dest: String,
    layers: Vec<RestoreLayer>,
    map: Option<RestoreLayer>,
    cancel: Option<u32>,
) -> Result<AsyncTask<Job<PatchOutcome, PatchResult>>> {
    let layers = layers.into_iter().map(RestoreLayer::into_layer).collect::<Result<Vec<_>>>()?;
    let source = match map {
        Some(map) => MapSource::Stored(map.into_layer()?),
        None => MapSource::Layers(layers.clone()),
    };
    Ok(job(cancel, move || core_patch_heap(&PathBuf::from(dest), &layers, &source), PatchResult::from))
}

#[napi(object, object_from_js = false)]
pub struct RepoPatchResult {
    pub pages_compared: u64,
    pub pages_rewritten: u64,
    pub bytes_written: u64,
    /// Rebuilt into `temp`, to be renamed over the destination.
    pub rebuilt: bool,
    pub chunks_fetched: u64,
    pub bytes_fetched: u64,
}

/// A repository file to bring a destination file to, and where.
#[napi(object)]
pub struct PatchFileArg {
    /// The ids of the lists naming its chunks, in order.
    pub lists: Vec<String>,
    /// Its change hints' lists, when the backup stored them.
    pub hints: Option<Vec<String>>,
    pub len: BigInt,
    /// The destination's file (maybe absent).
    pub dest: String,
    /// A free name beside it, for a whole rewrite.
    pub temp: String,
    /// A page-aligned heap (patched in place; else rebuilt when it differs).
    pub heap: bool,
}

/// Brings `dest` to the repository file `lists` make, fetching only the
/// chunks it does not hold: a heap patched in place, any other file rebuilt
/// into `temp` when it differs; compared by the file's change `hints` when given.
#[napi(ts_return_type = "Promise<RepoPatchResult>")]
pub fn repo_patch_file(
    handle: u32,
    file: PatchFileArg,
    cancel: Option<u32>,
) -> Result<AsyncTask<Job<RepoPatch, RepoPatchResult>>> {
    let repo = repo(handle)?;
    let lists = ids(&file.lists)?;
    let hints = file.hints.as_deref().map(ids).transpose()?;
    let len = u64_arg("len", &file.len)?;
    let PatchFileArg { dest, temp, heap, .. } = file;
    Ok(job(
        cancel,
        move || patch_file(&repo, &lists, hints.as_deref(), len, &PathBuf::from(dest), &PathBuf::from(temp), heap),
        |p| RepoPatchResult {
            pages_compared: p.outcome.pages_compared,
            pages_rewritten: p.outcome.pages_rewritten,
            bytes_written: p.outcome.bytes_written,
            rebuilt: p.rebuilt,
            chunks_fetched: p.chunks_fetched,
            bytes_fetched: p.bytes_fetched,
        },
    ))
}
