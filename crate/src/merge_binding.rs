#![cfg_attr(test, allow(dead_code))] // napi-derive compiles registration out of test builds
//! The catalog side of merging restored tables into a stopped database
//! (`core::catalog::merge`): the checks on the target before anything is
//! restored, and the merged `catalog.bin`, `views.bin` and `catalog.lsn`
//! written aside for the caller to publish.
use crate::binding::{job, Job};
use crate::catalog_binding::{link, read_catalog_file, read_views, write_new, CatalogLink, SubsetFile};
use crate::core::catalog::{CatalogFile, Views};
use crate::core::error::{CoreError, CoreResult};
use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// What a merge adds to the target; its files are written aside.
#[napi(object, object_from_js = false)]
pub struct CatalogMerge {
    /// The target's catalog version, kept.
    pub version: u32,
    /// The tables added, in catalog order.
    pub tables: Vec<String>,
    /// From the staged directory's names to the target's.
    pub files: Vec<SubsetFile>,
    pub links: Vec<CatalogLink>,
    /// Views added (with their backing tables); a `views.bin` is written aside only when there are any.
    pub views: Vec<String>,
    /// Whether a `catalog.lsn` was written aside (the larger of the two directories').
    pub catalog_lsn: bool,
}

/// Checks the target of a merge before anything is restored: its catalog
/// version is one a merge writes (`ERR_UNSUPPORTED_FORMAT`, also for a
/// version newer than this build reads). Resolves to the version.
#[napi(ts_return_type = "Promise<number>")]
pub fn check_merge_target(dir: String) -> AsyncTask<Job<u16, u32>> {
    job(
        None,
        move || {
            let target = read_target(Path::new(&dir))?;
            target.check_merge_target()?;
            Ok(target.version)
        },
        u32::from,
    )
}

/// Merges the catalog of `stageDir` (a finalized table restore) into that of
/// `targetDir`, writing the result's `catalog.bin` (and `views.bin`,
/// `catalog.lsn` when there is something to write) into `outDir` (fsynced,
/// none may exist yet). Nothing in either directory is changed.
#[napi(ts_return_type = "Promise<CatalogMerge>")]
pub fn merge_catalogs(
    stage_dir: String,
    target_dir: String,
    out_dir: String,
) -> AsyncTask<Job<CatalogMerge, CatalogMerge>> {
    job(None, move || merge(Path::new(&stage_dir), Path::new(&target_dir), &PathBuf::from(out_dir)), |m| m)
}

/// The target's catalog, a version newer than any this build reads named as
/// such rather than as damage.
fn read_target(dir: &Path) -> CoreResult<CatalogFile> {
    let path = dir.join("catalog.bin");
    let head = fs::read(&path).map_err(|e| CoreError::io("read", &path, e))?;
    if head.len() >= 6 && &head[..4] == b"BCAT" {
        let version = u16::from_le_bytes([head[4], head[5]]);
        if version > crate::core::catalog::NEWEST_VERSION {
            let target = CatalogFile { version, next_index_id: None, tables: Vec::new(), links: Vec::new() };
            target.check_merge_target()?;
        }
    }
    read_catalog_file(dir)
}

fn merge(stage: &Path, target: &Path, out: &Path) -> CoreResult<CatalogMerge> {
    let incoming = read_catalog_file(stage)?;
    let merged = read_target(target)?.merge(&incoming)?;
    let incoming_views = read_views(stage)?;
    let views = match &incoming_views {
        Some(v) => Views::merged(read_views(target)?.as_ref(), v)?,
        None => None,
    };
    write_new(&out.join("catalog.bin"), &merged.catalog)?;
    if let Some(bytes) = &views {
        write_new(&out.join("views.bin"), bytes)?;
    }
    let lsn = [read_lsn(stage)?, read_lsn(target)?].into_iter().flatten().max();
    if let Some(lsn) = lsn {
        write_new(&out.join("catalog.lsn"), &lsn.to_le_bytes())?;
    }
    Ok(CatalogMerge {
        version: merged.version.into(),
        tables: merged.tables,
        files: merged.files.into_iter().map(|f| SubsetFile { from: f.from, to: f.to, required: f.required }).collect(),
        links: merged.links.iter().map(link).collect(),
        views: match (views, incoming_views) {
            (Some(_), Some(v)) => v.views.into_iter().map(|v| v.name).collect(),
            _ => Vec::new(),
        },
        catalog_lsn: lsn.is_some(),
    })
}

/// `catalog.lsn` (8 bytes, little-endian), `None` when absent.
fn read_lsn(dir: &Path) -> CoreResult<Option<u64>> {
    let path = dir.join("catalog.lsn");
    match fs::read(&path) {
        Ok(bytes) => match <[u8; 8]>::try_from(bytes.as_slice()) {
            Ok(b) => Ok(Some(u64::from_le_bytes(b))),
            Err(_) => Err(CoreError::new("ERR_CATALOG", format!("{} is not 8 bytes", path.display()))),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CoreError::io("read", &path, e)),
    }
}
