//! Scratch directories for unit tests.
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
