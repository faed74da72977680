//! The files of a data directory a table owns, named the way the engine
//! names them: `<table>.heap`, `<table>_<column>.idx` per column index,
//! `<table>_<id>.eidx` per expression index.
use super::TableEntry;
use crate::core::error::{CoreError, CoreResult};

/// A file to copy from the source directory (`from`) into the subset
/// (`to`, which differs when the table is renamed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileCopy {
    pub from: String,
    pub to: String,
    /// The heap must be there; an index file may be left out (or be
    /// absent from the source): the engine rebuilds a missing one at open.
    pub required: bool,
}

/// The files of `table`, kept as `new_name`. Every name is checked to be an
/// identifier as the engine makes them (letters, digits, `_`, not starting
/// with a digit), so a damaged or hostile catalog cannot name a path
/// outside the directory.
pub(super) fn table_files(table: &TableEntry, new_name: &str) -> CoreResult<Vec<FileCopy>> {
    let unsafe_path = |e: String| CoreError::new("ERR_UNSAFE_PATH", format!("catalog.bin: {e}"));
    check_identifier(&table.name, "table name").map_err(unsafe_path)?;
    let mut files =
        vec![FileCopy { from: format!("{}.heap", table.name), to: format!("{new_name}.heap"), required: true }];
    for index in &table.indexes {
        check_identifier(&index.column, "indexed column name").map_err(unsafe_path)?;
        files.push(FileCopy {
            from: format!("{}_{}.idx", table.name, index.column),
            to: format!("{new_name}_{}.idx", index.column),
            required: false,
        });
    }
    for index in &table.expression_indexes {
        files.push(FileCopy {
            from: format!("{}_{}.eidx", table.name, index.id),
            to: format!("{new_name}_{}.eidx", index.id),
            required: false,
        });
    }
    Ok(files)
}

/// The engine's rule for table and column names (`validate_identifier`).
pub(super) fn check_identifier(name: &str, what: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Ok(())
    } else {
        Err(format!("{what} {name:?} is not an identifier (letters, digits and _, not starting with a digit)"))
    }
}
