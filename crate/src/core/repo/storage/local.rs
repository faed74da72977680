//! A repository in a local directory: objects are files, private to the owner.
use super::{missing, ObjectInfo, Storage};
use crate::core::error::{CoreError, CoreResult};
use crate::core::fsio;
use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// Objects are temporary files first, linked to their name (which fails if it
/// exists, so nothing published is ever replaced), then the temporary name goes.
const TEMP_PREFIX: &str = ".tmp-";

/// A repository in a local directory: objects are files, private to the owner.
pub struct LocalDir {
    root: PathBuf,
    /// Published with `put_new_deferred` and not yet fsynced.
    unsynced: std::sync::Mutex<Vec<PathBuf>>,
}

impl LocalDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalDir { root: root.into(), unsynced: Default::default() }
    }

    /// Writes `data` under a temporary name and links it to `key`'s path;
    /// with `durable`, fsyncs the file before and the directory after.
    fn publish(&self, key: &str, data: &[u8], durable: bool) -> CoreResult<PathBuf> {
        let path = self.path(key)?;
        let dir = path.parent().expect("object paths have a parent").to_path_buf();
        self.ensure_dir(&dir)?;
        let temp = dir.join(format!("{TEMP_PREFIX}{}", random_hex(8)));
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&temp)
            .map_err(|e| CoreError::io("create", &temp, e))?;
        let mut result = file.write_all(data).map_err(|e| CoreError::io("write", &temp, e));
        if durable {
            result = result.and_then(|()| fsio::sync(&file, &temp));
        } else {
            // Start writeback now, so the later fsync has little left to wait for.
            // SAFETY: advisory syscall on a descriptor we own.
            unsafe { libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
        }
        let published =
            result.and_then(|()| fs::hard_link(&temp, &path).map_err(|e| CoreError::io("publish", &path, e)));
        let _ = fs::remove_file(&temp);
        published?;
        if durable {
            Self::sync_dir(&dir)?;
        }
        Ok(path)
    }

    fn path(&self, key: &str) -> CoreResult<PathBuf> {
        let plain = |part: &str| !part.is_empty() && part != "." && part != ".." && !part.starts_with(TEMP_PREFIX);
        if !key.split('/').all(plain) {
            return Err(CoreError::new("ERR_INVALID_ARG", format!("bad repository object name {key:?}")));
        }
        Ok(self.root.join(key))
    }

    fn sync_dir(dir: &Path) -> CoreResult<()> {
        let handle = fs::File::open(dir).map_err(|e| CoreError::io("open", dir, e))?;
        fsio::sync(&handle, dir)
    }

    fn ensure_dir(&self, dir: &Path) -> CoreResult<()> {
        if dir.is_dir() {
            return Ok(());
        }
        if let Some(parent) = dir.parent() {
            if parent != self.root {
                self.ensure_dir(parent)?;
            }
        }
        match fs::DirBuilder::new().mode(0o700).create(dir) {
            Ok(()) => Self::sync_dir(dir.parent().unwrap_or(&self.root)),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(CoreError::io("create directory", dir, e)),
        }
    }

    fn walk(&self, dir: &Path, prefix: &str, out: &mut Vec<ObjectInfo>) -> CoreResult<()> {
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(CoreError::io("list", dir, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| CoreError::io("list", dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(TEMP_PREFIX) || name.starts_with('.') {
                continue;
            }
            let meta = entry.metadata().map_err(|e| CoreError::io("stat", &entry.path(), e))?;
            let key = format!("{prefix}{name}");
            if meta.is_dir() {
                self.walk(&entry.path(), &format!("{key}/"), out)?;
            } else if meta.is_file() {
                out.push(ObjectInfo { key, size: meta.len() });
            }
        }
        Ok(())
    }

    fn clean_dir(dir: &Path) -> CoreResult<usize> {
        let mut removed = 0;
        let Ok(entries) = fs::read_dir(dir) else {
            return Ok(0);
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if name.starts_with(TEMP_PREFIX) {
                fs::remove_file(&path).map_err(|e| CoreError::io("remove", &path, e))?;
                removed += 1;
            } else if entry.file_type().is_ok_and(|t| t.is_dir()) {
                removed += Self::clean_dir(&path)?;
            }
        }
        Ok(removed)
    }
}

fn random_hex(bytes: usize) -> String {
    let mut raw = vec![0u8; bytes];
    getrandom::getrandom(&mut raw).expect("the OS random source works");
    raw.iter().map(|b| format!("{b:02x}")).collect()
}

impl Storage for LocalDir {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn lock_kind(&self) -> super::LockKind {
        super::LockKind::Flock(self.root.clone())
    }

    fn prepare_new(&self) -> CoreResult<Option<PathBuf>> {
        // The first directory created (parents included), for `init` to remove if it fails.
        let created = self.root.ancestors().take_while(|a| !a.exists()).last().map(Path::to_path_buf);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.root)
            .map_err(|e| CoreError::io("create", &self.root, e))?;
        let mut entries = fs::read_dir(&self.root).map_err(|e| CoreError::io("read", &self.root, e))?;
        if entries.next().is_some() {
            return Err(CoreError::new(
                "ERR_DEST_NOT_EMPTY",
                format!("repository directory {} is not empty", self.root.display()),
            ));
        }
        Ok(created)
    }

    fn put_new(&self, key: &str, data: &[u8]) -> CoreResult<()> {
        self.publish(key, data, true).map(|_| ())
    }

    fn put_new_deferred(&self, key: &str, data: Vec<u8>) -> CoreResult<Option<Vec<u8>>> {
        let path = self.publish(key, &data, false)?;
        self.unsynced.lock().unwrap_or_else(|p| p.into_inner()).push(path);
        Ok(Some(data))
    }

    fn sync_published(&self) -> CoreResult<()> {
        let paths = std::mem::take(&mut *self.unsynced.lock().unwrap_or_else(|p| p.into_inner()));
        let mut dirs = std::collections::BTreeSet::new();
        for path in &paths {
            let file = fs::File::open(path).map_err(|e| CoreError::io("open", path, e))?;
            fsio::sync(&file, path)?;
            // SAFETY: advisory syscall on a descriptor we own: written packs need not stay cached.
            unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
            dirs.insert(path.parent().expect("object paths have a parent").to_path_buf());
        }
        dirs.iter().try_for_each(|d| Self::sync_dir(d))
    }

    fn sync_object(&self, key: &str) -> CoreResult<()> {
        let path = self.path(key)?;
        let file = fs::File::open(&path).map_err(|e| CoreError::io("open", &path, e))?;
        fsio::sync(&file, &path)?;
        Self::sync_dir(path.parent().expect("object paths have a parent"))
    }

    fn get(&self, key: &str) -> CoreResult<Vec<u8>> {
        let path = self.path(key)?;
        match fsio::open_read(&path) {
            Ok(mut file) => {
                let mut out = Vec::new();
                std::io::Read::read_to_end(&mut file, &mut out).map_err(|e| CoreError::io("read", &path, e))?;
                Ok(out)
            }
            Err(e) if e.code == "ENOENT" => Err(missing(&self.location(), key)),
            Err(e) => Err(e),
        }
    }

    fn get_range(&self, key: &str, offset: u64, len: usize) -> CoreResult<Vec<u8>> {
        let path = self.path(key)?;
        let file = match fsio::open_read(&path) {
            Ok(file) => file,
            Err(e) if e.code == "ENOENT" => return Err(missing(&self.location(), key)),
            Err(e) => return Err(e),
        };
        let mut out = vec![0u8; len];
        file.read_exact_at(&mut out, offset).map_err(|e| {
            if e.kind() == ErrorKind::UnexpectedEof {
                CoreError::new("ERR_INTEGRITY", format!("repository object {key} is truncated"))
            } else {
                CoreError::io("read", &path, e)
            }
        })?;
        Ok(out)
    }

    fn list(&self, prefix: &str) -> CoreResult<Vec<ObjectInfo>> {
        let dir = prefix.trim_end_matches('/');
        let mut out = Vec::new();
        if dir.is_empty() {
            self.walk(&self.root, "", &mut out)?;
        } else {
            self.walk(&self.path(dir)?, &format!("{dir}/"), &mut out)?;
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    fn delete(&self, key: &str) -> CoreResult<()> {
        let path = self.path(key)?;
        match fs::remove_file(&path) {
            Ok(()) => Self::sync_dir(path.parent().expect("object paths have a parent")),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(CoreError::io("remove", &path, e)),
        }
    }

    fn clean_partial(&self) -> CoreResult<usize> {
        Self::clean_dir(&self.root)
    }

    fn put_replace(&self, key: &str, data: &[u8]) -> CoreResult<()> {
        let path = self.path(key)?;
        let temp = path.with_file_name(format!("{TEMP_PREFIX}{}", random_hex(8)));
        fs::write(&temp, data).map_err(|e| CoreError::io("write", &temp, e))?;
        fs::rename(&temp, &path).map_err(|e| CoreError::io("replace", &path, e))
    }

    /// The tag is the content's BLAKE3 (a lease names a random owner, so two versions never share one).
    fn get_tagged(&self, key: &str) -> CoreResult<(Vec<u8>, String)> {
        let data = self.get(key)?;
        let tag = blake3::hash(&data).to_hex().to_string();
        Ok((data, tag))
    }

    /// Compares and replaces under a `flock` of the object's directory, so
    /// that two processes of this machine cannot both replace one version.
    fn replace_if(&self, key: &str, data: &[u8], tag: &str) -> CoreResult<()> {
        let path = self.path(key)?;
        let dir = path.parent().expect("object paths have a parent");
        let handle = fs::File::open(dir).map_err(|e| CoreError::io("open", dir, e))?;
        // SAFETY: plain syscall on a descriptor we own; the lock goes with it.
        if unsafe { libc::flock(handle.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(CoreError::io("lock", dir, std::io::Error::last_os_error()));
        }
        match self.get_tagged(key) {
            Ok((_, now)) if now == tag => self.put_replace(key, data),
            Ok(_) => Err(CoreError::new("ECHANGED", format!("{} changed meanwhile", path.display()))),
            Err(e) if e.code == "ERR_MISSING_FILE" => {
                Err(CoreError::new("ECHANGED", format!("{} was removed meanwhile", path.display())))
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_are_written_once_and_listed_by_prefix() {
        let dir = crate::core::test_support::TempDir::new();
        std::fs::create_dir(dir.path("repo")).unwrap();
        let store = LocalDir::new(dir.path("repo"));
        store.put_new("data/ab/one", b"hello").unwrap();
        store.put_new("data/cd/two", b"world!").unwrap();
        assert_eq!(store.put_new("data/ab/one", b"again").unwrap_err().code, "EEXIST");
        assert_eq!(store.get("data/ab/one").unwrap(), b"hello");
        assert_eq!(store.get_range("data/cd/two", 1, 3).unwrap(), b"orl");
        let keys: Vec<_> = store.list("data/").unwrap().into_iter().map(|o| (o.key, o.size)).collect();
        assert_eq!(keys, vec![("data/ab/one".to_string(), 5), ("data/cd/two".to_string(), 6)]);
        assert_eq!(store.get("index/x").unwrap_err().code, "ERR_MISSING_FILE");
        store.delete("data/ab/one").unwrap();
        store.delete("data/ab/one").unwrap();
        assert_eq!(store.list("data").unwrap().len(), 1);
        assert!(store.put_new("../escape", b"x").is_err());
    }
}
