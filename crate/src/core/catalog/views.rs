//! `views.bin`, the materialized-view registry (powdb-storage 0.29.0
//! `view.rs`): `BVIW`, version 1, a count, then per view its name (also its
//! backing table's), query text, the tables it depends on and a dirty flag.
//! No checksum. A subset keeps a view whose backing table and every
//! dependency are kept, the dependencies under their own names (the query
//! text names them); renaming the backing table renames the view.
use super::cursor::{put_string, Cursor};
use super::ERR_CATALOG;
use crate::core::error::{CoreError, CoreResult};
use std::collections::HashMap;

const MAGIC: &[u8; 4] = b"BVIW";
const VERSION: u16 = 1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Views {
    pub views: Vec<ViewDef>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewDef {
    pub name: String,
    pub query: String,
    pub depends_on: Vec<String>,
    pub dirty: bool,
    /// The bytes after the name, re-emitted unchanged.
    body: Vec<u8>,
}

/// A filtered `views.bin`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewSubset {
    pub bytes: Vec<u8>,
    /// Names in the subset.
    pub kept: Vec<String>,
    /// Views left out: backing table or a dependency not kept, or renamed.
    pub dropped: Vec<String>,
}

impl Views {
    pub fn parse(bytes: &[u8]) -> CoreResult<Views> {
        if bytes.len() < 10 || &bytes[..4] != MAGIC {
            return Err(CoreError::new(ERR_CATALOG, "views.bin has no BVIW header: not a PowDB view registry"));
        }
        let mut cur = Cursor::new(bytes, 4, "views.bin");
        let version = cur.u16("version")?;
        if version != VERSION {
            return Err(CoreError::new(
                ERR_CATALOG,
                format!("views.bin has version {version}; the version known is 1"),
            ));
        }
        let n = cur.u32("view count")? as usize;
        let n = cur.count(n, 11, "view")?;
        let mut views = Vec::with_capacity(n);
        for _ in 0..n {
            views.push(view(&mut cur)?);
        }
        if cur.remaining() != 0 {
            return Err(cur.error(cur.pos(), format!("{} bytes after the last view", cur.remaining())));
        }
        Ok(Views { views })
    }

    /// The registry as the engine wrote it (in the same order).
    pub fn encode(&self) -> Vec<u8> {
        let all: Vec<(&ViewDef, &str)> = self.views.iter().map(|v| (v, v.name.as_str())).collect();
        encode(&all)
    }

    /// Keeps the views over `tables` ((source name, kept name) pairs, as
    /// in [`super::Subset::tables`]).
    pub fn select(&self, tables: &[(String, String)]) -> ViewSubset {
        let renames: HashMap<&str, &str> = tables.iter().map(|(from, to)| (from.as_str(), to.as_str())).collect();
        let unrenamed = |t: &String| renames.get(t.as_str()).is_some_and(|to| *to == t);
        let mut kept = Vec::new();
        let mut dropped = Vec::new();
        for view in &self.views {
            match renames.get(view.name.as_str()) {
                Some(to) if view.depends_on.iter().all(unrenamed) => kept.push((view, *to)),
                _ => dropped.push(view.name.clone()),
            }
        }
        ViewSubset { bytes: encode(&kept), kept: kept.iter().map(|(_, to)| to.to_string()).collect(), dropped }
    }
}

impl Views {
    /// The target's views (none when it has no `views.bin`) followed by
    /// `incoming`'s, as a merge writes them; `None` when nothing is added
    /// (the target's file stays as it is). A name the target has is
    /// `ERR_TABLE_EXISTS`.
    pub fn merged(target: Option<&Views>, incoming: &Views) -> CoreResult<Option<Vec<u8>>> {
        if incoming.views.is_empty() {
            return Ok(None);
        }
        let own = target.map_or(&[][..], |t| t.views.as_slice());
        if let Some(v) = incoming.views.iter().find(|v| own.iter().any(|o| o.name == v.name)) {
            return Err(CoreError::new(
                super::ERR_TABLE_EXISTS,
                format!("the target already has a view {}; merge under another name (--rename)", v.name),
            ));
        }
        let all: Vec<(&ViewDef, &str)> = own.iter().chain(&incoming.views).map(|v| (v, v.name.as_str())).collect();
        Ok(Some(encode(&all)))
    }
}

fn view(cur: &mut Cursor) -> CoreResult<ViewDef> {
    let name = cur.string("view name")?;
    let start = cur.pos();
    let query = cur.string("view query")?;
    let n = cur.u16("dependency count")? as usize;
    let mut depends_on = Vec::with_capacity(n.min(cur.remaining()));
    for _ in 0..n {
        depends_on.push(cur.string("dependency")?);
    }
    let dirty = cur.u8("dirty flag")? != 0;
    Ok(ViewDef { name, query, depends_on, dirty, body: cur.since(start).to_vec() })
}

fn encode(views: &[(&ViewDef, &str)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(10 + views.iter().map(|(v, n)| 4 + n.len() + v.body.len()).sum::<usize>());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(views.len() as u32).to_le_bytes());
    for (view, name) in views {
        put_string(&mut out, name);
        out.extend_from_slice(&view.body);
    }
    out
}
