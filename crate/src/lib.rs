//! Native core of powdb-backup.
//!
//! `core` is plain Rust with no Node dependency (tested with `cargo test`);
//! `binding` is the thin napi-rs layer that runs it off the JS thread; it is
//! the `node` feature (default), so a Rust tool can link `core` alone.
#[cfg(feature = "node")]
mod binding;
#[cfg(feature = "node")]
mod catalog_binding;
pub mod core;
#[cfg(feature = "node")]
mod dump_binding;
#[cfg(feature = "node")]
mod engine_binding;
#[cfg(feature = "node")]
mod inplace_binding;
#[cfg(feature = "node")]
mod merge_binding;
#[cfg(feature = "node")]
mod online_binding;
#[cfg(feature = "node")]
mod repo_binding;
#[cfg(feature = "node")]
mod wal_binding;
