//! Scratch directories, seeded randomness and engine-made heaps for unit tests.
use powdb_storage::catalog::Catalog;
use powdb_storage::types::{ColumnDef, Schema, TypeId, Value};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("powdb-core-test-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    pub fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `count` pages whose LSN is given by `lsn(i)` and whose body is filled with `i`.
pub fn pages(count: usize, lsn: impl Fn(usize) -> u64) -> Vec<u8> {
    let mut bytes = vec![0u8; count * super::page::PAGE_SIZE];
    for (i, page) in bytes.chunks_exact_mut(super::page::PAGE_SIZE).enumerate() {
        page[20..].fill(i as u8);
        page[8..16].copy_from_slice(&lsn(i).to_le_bytes());
    }
    bytes
}

#[allow(dead_code)]
pub fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

/// A whole copy of `bytes` written as `name`, as a chain layer.
pub fn whole_layer(dir: &TempDir, name: &str, bytes: &[u8]) -> super::restore::Layer {
    super::restore::Layer {
        path: dir.write(name, bytes),
        name: name.into(),
        len: bytes.len() as u64,
        blake3_hex: blake3::hash(bytes).to_hex().to_string(),
        artifact: "backup".into(),
        kind: super::restore::LayerKind::Whole,
    }
}

/// The PID of a process that has exited and been reaped (until the PID is reused).
pub fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

/// splitmix64: seeded randomness for tests, reproducible from the seed printed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform enough below `n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(PartialEq, Clone, Copy)]
pub enum Rows {
    /// Ids and values that count up, names of one shape.
    Regular,
    /// Random values, names of random lengths.
    Varied,
    /// Varied, with overflow values among them.
    Overflow,
}

/// A heap the linked engine wrote: rows as `shape` says, then updates
/// that move rows and deletes that leave holes, checkpointed.
pub fn engine_heap(seed: u64, rows: i64, shape: Rows) -> Vec<u8> {
    let dir = TempDir::new();
    let mut cat = Catalog::create(&dir.path("db")).unwrap();
    let columns = [("id", TypeId::Int), ("name", TypeId::Str), ("n", TypeId::Int)]
        .iter()
        .enumerate()
        .map(|(i, (name, type_id))| ColumnDef {
            name: name.to_string(),
            type_id: *type_id,
            required: true,
            position: i as u16,
        })
        .collect();
    cat.create_table(Schema { table_name: "T".into(), columns }).unwrap();
    let mut rng = Rng(seed);
    let mut rids = Vec::new();
    for i in 0..rows {
        let name = match rng.below(20) {
            _ if shape == Rows::Regular => format!("row-{i}"),
            0 if shape == Rows::Overflow => "y".repeat(5000),
            1..=5 => format!("row-{i}-{}", "x".repeat(rng.below(300) as usize)),
            _ => format!("row-{i}"),
        };
        let n = if shape == Rows::Regular { i * 7 } else { rng.next() as i64 };
        rids.push(cat.insert("T", &vec![Value::Int(i), Value::Str(name), Value::Int(n)]).unwrap());
        cat.commit_autocommit().unwrap();
    }
    for _ in 0..rows / 10 {
        let rid = rids[rng.below(rids.len() as u64) as usize];
        if rng.below(2) == 0 {
            let _ = cat.delete("T", rid);
        } else {
            let _ = cat.update(
                "T",
                rid,
                &vec![Value::Int(-1), Value::Str("z".repeat(rng.below(90) as usize)), Value::Int(0)],
            );
        }
        cat.commit_autocommit().unwrap();
    }
    cat.checkpoint().unwrap();
    drop(cat);
    std::fs::read(dir.path("db").join("T.heap")).unwrap()
}
