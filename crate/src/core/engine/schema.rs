//! A table's schema as the engine types it, from our reading of
//! `catalog.bin`, so a heap can be opened without opening the catalog (and
//! with it every index).
use super::ERR_FINALIZE;
use crate::core::catalog::{TableEntry, TYPE_NAMES};
use crate::core::error::{CoreError, CoreResult};
use powdb_storage::types::{ColumnDef, Schema, TypeId};

pub fn table_schema(entry: &TableEntry) -> CoreResult<Schema> {
    let columns = entry
        .columns
        .iter()
        .map(|c| {
            let type_id =
                TYPE_NAMES.iter().position(|t| *t == c.type_name).and_then(|id| TypeId::from_u8(id as u8)).ok_or_else(
                    || {
                        CoreError::new(
                            ERR_FINALIZE,
                            format!("table {}: column {} has type {}", entry.name, c.name, c.type_name),
                        )
                    },
                )?;
            Ok(ColumnDef { name: c.name.clone(), type_id, required: c.required, position: c.position })
        })
        .collect::<CoreResult<Vec<_>>>()?;
    Ok(Schema { table_name: entry.name.clone(), columns })
}
