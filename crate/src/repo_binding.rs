#![cfg_attr(test, allow(dead_code))] // napi-derive compiles registration out of test builds
//! The Node binding of format-2 repositories: JS holds a numbered handle to
//! an open repository (its keys stay here); every operation runs on the
//! libuv thread pool. Chunk and list ids cross as hex strings; file content
//! never crosses.
use crate::binding::{job, u64_arg, Job};
use crate::core::repo::backup_file::{store_file, FileOptions};
use crate::core::repo::check::{check_backup, check_packs};
use crate::core::repo::config::Compression;
use crate::core::repo::damage;
use crate::core::repo::hints::Parent;
use crate::core::repo::holds;
use crate::core::repo::keys::{BlobId, KdfParams, DEFAULT_KDF};
use crate::core::repo::open::{self, key_files, InitOptions};
use crate::core::repo::prune::{estimate, held_bytes, prune};
use crate::core::repo::repair::{missing_chunks, repair};
use crate::core::repo::restore_file::{compare_file, restore_file};
use crate::core::repo::restore_files::{restore_files, Target};
use crate::core::repo::storage::{for_location, StoreOptions};
use crate::core::repo::{hex, parse_id, Repo};
use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock, Mutex};

static REPOS: LazyLock<Mutex<HashMap<u32, Arc<Repo>>>> = LazyLock::new(Default::default);
static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);

pub(crate) fn repo(handle: u32) -> Result<Arc<Repo>> {
    REPOS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&handle)
        .cloned()
        .ok_or_else(|| Error::new(Status::InvalidArg, format!("ERR_INVALID_ARG: repository handle {handle} is closed")))
}

pub(crate) fn ids(hexes: &[String]) -> Result<Vec<BlobId>> {
    hexes.iter().map(|h| parse_id(h).map_err(|e| Error::new(Status::InvalidArg, e.to_string()))).collect()
}

/// argon2id cost of a password key (tests use a cheap one); the public API's `KdfParams`.
#[napi(object)]
pub struct KdfArg {
    /// Memory in KiB.
    pub m_kib: u32,
    /// Passes.
    pub t: u32,
    /// Lanes.
    pub p: u32,
}

fn kdf(arg: Option<KdfArg>) -> KdfParams {
    arg.map_or(DEFAULT_KDF, |k| KdfParams { m_kib: k.m_kib, t: k.t, p: k.p })
}

#[napi(object, object_from_js = false)]
pub struct RepoHandle {
    pub handle: u32,
    /// The repository's format (2, or 3: chunks compressed together in blocks).
    pub format: u32,
    pub id: String,
    pub compression: String,
    pub encryption: String,
    pub created_unix_secs: u64,
    pub key_id: Option<String>,
    /// The storage's capability: on a remote store, writers hold a leased
    /// `LOCK` object (no flock there) and conditional writes may be ignored.
    pub remote: bool,
}

/// Keeps glibc from recycling multi-MiB buffers (packs, read batches) inside
/// its per-thread arenas: by default each freed mmap raises the threshold, and
/// from then on such buffers stay in arenas that grow with the data moved.
/// And caps the arenas: the threads of a restore from object storage (HTTP,
/// opening, writing) each fragmented an arena of their own, and a 4 GiB
/// restore peaked at 133-156 MiB instead of about 100.
fn return_large_buffers() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    // SAFETY: mallopt only tunes the allocator for later allocations.
    ONCE.call_once(|| unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 10);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    });
}

fn register(repo: Repo) -> RepoHandle {
    return_large_buffers();
    let handle = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let out = RepoHandle {
        handle,
        format: repo.config.format,
        id: repo.config.id.clone(),
        compression: repo.config.compression.clone(),
        encryption: repo.config.encryption.clone(),
        created_unix_secs: repo.config.created_unix_secs,
        key_id: repo.key_id.clone(),
        remote: repo.storage.is_remote(),
    };
    REPOS.lock().unwrap_or_else(|p| p.into_inner()).insert(handle, Arc::new(repo));
    out
}

/// Where an object-store repository is reached (credentials come from the
/// AWS environment); the public API's `StoreOptions`.
#[napi(object)]
pub struct StoreArg {
    /// The endpoint, e.g. `http://127.0.0.1:8333` (default: AWS_ENDPOINT_URL, else AWS S3).
    pub endpoint: Option<String>,
    /// Never use conditional writes (as on servers that ignore them).
    pub no_conditional_writes: Option<bool>,
    /// Requests in flight at once: pack uploads, ranged reads (1-16, default 4).
    pub concurrency: Option<u32>,
}

fn store_options(arg: Option<StoreArg>) -> StoreOptions {
    arg.map_or_else(StoreOptions::default, |a| StoreOptions {
        endpoint: a.endpoint,
        no_conditional_writes: a.no_conditional_writes.unwrap_or(false),
        transfers: a.concurrency.map(|n| n as usize),
    })
}

/// Creates a packed repository (format 4 unless `format` asks for 3) at `location` (an empty directory, or an
/// `s3://bucket/prefix` without a repository), encrypted when a password is given.
#[napi(ts_return_type = "Promise<RepoHandle>")]
pub fn repo_init(
    location: String,
    compression: String,
    password: Option<String>,
    kdf_params: Option<KdfArg>,
    store: Option<StoreArg>,
    format: Option<u32>,
) -> AsyncTask<Job<Repo, RepoHandle>> {
    let kdf = kdf(kdf_params);
    let store = store_options(store);
    job(
        None,
        move || {
            let compression = Compression::parse(&compression)?;
            let options = InitOptions { compression, password: password.as_deref(), kdf, format };
            open::init(for_location(&location, &store)?, options)
        },
        register,
    )
}

/// Opens a format-2 repository and loads its index.
#[napi(ts_return_type = "Promise<RepoHandle>")]
pub fn repo_open(
    location: String,
    password: Option<String>,
    store: Option<StoreArg>,
) -> AsyncTask<Job<Repo, RepoHandle>> {
    let store = store_options(store);
    job(None, move || open::open(for_location(&location, &store)?, password.as_deref()), register)
}

/// Takes the repository's writer lock (a flock locally, a lease on object
/// storage: the storage decides); resolves to a notice when it took over a
/// stale one.
#[napi(ts_return_type = "Promise<string | null>")]
pub fn repo_writer_lock(handle: u32) -> Result<AsyncTask<Job<Option<String>, Option<String>>>> {
    let repo = repo(handle)?;
    Ok(job(None, move || repo.take_writer_lock(), |n| n))
}

/// Keeps the writer lock (renews a lease; fails if another writer took it).
#[napi(ts_return_type = "Promise<void>")]
pub fn repo_writer_renew(handle: u32) -> Result<AsyncTask<Job<(), ()>>> {
    let repo = repo(handle)?;
    Ok(job(None, move || repo.renew_writer_lock(), |v| v))
}

/// Gives the writer lock up.
#[napi(ts_return_type = "Promise<void>")]
pub fn repo_writer_unlock(handle: u32) -> Result<AsyncTask<Job<(), ()>>> {
    let repo = repo(handle)?;
    Ok(job(None, move || repo.release_writer_lock(), |v| v))
}

/// A repository location resolved: an object store's URL or an absolute
/// path; a URL of a store this package does not speak is refused.
#[napi(object)]
pub struct RepoLocation {
    pub resolved: String,
    pub remote: bool,
}

/// Resolves a repository location (no I/O).
#[napi]
pub fn repo_locate(location: String) -> Result<RepoLocation> {
    let found = crate::core::repo::storage::locate(&location)
        .map_err(|e| napi::Error::new(napi::Status::GenericFailure, e.to_string()))?;
    Ok(RepoLocation { resolved: found.resolved, remote: found.remote })
}

/// Publishes a hold (`shared`: a reader; `exclusive`: a remover) for
/// `operation`; resolves to its owner, or fails with ERR_REPO_LOCKED when a
/// live hold of the other kind exists (see core/repo/holds.rs).
#[napi(ts_return_type = "Promise<string>")]
pub fn repo_hold_acquire(handle: u32, kind: String, operation: String) -> Result<AsyncTask<Job<String, String>>> {
    let repo = repo(handle)?;
    let kind = match kind.as_str() {
        "shared" => holds::Kind::Shared,
        "exclusive" => holds::Kind::Exclusive,
        other => return Err(Error::new(Status::InvalidArg, format!("ERR_INVALID_ARG: hold kind {other}"))),
    };
    Ok(job(None, move || repo.acquire_hold(kind, &operation), |o| o))
}

/// A live hold, for `info`.
#[napi(object)]
pub struct HoldInfo {
    pub kind: String,
    pub operation: String,
    pub host: String,
    pub pid: u32,
    pub expires_unix_secs: i64,
}

/// Who holds the repository now (live holds only; writes nothing).
#[napi(ts_return_type = "Promise<HoldInfo[]>")]
pub fn repo_holds(handle: u32) -> Result<AsyncTask<Job<Vec<holds::Hold>, Vec<HoldInfo>>>> {
    let repo = repo(handle)?;
    Ok(job(
        None,
        move || repo.holds(),
        |list| {
            list.into_iter()
                .map(|h| HoldInfo {
                    kind: match h.kind {
                        holds::Kind::Shared => "shared".into(),
                        holds::Kind::Exclusive => "exclusive".into(),
                    },
                    operation: h.operation,
                    host: h.host,
                    pid: h.pid,
                    expires_unix_secs: h.expires_unix_secs as i64,
                })
                .collect()
        },
    ))
}

/// Extends a hold's lease.
#[napi(ts_return_type = "Promise<void>")]
pub fn repo_hold_renew(handle: u32, owner: String) -> Result<AsyncTask<Job<(), ()>>> {
    let repo = repo(handle)?;
    Ok(job(None, move || repo.renew_hold(&owner), |v| v))
}

/// Withdraws a hold.
#[napi(ts_return_type = "Promise<void>")]
pub fn repo_hold_release(handle: u32, owner: String) -> Result<AsyncTask<Job<(), ()>>> {
    let repo = repo(handle)?;
    Ok(job(None, move || repo.release_hold(&owner), |v| v))
}

/// Forgets a handle (no I/O); uncommitted packs are abandoned.
#[napi]
pub fn repo_close(handle: u32) {
    REPOS.lock().unwrap_or_else(|p| p.into_inner()).remove(&handle);
}

/// Reads and opens a sealed object (a snapshot).
#[napi(ts_return_type = "Promise<Buffer>")]
pub fn repo_read_object(handle: u32, key: String) -> Result<AsyncTask<Job<Vec<u8>, Buffer>>> {
    let repo = repo(handle)?;
    Ok(job(None, move || repo.read_object(&key), Buffer::from))
}

/// Seals and publishes a new object; returns its stored size.
#[napi(ts_return_type = "Promise<bigint>")]
pub fn repo_write_object(handle: u32, key: String, data: Buffer) -> Result<AsyncTask<Job<u64, BigInt>>> {
    let repo = repo(handle)?;
    let data = data.to_vec();
    Ok(job(None, move || repo.write_object(&key, &data), BigInt::from))
}

#[napi(object, object_from_js = false)]
pub struct ObjectEntry {
    pub key: String,
    pub size: u64,
}

/// The objects under `prefix` (`""` for all), sorted.
#[napi(ts_return_type = "Promise<ObjectEntry[]>")]
pub fn repo_list_objects(handle: u32, prefix: String) -> Result<AsyncTask<Job<Vec<ObjectEntry>, Vec<ObjectEntry>>>> {
    let repo = repo(handle)?;
    Ok(job(
        None,
        move || Ok(repo.storage.list(&prefix)?.into_iter().map(|o| ObjectEntry { key: o.key, size: o.size }).collect()),
        |v| v,
    ))
}

#[napi(ts_return_type = "Promise<void>")]
pub fn repo_delete_object(handle: u32, key: String) -> Result<AsyncTask<Job<(), ()>>> {
    let repo = repo(handle)?;
    Ok(job(None, move || repo.storage.delete(&key), |v| v))
}

#[napi(object, object_from_js = false)]
pub struct StoredFileResult {
    pub len: u64,
    pub lists: Vec<String>,
    /// The lists of the file's change hints, when they were asked for.
    pub hints: Option<Vec<String>>,
    pub max_lsn: u64,
    pub chunks: u32,
    pub new_chunks: u32,
    /// Chunks whose id came from the parent's (unchanged, by their fast hash).
    pub reused: u32,
}

/// The parent backup's lists and change hints of the same file.
#[napi(object)]
pub struct ParentFileArg {
    pub lists: Vec<String>,
    pub hints: Vec<String>,
}

/// Stores a file as chunks (a page-aligned heap when `heap`), reusing the
/// chunk ids of `parent` where the file did not change, and storing change
/// hints for the next increment when `hints`.
#[napi(ts_return_type = "Promise<StoredFileResult>")]
pub fn repo_store_file(
    handle: u32,
    path: String,
    heap: bool,
    hints: bool,
    parent: Option<ParentFileArg>,
    cancel: Option<u32>,
) -> Result<AsyncTask<Job<crate::core::repo::backup_file::StoredFile, StoredFileResult>>> {
    let repo = repo(handle)?;
    let parent = parent.map(|p| Ok::<_, napi::Error>((ids(&p.lists)?, ids(&p.hints)?))).transpose()?;
    Ok(job(
        cancel,
        move || {
            let parent = parent.and_then(|(lists, hints)| Parent::load(&repo, &lists, &hints, !heap));
            store_file(&repo, &PathBuf::from(path), &FileOptions { heap, parent, hints })
        },
        |s| StoredFileResult {
            len: s.len,
            lists: s.lists.iter().map(|l| hex(l)).collect(),
            hints: s.hints.map(|h| h.iter().map(|l| hex(l)).collect()),
            max_lsn: s.max_lsn,
            chunks: s.chunks as u32,
            new_chunks: s.new_chunks as u32,
            reused: s.reused as u32,
        },
    ))
}

#[napi(object, object_from_js = false)]
pub struct CommitResult {
    pub blobs: u64,
    pub raw_bytes: u64,
    pub stored_bytes: u64,
    pub packs: u64,
}

/// Publishes the last pack and the index of this session's packs.
#[napi(ts_return_type = "Promise<CommitResult>")]
pub fn repo_commit(handle: u32) -> Result<AsyncTask<Job<crate::core::repo::writer::WriteStats, CommitResult>>> {
    let repo = repo(handle)?;
    Ok(job(
        None,
        move || repo.commit(),
        |s| CommitResult { blobs: s.blobs, raw_bytes: s.raw_bytes, stored_bytes: s.stored_bytes, packs: s.packs },
    ))
}

/// Forgets uncommitted work (no I/O; the next writer removes its packs).
#[napi]
pub fn repo_abandon(handle: u32) -> Result<()> {
    repo(handle)?.abandon();
    Ok(())
}

#[napi(object, object_from_js = false)]
pub struct RepairResult {
    pub indexes_removed: u32,
    pub packs_indexed: u32,
    pub packs_removed: u32,
    pub packs_damaged: u32,
    pub chunks_salvaged: u32,
    pub chunks_lost: u32,
    pub packs_written: u32,
    pub damage_records_cleared: u32,
    /// The backups that need chunks no pack holds any more.
    pub backups: Vec<BackupLoss>,
}

#[napi(object, object_from_js = false)]
pub struct BackupLoss {
    pub id: String,
    pub files: Vec<FileLoss>,
}

#[napi(object, object_from_js = false)]
pub struct FileLoss {
    pub name: String,
    pub chunks_missing: u32,
}

/// Rebuilds damaged index objects, drops damaged and missing chunks from the
/// index (salvaging the intact ones of damaged packs), then names the files
/// of `backups` that need chunks that are gone. Call holding the writer lock
/// and an exclusive hold.
#[napi(ts_return_type = "Promise<RepairResult>")]
pub fn repo_repair(
    handle: u32,
    backups: Vec<CheckBackup>,
    cancel: Option<u32>,
) -> Result<AsyncTask<Job<RepairResult, RepairResult>>> {
    let repo = repo(handle)?;
    let backups = backup_files(backups)?;
    Ok(job(
        cancel,
        move || {
            let s = repair(&repo)?;
            let mut losses = Vec::new();
            for (id, files) in &backups {
                let files: Vec<FileLoss> = missing_chunks(&repo, files)?
                    .into_iter()
                    .map(|(name, n)| FileLoss { name, chunks_missing: n as u32 })
                    .collect();
                if !files.is_empty() {
                    losses.push(BackupLoss { id: id.clone(), files });
                }
            }
            Ok(RepairResult {
                indexes_removed: s.indexes_removed as u32,
                packs_indexed: s.packs_indexed as u32,
                packs_removed: s.packs_removed as u32,
                packs_damaged: s.packs_damaged as u32,
                chunks_salvaged: s.blobs_salvaged as u32,
                chunks_lost: s.blobs_lost as u32,
                packs_written: s.packs_written as u32,
                damage_records_cleared: s.records_cleared as u32,
                backups: losses,
            })
        },
        |r| r,
    ))
}

/// Whether the store enforces conditional writes by itself: it refuses to
/// overwrite an object on create (`If-None-Match`) and to replace one that
/// changed (`If-Match`); null when these credentials cannot write the probe
/// objects that find out.
#[napi(ts_return_type = "Promise<boolean | null>")]
pub fn repo_conditional_writes(handle: u32) -> Result<AsyncTask<Job<Option<bool>, Option<bool>>>> {
    let repo = repo(handle)?;
    let both = move || -> crate::core::error::CoreResult<bool> {
        Ok(repo.storage.conditional_writes()? && repo.storage.conditional_updates()?)
    };
    Ok(job(None, move || Ok(both().ok()), |known| known))
}

/// Reads the index afresh: readers call it first, so they see what other
/// writers committed since this handle opened.
#[napi(ts_return_type = "Promise<void>")]
pub fn repo_refresh(handle: u32) -> Result<AsyncTask<Job<(), ()>>> {
    let repo = repo(handle)?;
    Ok(job(None, move || repo.reload_index(), |()| ()))
}

/// Stored bytes of the chunks and lists each backup uses (one array of list
/// ids per backup): what it holds. Pass the backups of a source together, in order.
#[napi(ts_return_type = "Promise<Array<bigint>>")]
pub fn repo_held_bytes(handle: u32, backups: Vec<Vec<String>>) -> Result<AsyncTask<Job<Vec<u64>, Vec<BigInt>>>> {
    let repo = repo(handle)?;
    let backups = backups.iter().map(|lists| ids(lists)).collect::<Result<Vec<_>>>()?;
    Ok(job(None, move || held_bytes(&repo, &backups), |held| held.into_iter().map(BigInt::from).collect()))
}

/// Reads the index afresh before a backup or archive run adds to the
/// repository beside others (under a shared hold); refuses a damaged index.
#[napi(ts_return_type = "Promise<void>")]
pub fn repo_refresh_to_write(handle: u32) -> Result<AsyncTask<Job<(), ()>>> {
    let repo = repo(handle)?;
    Ok(job(None, move || repo.refresh_to_write(), |()| ()))
}

/// Settles what killed writers left (indexes their intact packs, removes
/// temporary objects); call holding the repository alone (the writer lock
/// and an exclusive hold). Returns the packs adopted.
#[napi(ts_return_type = "Promise<number>")]
pub fn repo_settle_unindexed(handle: u32) -> Result<AsyncTask<Job<crate::core::repo::writer::Settled, u32>>> {
    let repo = repo(handle)?;
    Ok(job(None, move || repo.settle_unindexed(), |s| s.adopted as u32))
}

/// Restores a file made of `lists` into the new file `dest`; with `hash`, returns its BLAKE3.
#[napi(ts_return_type = "Promise<string | null>")]
pub fn repo_restore_file(
    handle: u32,
    lists: Vec<String>,
    len: BigInt,
    dest: String,
    hash: bool,
    cancel: Option<u32>,
) -> Result<AsyncTask<Job<Option<String>, Option<String>>>> {
    let repo = repo(handle)?;
    let lists = ids(&lists)?;
    let len = u64_arg("len", &len)?;
    Ok(job(cancel, move || restore_file(&repo, &lists, len, &PathBuf::from(dest), hash), |h| h))
}

#[napi(object)]
pub struct RestoreTarget {
    pub lists: Vec<String>,
    pub len: BigInt,
    pub dest: String,
}

/// Each restored file's BLAKE3 (hex), when asked for.
type FileHashes = Vec<Option<String>>;

/// Restores several files (new paths) at once, reading each pack's chunks
/// for all of them together; with `hash`, returns their BLAKE3s.
#[napi(ts_return_type = "Promise<(string | null)[]>")]
pub fn repo_restore_files(
    handle: u32,
    files: Vec<RestoreTarget>,
    hash: bool,
    cancel: Option<u32>,
) -> Result<AsyncTask<Job<FileHashes, FileHashes>>> {
    let repo = repo(handle)?;
    let files = files
        .into_iter()
        .map(|f| Ok((ids(&f.lists)?, u64_arg("len", &f.len)?, PathBuf::from(f.dest))))
        .collect::<Result<Vec<_>>>()?;
    Ok(job(
        cancel,
        move || {
            let targets: Vec<Target> =
                files.iter().map(|(lists, len, dest)| Target { lists, len: *len, dest }).collect();
            restore_files(&repo, &targets, hash)
        },
        |hashes| hashes,
    ))
}

#[napi(object, object_from_js = false)]
pub struct CompareResult {
    pub source_len: BigInt,
    pub equal: bool,
    pub differing: Vec<BigInt>,
    pub differing_count: BigInt,
}

/// Compares the file made of `lists` with `source` (a heap page by page); writes nothing.
#[napi(ts_return_type = "Promise<CompareResult>")]
pub fn repo_compare_file(
    handle: u32,
    lists: Vec<String>,
    len: BigInt,
    source: String,
    heap: bool,
    cancel: Option<u32>,
) -> Result<AsyncTask<Job<crate::core::repo::restore_file::Comparison, CompareResult>>> {
    let repo = repo(handle)?;
    let lists = ids(&lists)?;
    let len = u64_arg("len", &len)?;
    Ok(job(
        cancel,
        move || compare_file(&repo, &lists, len, &PathBuf::from(source), heap),
        |c| CompareResult {
            source_len: BigInt::from(c.source_len),
            equal: c.equal,
            differing: c.differing.into_iter().map(BigInt::from).collect(),
            differing_count: BigInt::from(c.differing_count),
        },
    ))
}

#[napi(object)]
pub struct CheckFile {
    pub name: String,
    pub lists: Vec<String>,
}

#[napi(object)]
pub struct CheckBackup {
    pub id: String,
    pub files: Vec<CheckFile>,
}

#[napi(object, object_from_js = false)]
pub struct Problem {
    pub code: String,
    pub message: String,
}

#[napi(object, object_from_js = false)]
pub struct BackupProblems {
    pub id: String,
    pub problems: Vec<Problem>,
}

#[napi(object, object_from_js = false)]
pub struct CheckResult {
    pub problems: Vec<Problem>,
    pub backups: Vec<BackupProblems>,
    pub packs: u64,
    pub blobs: u64,
    pub bytes: u64,
    /// Damaged locations recorded by this check (see damage.rs).
    pub damage_recorded: u32,
    /// Why the damage found could not be recorded (a read-only repository).
    pub warning: Option<String>,
}

type Files = Vec<(String, Vec<BlobId>)>;

fn backup_files(backups: Vec<CheckBackup>) -> Result<Vec<(String, Files)>> {
    backups
        .into_iter()
        .map(|b| {
            let files = b.files.into_iter().map(|f| Ok((f.name, ids(&f.lists)?))).collect::<Result<Files>>()?;
            Ok((b.id, files))
        })
        .collect()
}

fn to_problem(p: crate::core::repo::check::Problem) -> Problem {
    Problem { code: p.code, message: p.message }
}

/// Reads every pack and checks every backup's chunks.
#[napi(ts_return_type = "Promise<CheckResult>")]
pub fn repo_check(
    handle: u32,
    backups: Vec<CheckBackup>,
    cancel: Option<u32>,
) -> Result<AsyncTask<Job<CheckResult, CheckResult>>> {
    let repo = repo(handle)?;
    let backups = backup_files(backups)?;
    Ok(job(
        cancel,
        move || {
            let packs = check_packs(&repo)?;
            // Recorded, the damage keeps the next backup from deduplicating against it.
            let (damage_recorded, warning) = match damage::record(&repo, &packs.damage) {
                Ok(n) => (n as u32, None),
                Err(e) => (0, Some(format!("the damage found could not be recorded in the repository ({e}); backups may still use the damaged chunks until it is")),),
            };
            repo.reload_index()?;
            let per_backup = backups
                .iter()
                .map(|(id, files)| BackupProblems {
                    id: id.clone(),
                    problems: check_backup(&repo, files, &packs.bad).into_iter().map(to_problem).collect(),
                })
                .collect();
            Ok(CheckResult {
                problems: packs.problems.into_iter().map(to_problem).collect(),
                backups: per_backup,
                packs: packs.packs,
                blobs: packs.blobs,
                bytes: packs.bytes,
                damage_recorded,
                warning,
            })
        },
        |r| r,
    ))
}

#[napi(object, object_from_js = false)]
pub struct PruneResult {
    pub packs_removed: u32,
    pub packs_repacked: u32,
    pub packs_written: u32,
    pub blobs_removed: u32,
    pub bytes_freed: i64,
}

/// Removes every blob that none of `lists` (the retained backups' lists) uses;
/// with `dry_run`, only says what that would free.
#[napi(ts_return_type = "Promise<PruneResult>")]
pub fn repo_prune(
    handle: u32,
    lists: Vec<String>,
    cancel: Option<u32>,
    dry_run: Option<bool>,
) -> Result<AsyncTask<Job<crate::core::repo::prune::PruneStats, PruneResult>>> {
    let repo = repo(handle)?;
    let lists = ids(&lists)?;
    Ok(job(
        cancel,
        move || if dry_run == Some(true) { estimate(&repo, &lists) } else { prune(&repo, &lists) },
        |s| PruneResult {
            packs_removed: s.packs_removed as u32,
            packs_repacked: s.packs_repacked as u32,
            packs_written: s.packs_written as u32,
            blobs_removed: s.blobs_removed as u32,
            bytes_freed: s.bytes_freed,
        },
    ))
}

/// Adds a password (the current one unwraps the master key again).
#[napi(ts_return_type = "Promise<string>")]
pub fn repo_key_add(
    handle: u32,
    current: String,
    password: String,
    kdf_params: Option<KdfArg>,
) -> Result<AsyncTask<Job<String, String>>> {
    let repo = repo(handle)?;
    let kdf = kdf(kdf_params);
    Ok(job(None, move || repo.add_key(&current, &password, kdf), |id| id))
}

#[napi(object, object_from_js = false)]
pub struct KeyEntry {
    pub id: String,
    pub created_unix_secs: u64,
    pub current: bool,
}

#[napi(ts_return_type = "Promise<KeyEntry[]>")]
pub fn repo_key_list(handle: u32) -> Result<AsyncTask<Job<Vec<KeyEntry>, Vec<KeyEntry>>>> {
    let repo = repo(handle)?;
    Ok(job(
        None,
        move || {
            let files = key_files(repo.storage.as_ref())?;
            Ok(files
                .into_iter()
                .map(|(id, f)| KeyEntry {
                    current: repo.key_id.as_deref() == Some(id.as_str()),
                    id,
                    created_unix_secs: f.created_unix_secs,
                })
                .collect())
        },
        |v| v,
    ))
}

#[napi(ts_return_type = "Promise<void>")]
pub fn repo_key_remove(handle: u32, id: String) -> Result<AsyncTask<Job<(), ()>>> {
    let repo = repo(handle)?;
    Ok(job(None, move || repo.remove_key(&id), |v| v))
}
