//! The data directory's writer lock, taken the way the PowDB engine (0.7.1+)
//! takes it: an exclusive `flock` on `LOCK` plus our PID written inside, so a
//! server cannot start while a backup reads the directory. A LOCK left by a
//! dead process holds no flock and is taken over.
use super::error::{CoreError, CoreResult};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

pub const LOCK_FILE: &str = "LOCK";

/// A held writer lock; released (and `LOCK` removed if it still names us) on drop.
#[derive(Debug)]
pub struct WriterLock {
    path: PathBuf,
    pid: u32,
    file: Option<File>,
}

fn locked_by(dir: &Path, pid: Option<u32>) -> CoreError {
    let (owner, next) = match pid {
        Some(p) if is_powdb_backup(p) => (
            format!("powdb-backup itself (process {p}: another backup or restore of this directory)"),
            "wait for it to end, then try again",
        ),
        Some(p) => {
            (format!("live process {p}"), "stop the PowDB server cleanly (or whatever process that is), then try again")
        }
        None => ("another process".to_string(), "stop the PowDB server cleanly, then try again"),
    };
    CoreError::new("ERR_LOCKED", format!("{} is in use: its LOCK is held by {owner}; {next}", dir.display()))
}

/// Whether process `pid` has this package's native code mapped: the addon
/// (`powdb_backup.node`, a prebuild `powdb-backup.*.node`) or a test binary.
fn is_powdb_backup(pid: u32) -> bool {
    let ours = |line: &str| {
        let name = line.rsplit('/').next().unwrap_or("");
        line.contains('/') && (name.starts_with("powdb_backup") || name.starts_with("powdb-backup"))
    };
    std::fs::read_to_string(format!("/proc/{pid}/maps")).is_ok_and(|maps| maps.lines().any(ours))
}

fn read_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.take(64).read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

/// Whether a process runs: `kill(pid, 0)` succeeds or is refused with EPERM,
/// and it is not on its way out. A killed process keeps its PID as a zombie
/// until its parent reaps it, and `kill` still finds it then.
pub fn is_alive(pid: u32) -> bool {
    let Ok(id) = libc::pid_t::try_from(pid) else { return false };
    // SAFETY: signal 0 sends nothing; kill only checks that the process exists.
    let exists = unsafe { libc::kill(id, 0) == 0 || *libc::__errno_location() == libc::EPERM };
    exists && !is_exiting(pid)
}

/// PF_EXITING in the flags of /proc/<pid>/stat: set once the process has
/// begun to exit (a SIGKILL delivered), before it turns into a zombie.
const PF_EXITING: u64 = 0x4;

/// A zombie (Z), dead (X, x), or exiting process, by /proc/<pid>/stat.
/// Where that cannot be read, nothing says it is exiting.
fn is_exiting(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    // The name in parentheses may hold spaces and parentheses: fields follow the last ')'.
    let Some((_, rest)) = stat.rsplit_once(')') else { return false };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first().copied().unwrap_or("");
    let flags: u64 = fields.get(6).and_then(|f| f.parse().ok()).unwrap_or(0);
    matches!(state, "Z" | "X" | "x") || flags & PF_EXITING != 0
}

/// How long to wait for an exiting holder's flock to go: a killed process
/// drops its descriptors only once every thread has stopped.
const EXIT_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Takes the flock, waiting while the LOCK names a process that is exiting.
fn flock(file: &mut File, dir: &Path, path: &Path) -> CoreResult<()> {
    let deadline = std::time::Instant::now() + EXIT_WAIT;
    loop {
        // SAFETY: flock only reads the descriptor, which `file` keeps open.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(());
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(CoreError::io("lock", path, err));
        }
        let owner = read_pid(file);
        if owner.is_none_or(is_alive) || std::time::Instant::now() >= deadline {
            return Err(locked_by(dir, owner));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

impl WriterLock {
    /// Takes the lock of `dir`, or fails with ERR_LOCKED when a live process holds it.
    pub fn acquire(dir: &Path) -> CoreResult<WriterLock> {
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .map_err(|e| CoreError::io("open", &path, e))?;
        flock(&mut file, dir, &path)?;
        // Engines from before flock admit by PID alone (kill(pid, 0)), so a
        // free flock does not prove the directory free: a live PID in LOCK may
        // be such a server. A PID this tool or a flocking engine wrote never
        // stops us here (the holder's flock would have), unless reused; an
        // exiting or zombie process holds nothing any more.
        let me = std::process::id();
        if let Some(owner) = read_pid(&mut file).filter(|&p| p != me && is_alive(p)) {
            return Err(locked_by(dir, Some(owner)));
        }
        write_pid(&mut file, me).map_err(|e| CoreError::io("write", &path, e))?;
        Ok(WriterLock { path, pid: me, file: Some(file) })
    }
}

/// Writes our PID over what the file holds, then cuts it to length: a LOCK
/// that named someone is never left empty by a kill in between.
fn write_pid(file: &mut File, pid: u32) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let text = pid.to_string();
    file.write_all_at(text.as_bytes(), 0)?;
    file.set_len(text.len() as u64)?;
    file.sync_all()
}

impl Drop for WriterLock {
    fn drop(&mut self) {
        if let Some(mut file) = self.file.take() {
            // Remove LOCK only while it still names us, as the engine does.
            if read_pid(&mut file) == Some(self.pid) {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::test_support::TempDir;

    #[test]
    fn takes_releases_and_refuses_while_held() {
        let dir = TempDir::new();
        let root = dir.path("");
        let lock = WriterLock::acquire(&root).unwrap();
        assert_eq!(std::fs::read_to_string(dir.path(LOCK_FILE)).unwrap(), std::process::id().to_string());
        // A second open file description conflicts with the first flock.
        let err = WriterLock::acquire(&root).unwrap_err();
        assert_eq!(err.code, "ERR_LOCKED");
        // The holder is this test, which has our library mapped: named as powdb-backup itself.
        let me = format!("powdb-backup itself (process {}", std::process::id());
        assert!(err.message.contains(&me), "{}", err.message);
        drop(lock);
        assert!(!dir.path(LOCK_FILE).exists());
    }

    #[test]
    fn takes_over_a_stale_lock_of_a_dead_process() {
        let dir = TempDir::new();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        std::fs::write(dir.path(LOCK_FILE), dead.to_string()).unwrap();
        let lock = WriterLock::acquire(&dir.path("")).unwrap();
        assert_eq!(std::fs::read_to_string(dir.path(LOCK_FILE)).unwrap(), std::process::id().to_string());
        drop(lock);
    }

    #[test]
    fn takes_over_a_lock_naming_a_zombie() {
        let dir = TempDir::new();
        // Not waited for: it stays a zombie, which `kill(pid, 0)` still finds.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let zombie = child.id();
        let stat = format!("/proc/{zombie}/stat");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !std::fs::read_to_string(&stat).unwrap().rsplit_once(')').unwrap().1.trim_start().starts_with('Z') {
            assert!(std::time::Instant::now() < deadline, "{zombie} never became a zombie");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        std::fs::write(dir.path(LOCK_FILE), zombie.to_string()).unwrap();
        let taken = WriterLock::acquire(&dir.path(""));
        child.wait().unwrap();
        let lock = taken.unwrap();
        assert_eq!(std::fs::read_to_string(dir.path(LOCK_FILE)).unwrap(), std::process::id().to_string());
        drop(lock);
    }

    #[test]
    fn refuses_a_pid_only_lock_of_a_live_process() {
        let dir = TempDir::new();
        let mut child = std::process::Command::new("sleep").arg("5").spawn().unwrap();
        std::fs::write(dir.path(LOCK_FILE), child.id().to_string()).unwrap();
        let err = WriterLock::acquire(&dir.path("")).unwrap_err();
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(err.code, "ERR_LOCKED");
        assert_eq!(std::fs::read_to_string(dir.path(LOCK_FILE)).unwrap(), child.id().to_string());
    }
}
