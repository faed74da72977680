//! The index's memory at millions of blobs: index objects describing
//! `INDEX_MEMORY_BLOBS` blobs (default 10,000,000; packs need not exist to
//! load an index) are written to a local repository, the index is loaded,
//! and a million ids present and a million absent are looked up; it prints
//! the peak resident memory of the load and lookups, and their times. Not
//! run by default; one size and mode a process (the peak is per process):
//!
//! INDEX_MEMORY_BLOBS=3000000 INDEX_MEMORY_SPILL_ABOVE=1000000000 \
//!   cargo test --release -p powdb-backup-native index_memory -- --ignored --nocapture
//!
//! `INDEX_MEMORY_SPILL_ABOVE` (default the index's own threshold) set above
//! the count keeps the index in memory, for comparison; `INDEX_MEMORY_MAIN=1`
//! loads it as before it could spill (every record read, then sorted). The repository is
//! kept in `INDEX_MEMORY_DIR` (default a directory in the temporary one,
//! by count) and reused when it is complete.
use super::{encode, read_all, Index, Limits, PackRecord, INDEX_PREFIX, SPILL_ABOVE};
use crate::core::repo::keys::{hex, BlobId, Keys};
use crate::core::repo::pack::Entry;
use crate::core::repo::storage::{LocalDir, Storage};
use std::time::Instant;

const PACK_BLOBS: usize = 100;
const OBJECT_PACKS: usize = 100;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The `n`th blob's id (ids past the count are absent).
fn id(n: u64) -> BlobId {
    let mut out = [0u8; 32];
    let mut x = n;
    for part in out.chunks_exact_mut(8) {
        x = x.wrapping_add(0x9e3779b97f4a7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
        part.copy_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out
}

/// A kibibyte count from /proc/self/status (`VmHWM`, `VmRSS`).
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Starts a new peak (`VmHWM`) from the resident memory now.
fn reset_peak() {
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn write_repository(storage: &LocalDir, count: usize) {
    let per_object = PACK_BLOBS * OBJECT_PACKS;
    for (object, first) in (0..count).step_by(per_object).enumerate() {
        let packs: Vec<PackRecord> = (first..count.min(first + per_object))
            .step_by(PACK_BLOBS)
            .map(|start| PackRecord {
                key: format!("data/{:02x}/{}", start % 256, hex(&id(u64::MAX - start as u64))),
                entries: (start..count.min(start + PACK_BLOBS))
                    .map(|n| Entry::single(id(n as u64), 0, true, (n % PACK_BLOBS) as u32 * 65536, 30000, 65536))
                    .collect(),
            })
            .collect();
        let key = format!("{INDEX_PREFIX}{object:064x}");
        storage.put_new(&key, &Keys::plain([1; 32]).seal(&encode(&packs), key.as_bytes())).unwrap();
    }
}

#[test]
#[ignore]
fn index_memory() {
    let count = env("INDEX_MEMORY_BLOBS", 10_000_000);
    let spill_above = env("INDEX_MEMORY_SPILL_ABOVE", SPILL_ABOVE);
    let dir = std::env::var("INDEX_MEMORY_DIR")
        .map(Into::into)
        .unwrap_or_else(|_| std::env::temp_dir().join(format!("powdb-index-memory-{count}")));
    let done = dir.join("complete");
    if !done.exists() {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let started = Instant::now();
        write_repository(&LocalDir::new(&dir), count);
        std::fs::write(&done, b"").unwrap();
        println!("wrote the index objects of {count} blobs in {:.1} s", started.elapsed().as_secs_f64());
    }
    let storage = LocalDir::new(&dir);
    let keys = Keys::plain([1; 32]);
    reset_peak();
    let before = status_kib("VmRSS:");
    let started = Instant::now();
    let main = std::env::var("INDEX_MEMORY_MAIN").is_ok();
    let index = if main {
        // The load before the index could spill: every object's records, then one sorted array.
        let mut records = Vec::new();
        for (_, packs) in read_all(&storage, &keys).unwrap() {
            records.extend(packs.unwrap());
        }
        let mut index = Index::default();
        index.extend(&records);
        index
    } else {
        Index::load_with(&storage, &keys, spill_above, Limits::default()).unwrap()
    };
    let load = started.elapsed();
    let load_peak = status_kib("VmHWM:");
    assert_eq!(index.len(), count);
    let lookups = 1_000_000u64;
    let mut x = 0x2545f4914f6cdd1du64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let started = Instant::now();
    for _ in 0..lookups {
        let n = next() % count as u64;
        assert_eq!(index.get(&id(n)).map(|(_, e)| e.offset), Some((n % PACK_BLOBS as u64) as u32 * 65536));
    }
    let present = started.elapsed();
    let started = Instant::now();
    for _ in 0..lookups {
        assert!(!index.contains(&id(count as u64 + next() % (count as u64 * 4))));
    }
    let absent = started.elapsed();
    let peak = status_kib("VmHWM:");
    println!(
        "{count} blobs, {} ({} packs): RSS before load {:.1} MiB; peak {:.1} MiB after load, {:.1} MiB after lookups; held after {:.1} MiB; load {:.2} s; {lookups} present {:.2} s ({:.0} ns each), {lookups} absent {:.2} s ({:.0} ns each)",
        match (main, index.is_spilled()) {
            (true, _) => "in memory, all records read first",
            (false, true) => "spilled",
            (false, false) => "in memory",
        },
        index.packs.len(),
        mib(before),
        mib(load_peak),
        mib(peak),
        mib(status_kib("VmRSS:")),
        load.as_secs_f64(),
        present.as_secs_f64(),
        present.as_nanos() as f64 / lookups as f64,
        absent.as_secs_f64(),
        absent.as_nanos() as f64 / lookups as f64,
    );
}
