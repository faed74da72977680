use std::fmt;
use std::io;
use std::path::Path;

/// An error with a stable machine-readable `code` (`ERR_*`, or the errno name
/// for I/O failures) and a message that names the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreError {
    pub code: String,
    pub message: String,
}

pub type CoreResult<T> = Result<T, CoreError>;

impl CoreError {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        CoreError { code: code.to_string(), message: message.into() }
    }

    /// Wraps an I/O error, saying what was being done to which path.
    pub fn io(action: &str, path: &Path, err: io::Error) -> Self {
        CoreError::new(errno_name(&err), format!("cannot {action} {}: {err}", path.display()))
    }
}

impl fmt::Display for CoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for CoreError {}

/// Node-style errno names, so JS callers can match `code` as they do for `fs`.
fn errno_name(err: &io::Error) -> &'static str {
    match err.raw_os_error() {
        Some(libc::ENOENT) => "ENOENT",
        Some(libc::EACCES) => "EACCES",
        Some(libc::EPERM) => "EPERM",
        Some(libc::EEXIST) => "EEXIST",
        Some(libc::ENOTDIR) => "ENOTDIR",
        Some(libc::EISDIR) => "EISDIR",
        Some(libc::ENOSPC) => "ENOSPC",
        Some(libc::EROFS) => "EROFS",
        Some(libc::ELOOP) => "ELOOP",
        Some(libc::ENOTEMPTY) => "ENOTEMPTY",
        Some(libc::EXDEV) => "EXDEV",
        Some(libc::EMFILE) => "EMFILE",
        Some(libc::EDQUOT) => "EDQUOT",
        // A dump's reader went away (`powdb-backup dump ... | head`).
        Some(libc::EPIPE) => "EPIPE",
        _ => "EIO",
    }
}
