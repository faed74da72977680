//! A catalog keeping only chosen tables, optionally renamed: each kept
//! entry re-emitted from its own bytes under its (new) name, the links
//! whose owner and target are both kept, the source's version and
//! `next_index_id`, a fresh CRC.
use super::cursor::put_string;
use super::files::{check_identifier, table_files, FileCopy};
use super::parse::MAGIC;
use super::{CatalogFile, Link, TableEntry};
use crate::core::error::{CoreError, CoreResult};
use std::collections::{HashMap, HashSet};

const ERR_INVALID_ARG: &str = "ERR_INVALID_ARG";

/// A table to keep, under its own name or another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableChoice {
    pub name: String,
    pub rename_to: Option<String>,
}

impl TableChoice {
    pub fn keep(name: &str) -> Self {
        TableChoice { name: name.to_string(), rename_to: None }
    }

    pub fn renamed(name: &str, to: &str) -> Self {
        TableChoice { name: name.to_string(), rename_to: Some(to.to_string()) }
    }

    fn target(&self) -> &str {
        self.rename_to.as_deref().unwrap_or(&self.name)
    }
}

/// What a selection gives: the new `catalog.bin` and what goes with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subset {
    pub catalog: Vec<u8>,
    /// (name in the source, name in the subset), in catalog order.
    pub tables: Vec<(String, String)>,
    /// Links kept, with renamed tables' names replaced.
    pub links: Vec<Link>,
    /// Links left out because their owner or target is not kept.
    pub dropped_links: Vec<Link>,
    /// The files of the source directory the kept tables own.
    pub files: Vec<FileCopy>,
}

impl CatalogFile {
    /// The catalog as the engine would write it: for a parsed engine-made
    /// file, the same bytes.
    pub fn encode(&self) -> Vec<u8> {
        let entries: Vec<(&TableEntry, &str)> = self.tables.iter().map(|t| (t, t.name.as_str())).collect();
        encode(self, &entries, &self.links)
    }

    /// Keeps `choices` (in catalog order whatever their order here). A name
    /// the catalog lacks, a table chosen twice, two tables given one name, a
    /// new name that is not an identifier, or two kept tables that would
    /// share a file are `ERR_INVALID_ARG`; a kept entry whose own names
    /// would make a path is `ERR_UNSAFE_PATH`.
    pub fn select(&self, choices: &[TableChoice]) -> CoreResult<Subset> {
        let renames = self.check_choices(choices)?;
        let kept: Vec<(&TableEntry, &str)> =
            self.tables.iter().filter_map(|t| renames.get(t.name.as_str()).map(|to| (t, *to))).collect();
        let files = kept_files(&kept)?;
        let (links, dropped_links): (Vec<Link>, Vec<Link>) = self
            .links
            .iter()
            .cloned()
            .partition(|l| renames.contains_key(l.owner.as_str()) && renames.contains_key(l.target.as_str()));
        let links: Vec<Link> = links.into_iter().map(|l| renamed_link(l, &renames)).collect();
        Ok(Subset {
            catalog: encode(self, &kept, &links),
            tables: kept.iter().map(|(t, to)| (t.name.clone(), to.to_string())).collect(),
            links,
            dropped_links,
            files,
        })
    }

    /// Source name to kept name, after checking the choices.
    fn check_choices<'a>(&self, choices: &'a [TableChoice]) -> CoreResult<HashMap<&'a str, &'a str>> {
        if choices.is_empty() {
            return Err(CoreError::new(ERR_INVALID_ARG, "no table chosen"));
        }
        let mut renames = HashMap::new();
        let mut targets = HashSet::new();
        for choice in choices {
            if self.table(&choice.name).is_none() {
                let has = self.table_names().join(", ");
                return Err(CoreError::new(
                    ERR_INVALID_ARG,
                    format!("table {} is not in this catalog; it has: {has}", choice.name),
                ));
            }
            if renames.insert(choice.name.as_str(), choice.target()).is_some() {
                return Err(CoreError::new(ERR_INVALID_ARG, format!("table {} is chosen twice", choice.name)));
            }
            if let Some(to) = &choice.rename_to {
                check_identifier(to, "new table name").map_err(|e| CoreError::new(ERR_INVALID_ARG, e))?;
            }
            if !targets.insert(choice.target()) {
                return Err(CoreError::new(
                    ERR_INVALID_ARG,
                    format!("two kept tables would be named {}", choice.target()),
                ));
            }
        }
        Ok(renames)
    }
}

/// The kept tables' files, refused when two would get one name: the
/// engine names an index file `<table>_<column>.idx`, so a table `A` with an
/// index on `b_id` and a table `A_b` with one on `id` share a file.
fn kept_files(kept: &[(&TableEntry, &str)]) -> CoreResult<Vec<FileCopy>> {
    let mut files = Vec::new();
    for (entry, to) in kept {
        files.extend(table_files(entry, to)?);
    }
    let mut names = HashSet::new();
    match files.iter().find(|f| !names.insert(f.to.as_str())) {
        Some(f) => Err(CoreError::new(
            ERR_INVALID_ARG,
            format!("two kept tables would both own the file {}; choose another name", f.to),
        )),
        None => Ok(files),
    }
}

fn renamed_link(mut link: Link, renames: &HashMap<&str, &str>) -> Link {
    link.owner = renames[link.owner.as_str()].to_string();
    link.target = renames[link.target.as_str()].to_string();
    link
}

/// Header of the source's version, the entries under their given names,
/// the links section from version 7 on, CRC-32.
fn encode(source: &CatalogFile, entries: &[(&TableEntry, &str)], links: &[Link]) -> Vec<u8> {
    let parts: Vec<(&str, &[u8])> = entries.iter().map(|(t, name)| (*name, t.body.as_slice())).collect();
    write_catalog(source.version, source.next_index_id, &parts, links)
}

/// A whole `catalog.bin` of `version` from each entry's name and the bytes
/// after it, laid out as the engine's `write_catalog_file` lays it out.
pub(super) fn write_catalog(
    version: u16,
    next_index_id: Option<u64>,
    entries: &[(&str, &[u8])],
    links: &[Link],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + entries.iter().map(|(n, b)| n.len() + b.len() + 4).sum::<usize>());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    if let Some(next) = next_index_id {
        out.extend_from_slice(&next.to_le_bytes());
    }
    for (name, body) in entries {
        put_string(&mut out, name);
        out.extend_from_slice(body);
    }
    if version >= 7 {
        out.extend_from_slice(&(links.len() as u32).to_le_bytes());
        for link in links {
            for field in [&link.owner, &link.name, &link.target, &link.local_key, &link.target_key] {
                put_string(&mut out, field);
            }
            out.push(link.kind);
        }
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// For tests: the kept entries with any links, dangling ones included.
#[cfg(test)]
pub(super) fn encode_with_links(source: &CatalogFile, keep: &[&str], links: &[Link]) -> Vec<u8> {
    let entries: Vec<(&TableEntry, &str)> =
        source.tables.iter().filter(|t| keep.contains(&t.name.as_str())).map(|t| (t, t.name.as_str())).collect();
    encode(source, &entries, links)
}
