//! Native core of powdb-backup.
//!
//! `core` is plain Rust with no Node dependency (tested with `cargo test`);
//! `binding` is the thin napi-rs layer that runs it off the JS thread.
mod binding;
pub mod core;
mod engine_binding;
mod inplace_binding;
mod online_binding;
mod repo_binding;
mod wal_binding;
