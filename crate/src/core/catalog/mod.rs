//! PowDB's `catalog.bin` read and rewritten without the engine: the tables a
//! data directory holds (columns, indexes, expression indexes), the links
//! between them, and a filtered copy keeping only some tables (optionally
//! renamed), with the files of the data directory those tables own. The
//! materialized views of `views.bin` are filtered the same way.
//!
//! Formats read: catalog versions 1 to 7, the whole range powdb-storage
//! 0.29.0 reads (0.29.0 writes 5, 6 or 7; 0.4.x wrote 3, the same layout up
//! to its index list). A filtered catalog keeps the source's version and
//! `next_index_id`; with nothing filtered out it is the source byte for byte.
//! The catalog LSN is not in `catalog.bin` but in `catalog.lsn`, which a
//! filtered copy keeps as is: the engine takes the larger of it and the
//! highest page LSN at open.
mod cursor;
mod files;
mod merge;
mod parse;
mod select;
mod views;

#[cfg(test)]
mod test_db;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_engine;
#[cfg(test)]
mod tests_fixture;
#[cfg(test)]
mod tests_merge;

pub use files::FileCopy;
pub use merge::{Merge, ERR_CATALOG_VERSION, ERR_TABLE_EXISTS, MERGE_VERSIONS};
pub use parse::NEWEST_VERSION;
pub(crate) use parse::TYPES as TYPE_NAMES;
pub use select::{Subset, TableChoice};
pub use views::{ViewDef, ViewSubset, Views};

/// A damaged or unsupported `catalog.bin` or `views.bin`.
pub const ERR_CATALOG: &str = "ERR_CATALOG";

/// `catalog.bin` as read: the format version and, in the engine's order,
/// the tables and links.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogFile {
    pub version: u16,
    /// Stored from version 6 on (above every expression index id); `None`
    /// before.
    pub next_index_id: Option<u64>,
    pub tables: Vec<TableEntry>,
    /// Stored from version 7 on; empty before.
    pub links: Vec<Link>,
}

/// One table's entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableEntry {
    pub name: String,
    pub columns: Vec<Column>,
    /// Column indexes, each in the file `<table>_<column>.idx`.
    pub indexes: Vec<ColumnIndex>,
    /// Positions (in `columns`) of the columns with a default value.
    pub defaults: Vec<u16>,
    /// Positions (in `columns`) of the auto-increment columns.
    pub auto_columns: Vec<u16>,
    /// Each in the file `<table>_<id>.eidx`.
    pub expression_indexes: Vec<ExpressionIndex>,
    /// The entry's bytes after its name, re-emitted unchanged.
    body: Vec<u8>,
    /// How many of them precede the expression-index section (version 6
    /// on): the entry as a version-5 catalog holds it.
    base_len: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub type_name: &'static str,
    pub required: bool,
    pub position: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnIndex {
    pub column: String,
    pub unique: bool,
}

/// An index on a path inside a JSON column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpressionIndex {
    pub id: u64,
    pub unique: bool,
    pub canonical_version: u16,
    pub canonical_text: String,
    /// The JSON column the path starts from.
    pub column: String,
    pub path: Vec<PathSegment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSegment {
    Key(String),
    Index(u32),
}

/// A relationship link: `owner.local_key` refers to `target.target_key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub owner: String,
    pub name: String,
    pub target: String,
    pub local_key: String,
    pub target_key: String,
    /// 0 to-one, 1 to-many.
    pub kind: u8,
}

impl CatalogFile {
    pub fn table(&self, name: &str) -> Option<&TableEntry> {
        self.tables.iter().find(|t| t.name == name)
    }

    pub fn table_names(&self) -> Vec<&str> {
        self.tables.iter().map(|t| t.name.as_str()).collect()
    }
}
