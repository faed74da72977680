//! The PowDB 0.29.0 storage engine itself (`powdb-storage`, linked), for the
//! one thing only the engine can do right: recover a staged online copy (its
//! normal open replays the WAL and rebuilds the indexes), checkpoint it, and
//! check the result the way `powdb-cli verify` would.
mod bounded;
mod finalize;
mod index;
mod redo;
mod schema;
mod verify;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_check;
#[cfg(test)]
mod tests_redo;

#[cfg(test)]
use finalize::remove_lock_and_check;
pub use finalize::{check, finalize, finalize_by, Finalized, Route, TableSummary, AUTO_REDO_HEAP_BYTES};

use super::error::CoreError;
use std::any::Any;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Every failure of the engine or of the checks after it.
pub const ERR_FINALIZE: &str = "ERR_ONLINE_FINALIZE";

/// An engine error, with what was being done; the engine's own message
/// names the table, page or file.
fn engine_error(doing: &str, err: io::Error) -> CoreError {
    CoreError::new(ERR_FINALIZE, format!("{doing}: {err}"))
}

/// Runs engine code, turning a panic into an error: the engine reads a copy
/// that may be damaged, and a panic must not take the Node process down.
fn guarded<T>(doing: &str, work: impl FnOnce() -> Result<T, CoreError>) -> Result<T, CoreError> {
    catch_unwind(AssertUnwindSafe(work)).unwrap_or_else(|payload| {
        Err(CoreError::new(ERR_FINALIZE, format!("{doing}: the engine panicked: {}", panic_text(&*payload))))
    })
}

fn panic_text(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}
