//! PowDB's WAL and powdb-sync's retained segments (`.prul`): streaming
//! readers that check every byte, the boundaries at which a replay may stop,
//! and the writer of a `wal.log` that replays archived history up to a point.
pub mod record;
pub mod replay;
pub mod scan;
pub mod segment;
pub mod stream;

#[cfg(test)]
mod tests;
