#![cfg_attr(test, allow(dead_code))] // napi-derive compiles registration out of test builds
//! The Node binding: each export queues one core operation on the libuv
//! thread pool and returns a Promise. Core errors reach JS with their stable
//! code as a `CODE: ` message prefix, which the TypeScript layer turns into
//! an error with a `code` property.
use crate::core::cancel;
use crate::core::copy::{copy_hashed as core_copy_hashed, CopyOutcome};
use crate::core::delta::{write_delta as core_write_delta, Base, DeltaOutcome, DeltaSpec};
use crate::core::digest::{hash_file as core_hash_file, Expected, FileDigest};
use crate::core::error::{CoreError, CoreResult};
use crate::core::heapdiff::{diff as core_diff, with_base_map, HeapDiff, MapSource};
use crate::core::lock::WriterLock;
use crate::core::restore::{restore_file as core_restore_file, Layer, LayerKind};
use crate::core::verify::{verify_artifact, Content, Finding};
use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;
use std::path::PathBuf;
use std::sync::Arc;

/// One core operation, the operation (cancellation and progress) it is a
/// job of, and the conversion of its result into a JS value.
pub struct Job<T: Send + 'static, J> {
    work: Option<Box<dyn FnOnce() -> CoreResult<T> + Send>>,
    operation: Option<Arc<cancel::Operation>>,
    to_js: fn(T) -> J,
}

impl<T: Send + 'static, J: ToNapiValue + TypeName> Task for Job<T, J> {
    type Output = T;
    type JsValue = J;

    fn compute(&mut self) -> Result<T> {
        let work = self.work.take().expect("a job runs once");
        cancel::run_job(self.operation.clone(), work)
            .map_err(|e: CoreError| Error::new(Status::GenericFailure, e.to_string()))
    }

    fn resolve(&mut self, _env: Env, output: T) -> Result<J> {
        Ok((self.to_js)(output))
    }
}

pub(crate) fn job<T: Send + 'static, J>(
    cancel: Option<u32>,
    work: impl FnOnce() -> CoreResult<T> + Send + 'static,
    to_js: fn(T) -> J,
) -> AsyncTask<Job<T, J>>
where
    J: ToNapiValue + TypeName,
{
    AsyncTask::new(Job { work: Some(Box::new(work)), operation: cancel.and_then(operation), to_js })
}

/// Cancellation tokens handed to JS by id: one operation's abort flag and progress.
static TOKENS: std::sync::LazyLock<std::sync::Mutex<std::collections::HashMap<u32, Arc<cancel::Operation>>>> =
    std::sync::LazyLock::new(Default::default);
static NEXT_TOKEN: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);

/// The addon's version (its crate's), for `powdb-backup --version`.
#[napi]
pub fn native_version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

/// A new cancellation token for the operations of one call (no I/O).
#[napi]
pub fn create_cancel_token() -> u32 {
    let id = NEXT_TOKEN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    TOKENS.lock().unwrap_or_else(|p| p.into_inner()).insert(id, Default::default());
    id
}

/// The operation of token `id`, unless it was released.
fn operation(id: u32) -> Option<Arc<cancel::Operation>> {
    TOKENS.lock().unwrap_or_else(|p| p.into_inner()).get(&id).cloned()
}

/// Makes every job holding token `id` stop at its next chunk (no I/O).
#[napi]
pub fn cancel(id: u32) {
    if let Some(operation) = operation(id) {
        operation.cancel();
    }
}

/// Bytes processed so far by the running jobs of token `id` (one atomic load).
#[napi]
pub fn progress_bytes(id: u32) -> BigInt {
    BigInt::from(operation(id).map_or(0, |o| o.running_bytes()))
}

/// Calls `listener` (on the JS thread, never keeping the process alive) each
/// time the jobs of token `id` have processed another 8 MiB in all.
#[napi]
pub fn watch_progress(id: u32, listener: ThreadsafeFunction<(), Unknown<'static>, (), Status, false, true>) {
    if let Some(operation) = operation(id) {
        operation.listen(Box::new(move || {
            listener.call((), ThreadsafeFunctionCallMode::NonBlocking);
        }));
    }
}

/// Forgets token `id` once its operation has ended (no I/O).
#[napi]
pub fn release_cancel_token(id: u32) {
    TOKENS.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
}

/// A u64 from a JS bigint, refusing negative or oversized values.
pub(crate) fn u64_arg(what: &str, value: &BigInt) -> Result<u64> {
    match value.get_u64() {
        (false, v, true) => Ok(v),
        _ => Err(Error::new(Status::InvalidArg, format!("ERR_INVALID_ARG: {what} must be a u64 bigint"))),
    }
}

#[napi(object, object_from_js = false)]
pub struct HashResult {
    pub len: u64,
    pub blake3_hex: String,
}

impl From<FileDigest> for HashResult {
    fn from(d: FileDigest) -> Self {
        HashResult { len: d.len, blake3_hex: d.blake3_hex }
    }
}

#[napi(object, object_from_js = false)]
pub struct CopyResult {
    pub len: u64,
    pub blake3_hex: String,
    pub max_page_lsn: u64,
    /// The content map written beside a heap copied as pages.
    pub map: Option<HashResult>,
}

impl From<CopyOutcome> for CopyResult {
    fn from(o: CopyOutcome) -> Self {
        CopyResult {
            len: o.len,
            blake3_hex: o.blake3_hex,
            max_page_lsn: o.max_page_lsn,
            map: o.map.map(HashResult::from),
        }
    }
}

/// A `Pages` change: the pages of a heap newer than the base.
#[napi(object, object_from_js = false)]
pub struct PageDelta {
    pub total_pages: u32,
    pub page_indices: Vec<u32>,
    pub delta_len: u64,
    pub blake3_hex: String,
}

#[napi(object, object_from_js = false)]
pub struct DeltaResult {
    pub delta: Option<PageDelta>,
    pub max_page_lsn: u64,
    /// The heap's content map as it is now.
    pub map: HashResult,
}

impl From<DeltaOutcome> for DeltaResult {
    fn from(o: DeltaOutcome) -> Self {
        let delta = o.delta.map(|d| PageDelta {
            total_pages: d.total_pages,
            page_indices: d.page_indices,
            delta_len: d.delta_len,
            blake3_hex: d.blake3_hex,
        });
        DeltaResult { delta, max_page_lsn: o.max_page_lsn, map: HashResult::from(o.map) }
    }
}

/// BLAKE3 and length of a file, streamed.
#[napi(ts_return_type = "Promise<HashResult>")]
pub fn hash_file(path: String, cancel: Option<u32>) -> AsyncTask<Job<FileDigest, HashResult>> {
    job(cancel, move || core_hash_file(&PathBuf::from(path)), HashResult::from)
}

/// Copies `src` to the new file `dst` (0600, fsynced) while hashing it; with
/// `paged`, also returns the highest page LSN and writes the content map at
/// `map_path` (when given).
#[napi(ts_return_type = "Promise<CopyResult>")]
pub fn copy_hashed(
    src: String,
    dst: String,
    paged: bool,
    map_path: Option<String>,
    cancel: Option<u32>,
) -> AsyncTask<Job<CopyOutcome, CopyResult>> {
    job(
        cancel,
        move || {
            core_copy_hashed(
                &PathBuf::from(src),
                &PathBuf::from(dst),
                paged,
                map_path.as_deref().map(std::path::Path::new),
            )
        },
        CopyResult::from,
    )
}

/// Writes the pages of `heap` that changed since the base (LSN above
/// `base_lsn`, or content unlike the base's map) to `delta_path`, and the
/// heap's new content map to `map_path`.
#[napi(ts_return_type = "Promise<DeltaResult>")]
pub fn write_delta(
    heap: String,
    delta_path: String,
    base_lsn: BigInt,
    base_map: MapSourceArg,
    map_path: String,
    cancel: Option<u32>,
) -> Result<AsyncTask<Job<DeltaOutcome, DeltaResult>>> {
    let base_lsn = u64_arg("baseLsn", &base_lsn)?;
    let base_map = base_map.into_source()?;
    Ok(job(
        cancel,
        move || {
            with_base_map(&base_map, |map| {
                let base = Base { lsn: base_lsn, map };
                core_write_delta(&PathBuf::from(heap), &PathBuf::from(delta_path), base, &PathBuf::from(map_path))
            })
        },
        DeltaResult::from,
    ))
}

/// Where a content map comes from: exactly one of a heap file, a stored
/// `.pagemap` (as a whole layer) or a chain's layers.
#[napi(object)]
pub struct MapSourceArg {
    pub heap: Option<String>,
    pub map: Option<RestoreLayer>,
    pub layers: Option<Vec<RestoreLayer>>,
}

impl MapSourceArg {
    fn into_source(self) -> Result<MapSource> {
        match (self.heap, self.map, self.layers) {
            (Some(heap), None, None) => Ok(MapSource::Heap(PathBuf::from(heap))),
            (None, Some(map), None) => Ok(MapSource::Stored(map.into_layer()?)),
            (None, None, Some(layers)) => {
                Ok(MapSource::Layers(layers.into_iter().map(RestoreLayer::into_layer).collect::<Result<_>>()?))
            }
            _ => Err(Error::new(
                Status::InvalidArg,
                "ERR_INVALID_ARG: a map source is one of heap, map or layers".to_string(),
            )),
        }
    }
}

#[napi(object, object_from_js = false)]
pub struct ShapeProblem {
    pub page: u32,
    pub message: String,
}

#[napi(object, object_from_js = false)]
pub struct HeapDiffResult {
    pub a_pages: u32,
    pub b_pages: u32,
    pub differing: Vec<u32>,
    pub differing_count: u32,
    pub shape_problem: Option<ShapeProblem>,
}

impl From<HeapDiff> for HeapDiffResult {
    fn from(d: HeapDiff) -> Self {
        HeapDiffResult {
            a_pages: d.a_pages,
            b_pages: d.b_pages,
            differing: d.differing,
            differing_count: d.differing_count,
            shape_problem: d.shape_problem.map(|(page, message)| ShapeProblem { page, message }),
        }
    }
}

/// Compares two heaps page by page through their content maps (without `b`,
/// only checks `a`'s format consistency).
#[napi(ts_return_type = "Promise<HeapDiffResult>")]
pub fn diff_heaps(
    a: MapSourceArg,
    b: Option<MapSourceArg>,
    cancel: Option<u32>,
) -> Result<AsyncTask<Job<HeapDiff, HeapDiffResult>>> {
    let a = a.into_source()?;
    let b = b.map(MapSourceArg::into_source).transpose()?;
    Ok(job(cancel, move || core_diff(&a, b.as_ref()), HeapDiffResult::from))
}

/// One element of a file's history, as the chain's manifests describe it:
/// a whole copy, or (with `pageIndices`) a page delta.
#[napi(object)]
pub struct RestoreLayer {
    pub path: String,
    /// The manifest's name for the copy or delta (for messages).
    pub name: String,
    pub len: BigInt,
    pub blake3_hex: String,
    /// "backup" or "increment".
    pub artifact: String,
    pub total_pages: Option<u32>,
    pub page_indices: Option<Vec<u32>>,
}

impl RestoreLayer {
    pub(crate) fn into_layer(self) -> Result<Layer> {
        let len = u64_arg("len", &self.len)?;
        let kind = match self.page_indices {
            None => LayerKind::Whole,
            Some(page_indices) => LayerKind::Pages(DeltaSpec {
                total_pages: self.total_pages.unwrap_or(0),
                page_indices,
                delta_len: len,
                blake3_hex: self.blake3_hex.clone(),
            }),
        };
        Ok(Layer {
            path: PathBuf::from(self.path),
            name: self.name,
            len,
            blake3_hex: self.blake3_hex,
            artifact: self.artifact,
            kind,
        })
    }
}

/// Builds `target` from its layers in chain order (newest whole copy plus the
/// deltas after it), writing each page once and verifying every layer; with
/// `map` (the backup's stored content map of this heap), every page too.
#[napi(ts_return_type = "Promise<void>")]
pub fn restore_file(
    target: String,
    layers: Vec<RestoreLayer>,
    map: Option<RestoreLayer>,
    cancel: Option<u32>,
) -> Result<AsyncTask<Job<(), ()>>> {
    let layers = layers.into_iter().map(RestoreLayer::into_layer).collect::<Result<Vec<_>>>()?;
    let map = map.map(RestoreLayer::into_layer).transpose()?;
    Ok(job(cancel, move || core_restore_file(&PathBuf::from(target), &layers, map.as_ref()), |()| ()))
}

/// Writer locks held for JS, by handle: a lock lives until `releaseLock`.
static LOCKS: std::sync::Mutex<Vec<(u32, WriterLock)>> = std::sync::Mutex::new(Vec::new());
static NEXT_LOCK: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);

/// Takes the engine's writer lock of a data directory; resolves to a handle.
#[napi(ts_return_type = "Promise<number>")]
pub fn acquire_lock(dir: String) -> AsyncTask<Job<u32, u32>> {
    job(
        None,
        move || {
            let lock = WriterLock::acquire(&PathBuf::from(dir))?;
            let id = NEXT_LOCK.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            LOCKS.lock().unwrap_or_else(|p| p.into_inner()).push((id, lock));
            Ok(id)
        },
        |id| id,
    )
}

/// Releases a lock taken by `acquireLock` (removing LOCK if it names us).
#[napi(ts_return_type = "Promise<void>")]
pub fn release_lock(id: u32) -> AsyncTask<Job<(), ()>> {
    job(
        None,
        move || {
            let mut locks = LOCKS.lock().unwrap_or_else(|p| p.into_inner());
            let held = locks.iter().position(|(i, _)| *i == id).map(|at| locks.swap_remove(at));
            drop(locks);
            drop(held); // WriterLock's Drop does the release I/O here, off the JS thread.
            Ok(())
        },
        |()| (),
    )
}

#[napi(object, object_from_js = false)]
pub struct VerifyFinding {
    pub code: String,
    pub message: String,
    pub page: Option<u32>,
}

/// A backup file to verify and what its manifest says of it.
#[napi(object)]
pub struct VerifyFileArg {
    pub path: String,
    /// The manifest's name for it.
    pub name: String,
    pub len: BigInt,
    pub blake3_hex: String,
    /// "backup" or "increment".
    pub artifact: String,
    /// "whole", "heap", "catalog" or "delta".
    pub kind: String,
    /// No page LSN may exceed it.
    pub max_lsn: BigInt,
    /// A delta's page count and list (from the manifest).
    pub total_pages: Option<u32>,
    pub page_indices: Option<Vec<u32>>,
    /// A heap's content map, to check each page against.
    pub map: Option<RestoreLayer>,
}

/// Checks one backup file against its manifest entry in one streamed read.
/// `kind` is "whole", "heap", "catalog" or "delta" (the last with the
/// manifest's page list); `max_lsn` bounds page LSNs.
#[napi(ts_return_type = "Promise<VerifyFinding[]>")]
pub fn verify_file(
    file: VerifyFileArg,
    cancel: Option<u32>,
) -> Result<AsyncTask<Job<Vec<Finding>, Vec<VerifyFinding>>>> {
    let len = u64_arg("len", &file.len)?;
    let max_lsn = u64_arg("maxLsn", &file.max_lsn)?;
    let VerifyFileArg { path, name, blake3_hex, artifact, kind, total_pages, page_indices, map, .. } = file;
    let content = match kind.as_str() {
        "whole" => Content::Whole,
        "heap" => Content::Heap { max_lsn, map: None },
        "catalog" => Content::Catalog,
        "delta" => {
            let page_indices = page_indices.unwrap_or_default();
            let delta_len = page_indices.len() as u64 * crate::core::page::RECORD_SIZE as u64;
            let spec = DeltaSpec {
                total_pages: total_pages.unwrap_or(0),
                page_indices,
                delta_len,
                blake3_hex: blake3_hex.clone(),
            };
            Content::Delta { spec, max_lsn }
        }
        other => return Err(Error::new(Status::InvalidArg, format!("ERR_INVALID_ARG: unknown kind {other}"))),
    };
    let map = map.map(RestoreLayer::into_layer).transpose()?;
    let content = match content {
        Content::Heap { max_lsn, .. } => Content::Heap { max_lsn, map },
        other => other,
    };
    Ok(job(
        cancel,
        move || {
            let expected = Expected { name: &name, len, blake3_hex: &blake3_hex, artifact: &artifact };
            verify_artifact(&PathBuf::from(path), &expected, &content)
        },
        |found| found.into_iter().map(|f| VerifyFinding { code: f.code, message: f.message, page: f.page }).collect(),
    ))
}
