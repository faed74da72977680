//! Streaming file operations used by backup and restore. Every function works
//! in bounded memory (one chunk buffer) whatever the file size.
pub mod cancel;
pub mod catalog;
pub mod copy;
pub mod crashpoint;
pub mod delta;
pub mod digest;
pub mod dump;
pub mod engine;
pub mod error;
pub mod fsio;
pub mod heapdiff;
pub mod layer;
pub mod lock;
pub mod online;
pub mod page;
pub mod pagemap;
pub mod patch;
pub mod repo;
pub mod restore;
pub mod verify;
pub mod wal;

#[cfg(test)]
mod test_support;
