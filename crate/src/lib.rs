//! Native core of powdb-backup.
//!
//! `core` is plain Rust with no Node dependency (tested with `cargo test`);
//! `binding` is the thin napi-rs layer that runs it off the JS thread.
pub mod core;
mod binding;
mod repo_binding;
mod wal_binding;
mod inplace_binding;
