#![cfg_attr(test, allow(dead_code))] // napi-derive compiles registration out of test builds
//! The catalog side of the binding (`core::catalog`): what a data directory's
//! `catalog.bin` and `views.bin` hold, and the subset of its tables a table
//! restore writes, off the JS thread.
use crate::binding::{job, Job};
use crate::core::catalog::{CatalogFile, Link, Subset, TableChoice, TableEntry, Views};
use crate::core::error::{CoreError, CoreResult};
use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A name the catalog lacks.
const ERR_NO_TABLE: &str = "ERR_NO_TABLE";

#[napi(object, object_from_js = false)]
pub struct CatalogColumn {
    pub name: String,
    /// `int`, `float`, `bool`, `str`, `datetime`, `uuid`, `bytes`, `json` (`empty` is reserved).
    pub type_name: String,
    pub required: bool,
    pub has_default: bool,
    pub auto_increment: bool,
}

#[napi(object, object_from_js = false)]
pub struct CatalogIndex {
    /// The column, or for an expression index its canonical text.
    pub key: String,
    pub unique: bool,
    pub expression: bool,
    /// The file the engine keeps it in (rebuilt at open when absent).
    pub file: String,
}

#[napi(object, object_from_js = false)]
pub struct CatalogTable {
    pub name: String,
    pub columns: Vec<CatalogColumn>,
    pub indexes: Vec<CatalogIndex>,
    /// `<name>.heap`.
    pub heap: String,
}

#[napi(object, object_from_js = false)]
pub struct CatalogLink {
    pub owner: String,
    pub name: String,
    pub target: String,
    pub local_key: String,
    pub target_key: String,
    /// `one` or `many`.
    pub kind: String,
}

#[napi(object, object_from_js = false)]
pub struct CatalogView {
    pub name: String,
    pub query: String,
    pub depends_on: Vec<String>,
}

/// A data directory's catalog as read from its files.
#[napi(object, object_from_js = false)]
pub struct CatalogInfo {
    /// `catalog.bin`'s format version (1 to 7).
    pub version: u32,
    /// In catalog order.
    pub tables: Vec<CatalogTable>,
    pub links: Vec<CatalogLink>,
    /// From `views.bin` (none when it is absent).
    pub views: Vec<CatalogView>,
}

/// A table to keep, under its own name or `renameTo`.
#[napi(object)]
pub struct TableChoiceArg {
    pub name: String,
    pub rename_to: Option<String>,
}

#[napi(object, object_from_js = false)]
pub struct KeptTable {
    pub from: String,
    pub to: String,
}

/// A file of the source directory a kept table owns, and its name in the subset.
#[napi(object, object_from_js = false)]
pub struct SubsetFile {
    pub from: String,
    pub to: String,
    /// The heap; an index file may be absent (the engine rebuilds it).
    pub required: bool,
}

/// What a subset keeps, and what it leaves out because it would dangle.
#[napi(object, object_from_js = false)]
pub struct CatalogSubset {
    /// In catalog order.
    pub tables: Vec<KeptTable>,
    pub files: Vec<SubsetFile>,
    pub links: Vec<CatalogLink>,
    pub dropped_links: Vec<CatalogLink>,
    pub views: Vec<String>,
    pub dropped_views: Vec<String>,
}

/// Reads `<dir>/catalog.bin` and, when there, `<dir>/views.bin`. Rejects with
/// `ERR_CATALOG` (damaged), `ERR_UNSAFE_PATH` (a name that is no identifier).
#[napi(ts_return_type = "Promise<CatalogInfo>")]
pub fn read_catalog(dir: String) -> AsyncTask<Job<CatalogInfo, CatalogInfo>> {
    job(None, move || info(Path::new(&dir)), |i| i)
}

/// The tables `choices` keep from the catalog in `sourceDir`: their files,
/// links and views. With `destDir`, also writes the subset's `catalog.bin`
/// (same version and next index id) and, when the source has one,
/// `views.bin` there (fsynced, neither may exist yet). A name the catalog
/// lacks is `ERR_NO_TABLE`, listing the tables it has; other refused choices
/// are `ERR_INVALID_ARG`.
#[napi(ts_return_type = "Promise<CatalogSubset>")]
pub fn select_tables(
    source_dir: String,
    choices: Vec<TableChoiceArg>,
    dest_dir: Option<String>,
) -> AsyncTask<Job<CatalogSubset, CatalogSubset>> {
    let choices: Vec<TableChoice> =
        choices.into_iter().map(|c| TableChoice { name: c.name, rename_to: c.rename_to }).collect();
    job(None, move || subset(Path::new(&source_dir), &choices, dest_dir.map(PathBuf::from).as_deref()), |s| s)
}

pub(crate) fn read_catalog_file(dir: &Path) -> CoreResult<CatalogFile> {
    let path = dir.join("catalog.bin");
    CatalogFile::parse(&fs::read(&path).map_err(|e| CoreError::io("read", &path, e))?)
}

pub(crate) fn read_views(dir: &Path) -> CoreResult<Option<Views>> {
    let path = dir.join("views.bin");
    match fs::read(&path) {
        Ok(bytes) => Views::parse(&bytes).map(Some),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CoreError::io("read", &path, e)),
    }
}

fn info(dir: &Path) -> CoreResult<CatalogInfo> {
    let catalog = read_catalog_file(dir)?;
    let views = read_views(dir)?.map_or_else(Vec::new, |v| v.views);
    Ok(CatalogInfo {
        version: catalog.version.into(),
        tables: catalog.tables.iter().map(|t| table(&catalog, t)).collect::<CoreResult<_>>()?,
        links: catalog.links.iter().map(link).collect(),
        views: views
            .into_iter()
            .map(|v| CatalogView { name: v.name, query: v.query, depends_on: v.depends_on })
            .collect(),
    })
}

fn table(catalog: &CatalogFile, entry: &TableEntry) -> CoreResult<CatalogTable> {
    // The file names, checked the way a restore checks them.
    let files = catalog.select(&[TableChoice::keep(&entry.name)])?.files;
    let file_of = |i: usize| files.get(i + 1).map_or_else(String::new, |f| f.from.clone());
    let columns = entry
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| CatalogColumn {
            name: c.name.clone(),
            type_name: c.type_name.to_string(),
            required: c.required,
            has_default: entry.defaults.contains(&(i as u16)),
            auto_increment: entry.auto_columns.contains(&(i as u16)),
        })
        .collect();
    let plain = entry.indexes.iter().enumerate().map(|(i, x)| CatalogIndex {
        key: x.column.clone(),
        unique: x.unique,
        expression: false,
        file: file_of(i),
    });
    let n = entry.indexes.len();
    let expression = entry.expression_indexes.iter().enumerate().map(|(i, x)| CatalogIndex {
        key: x.canonical_text.clone(),
        unique: x.unique,
        expression: true,
        file: file_of(n + i),
    });
    Ok(CatalogTable {
        name: entry.name.clone(),
        columns,
        indexes: plain.chain(expression).collect(),
        heap: files[0].from.clone(),
    })
}

pub(crate) fn link(l: &Link) -> CatalogLink {
    CatalogLink {
        owner: l.owner.clone(),
        name: l.name.clone(),
        target: l.target.clone(),
        local_key: l.local_key.clone(),
        target_key: l.target_key.clone(),
        kind: if l.kind == 0 { "one" } else { "many" }.to_string(),
    }
}

fn subset(source: &Path, choices: &[TableChoice], dest: Option<&Path>) -> CoreResult<CatalogSubset> {
    let catalog = read_catalog_file(source)?;
    if let Some(missing) = choices.iter().find(|c| catalog.table(&c.name).is_none()) {
        let has = catalog.table_names();
        let has = if has.is_empty() { "no table".to_string() } else { has.join(", ") };
        return Err(CoreError::new(ERR_NO_TABLE, format!("the backup has no table {}; it has: {has}", missing.name)));
    }
    let chosen: Subset = catalog.select(choices)?;
    let views = read_views(source)?.map(|v| v.select(&chosen.tables));
    if let Some(dest) = dest {
        write_new(&dest.join("catalog.bin"), &chosen.catalog)?;
        if let Some(views) = &views {
            write_new(&dest.join("views.bin"), &views.bytes)?;
        }
    }
    let (views, dropped_views) = views.map_or_else(Default::default, |v| (v.kept, v.dropped));
    Ok(CatalogSubset {
        tables: chosen.tables.into_iter().map(|(from, to)| KeptTable { from, to }).collect(),
        files: chosen.files.into_iter().map(|f| SubsetFile { from: f.from, to: f.to, required: f.required }).collect(),
        links: chosen.links.iter().map(link).collect(),
        dropped_links: chosen.dropped_links.iter().map(link).collect(),
        views,
        dropped_views,
    })
}

/// Creates `path` (refusing one that exists), writes `bytes` and fsyncs it.
pub(crate) fn write_new(path: &Path, bytes: &[u8]) -> CoreResult<()> {
    let mut file =
        fs::OpenOptions::new().write(true).create_new(true).open(path).map_err(|e| CoreError::io("create", path, e))?;
    file.write_all(bytes).and_then(|()| file.sync_all()).map_err(|e| CoreError::io("write", path, e))
}
