//! Tables of one catalog added to another's: the incoming tables (a
//! finalized table restore, already under their final names) appended to a
//! stopped target database's catalog, each entry re-encoded for the
//! target's version (powdb-online.md §5.3). The target keeps its version:
//! an older engine may still open it, so what that version cannot hold (an
//! expression index before 6, a link before 7) is refused, never a silent
//! upgrade. Incoming expression indexes are renumbered from the target's
//! `next_index_id`, their files renamed to match (the file holds no id).
use super::cursor::put_string;
use super::files::table_files;
use super::select::write_catalog;
use super::{CatalogFile, ExpressionIndex, FileCopy, Link, PathSegment, TableEntry};
use crate::core::error::{CoreError, CoreResult};
use std::collections::HashSet;

/// A name the target has already.
pub const ERR_TABLE_EXISTS: &str = "ERR_TABLE_EXISTS";
/// An incoming table the target's catalog version cannot express.
pub const ERR_CATALOG_VERSION: &str = "ERR_CATALOG_VERSION";
const ERR_UNSUPPORTED_FORMAT: &str = "ERR_UNSUPPORTED_FORMAT";

/// The catalog versions a merge writes: those powdb-storage 0.29.0 writes
/// (5 from PowDB 0.7 on; 6 and 7 once an expression index or a link exists).
pub const MERGE_VERSIONS: std::ops::RangeInclusive<u16> = 5..=7;

/// What merging gives: the target's new `catalog.bin` and the files to move in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merge {
    pub catalog: Vec<u8>,
    /// The target's version, kept.
    pub version: u16,
    /// The incoming tables, in catalog order (after the target's own).
    pub tables: Vec<String>,
    /// The incoming tables' files: from their names beside the incoming
    /// catalog to their names in the target.
    pub files: Vec<FileCopy>,
    /// Incoming links (both ends incoming), appended to the target's.
    pub links: Vec<Link>,
}

impl CatalogFile {
    /// Refuses a target this build does not write (`ERR_UNSUPPORTED_FORMAT`).
    pub fn check_merge_target(&self) -> CoreResult<()> {
        if MERGE_VERSIONS.contains(&self.version) {
            return Ok(());
        }
        Err(CoreError::new(
            ERR_UNSUPPORTED_FORMAT,
            format!(
                "the target's catalog.bin has version {}; a merge writes the versions PowDB 0.7 to 0.29 write, {} to {}",
                self.version,
                MERGE_VERSIONS.start(),
                MERGE_VERSIONS.end()
            ),
        ))
    }

    /// A name of `names` this catalog has already (`ERR_TABLE_EXISTS`).
    pub fn check_new_names(&self, names: &[&str]) -> CoreResult<()> {
        match names.iter().find(|n| self.table(n).is_some()) {
            Some(name) => Err(CoreError::new(
                ERR_TABLE_EXISTS,
                format!("the target already has a table {name}; merge it under another name with --rename {name}=<new name>"),
            )),
            None => Ok(()),
        }
    }

    /// `self` (the target) with `incoming`'s tables and links added.
    pub fn merge(&self, incoming: &CatalogFile) -> CoreResult<Merge> {
        self.check_merge_target()?;
        if incoming.version < *MERGE_VERSIONS.start() {
            return Err(CoreError::new(
                ERR_UNSUPPORTED_FORMAT,
                format!(
                    "the backup's catalog is version {} (PowDB 0.4): its tables cannot be merged into a newer database; restore them into a new directory",
                    incoming.version
                ),
            ));
        }
        self.check_new_names(&incoming.table_names())?;
        let links = incoming_links(incoming);
        self.check_expressible(incoming, &links)?;
        let mut next_id = self.next_index_id.unwrap_or(1);
        let mut bodies = Vec::with_capacity(incoming.tables.len());
        let mut files = Vec::new();
        for table in &incoming.tables {
            let ids: Vec<u64> = (next_id..).take(table.expression_indexes.len()).collect();
            next_id += ids.len() as u64;
            bodies.push(reencoded(table, self.version, &ids));
            files.extend(moved_files(table, &ids)?);
        }
        self.check_files(&files)?;
        let mut entries: Vec<(&str, &[u8])> =
            self.tables.iter().map(|t| (t.name.as_str(), t.body.as_slice())).collect();
        entries.extend(incoming.tables.iter().zip(&bodies).map(|(t, b)| (t.name.as_str(), b.as_slice())));
        let all_links: Vec<Link> = self.links.iter().chain(&links).cloned().collect();
        let next_index_id = self.next_index_id.map(|_| next_id);
        Ok(Merge {
            catalog: write_catalog(self.version, next_index_id, &entries, &all_links),
            version: self.version,
            tables: incoming.table_names().into_iter().map(String::from).collect(),
            files,
            links,
        })
    }

    /// What the target's version has no place for.
    fn check_expressible(&self, incoming: &CatalogFile, links: &[Link]) -> CoreResult<()> {
        let too_old = |what: String, needs: u16, made_by: &str| {
            CoreError::new(
                ERR_CATALOG_VERSION,
                format!(
                    "{what}, which needs catalog version {needs}; the target's catalog is version {}, which has no place for it (PowDB raises a database to {needs} when it first creates {made_by}): restore the table into a new directory, or create {made_by} in the target first",
                    self.version
                ),
            )
        };
        if self.version < 6 {
            if let Some((t, x)) =
                incoming.tables.iter().find_map(|t| t.expression_indexes.first().map(|x| (&t.name, x)))
            {
                let what = format!("table {t} has an expression index on {}", path_text(x));
                return Err(too_old(what, 6, "an expression index"));
            }
        }
        if self.version < 7 {
            if let Some(l) = links.first() {
                let what = format!("table {} has a link {} to {}", l.owner, l.name, l.target);
                return Err(too_old(what, 7, "a link"));
            }
        }
        Ok(())
    }

    /// An incoming file the target's own tables own already (a table `A`
    /// with an index on `b_id` and an incoming table `A_b` with one on `id`).
    fn check_files(&self, files: &[FileCopy]) -> CoreResult<()> {
        let mut owned = HashSet::new();
        for table in &self.tables {
            for f in table_files(table, &table.name)? {
                owned.insert(f.to);
            }
        }
        match files.iter().find(|f| owned.contains(&f.to)) {
            Some(f) => Err(CoreError::new(
                ERR_TABLE_EXISTS,
                format!("a table of the target owns the file {} already; merge under another name (--rename)", f.to),
            )),
            None => Ok(()),
        }
    }
}

/// `doc.kind[2]`: the column and path an expression index reads.
fn path_text(index: &ExpressionIndex) -> String {
    let mut text = index.column.clone();
    for segment in &index.path {
        match segment {
            PathSegment::Key(key) => text.push_str(&format!(".{key}")),
            PathSegment::Index(i) => text.push_str(&format!("[{i}]")),
        }
    }
    text
}

/// Links whose both ends are incoming: a table restore keeps no other.
fn incoming_links(incoming: &CatalogFile) -> Vec<Link> {
    let names: HashSet<&str> = incoming.table_names().into_iter().collect();
    incoming
        .links
        .iter()
        .filter(|l| names.contains(l.owner.as_str()) && names.contains(l.target.as_str()))
        .cloned()
        .collect()
}

/// The entry's bytes after its name for a catalog of `version`: the
/// version-5 part as it is, then (from 6) the expression indexes under `ids`.
fn reencoded(table: &TableEntry, version: u16, ids: &[u64]) -> Vec<u8> {
    let mut body = table.body[..table.base_len].to_vec();
    if version >= 6 {
        body.extend_from_slice(&(table.expression_indexes.len() as u16).to_le_bytes());
        for (index, id) in table.expression_indexes.iter().zip(ids) {
            put_expression_index(&mut body, index, *id);
        }
    }
    body
}

/// One expression index as `ddl_payload.rs` encodes it.
fn put_expression_index(out: &mut Vec<u8>, index: &ExpressionIndex, id: u64) {
    out.extend_from_slice(&id.to_le_bytes());
    out.push(u8::from(index.unique));
    out.extend_from_slice(&index.canonical_version.to_le_bytes());
    put_string(out, &index.canonical_text);
    put_string(out, &index.column);
    out.extend_from_slice(&(index.path.len() as u16).to_le_bytes());
    for segment in &index.path {
        match segment {
            PathSegment::Key(key) => {
                out.push(1);
                put_string(out, key);
            }
            PathSegment::Index(i) => {
                out.push(2);
                out.extend_from_slice(&i.to_le_bytes());
            }
        }
    }
}

/// The table's files, an expression index's under its new id.
fn moved_files(table: &TableEntry, ids: &[u64]) -> CoreResult<Vec<FileCopy>> {
    let mut files = table_files(table, &table.name)?;
    let first_expression = files.len() - ids.len();
    for (file, id) in files[first_expression..].iter_mut().zip(ids) {
        file.to = format!("{}_{id}.eidx", table.name);
    }
    Ok(files)
}
