//! Where a dump's bytes go: a new file (created here, fsynced at the end;
//! the caller publishes it by name), or a descriptor the caller owns, such
//! as stdout, which may be a non-blocking pipe.
use crate::core::cancel;
use crate::core::error::{CoreError, CoreResult};
use crate::core::fsio;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub enum Output {
    /// Created (it must not exist), written and fsynced.
    NewFile(PathBuf),
    /// Written, never closed.
    Fd(i32),
}

/// Buffered writes to an `Output`, with I/O errors named after it.
pub struct Sink {
    inner: io::BufWriter<Target>,
    what: PathBuf,
    pub bytes: u64,
}

enum Target {
    File(File),
    Fd(i32),
}

/// Big enough that a pipe or file sees few, large writes.
const BUFFER: usize = 1 << 20;

impl Sink {
    pub fn open(output: &Output) -> CoreResult<Sink> {
        let (target, what) = match output {
            Output::NewFile(path) => (Target::File(fsio::create_new(path)?), path.clone()),
            Output::Fd(fd) => (Target::Fd(*fd), PathBuf::from(format!("file descriptor {fd}"))),
        };
        Ok(Sink { inner: io::BufWriter::with_capacity(BUFFER, target), what, bytes: 0 })
    }

    pub fn write(&mut self, bytes: &[u8]) -> CoreResult<()> {
        self.inner.write_all(bytes).map_err(|e| self.error(e))?;
        self.bytes += bytes.len() as u64;
        Ok(())
    }

    /// Writes what is buffered; a new file is fsynced.
    pub fn finish(mut self) -> CoreResult<u64> {
        self.inner.flush().map_err(|e| self.error(e))?;
        if let Target::File(file) = self.inner.get_ref() {
            fsio::sync(file, &self.what)?;
        }
        Ok(self.bytes)
    }

    fn error(&self, e: io::Error) -> CoreError {
        // `write_fd` gives up on a full pipe once the operation is aborted.
        if let Err(aborted) = cancel::check() {
            return aborted;
        }
        CoreError::io("write", Path::new(&self.what), e)
    }
}

impl Write for Target {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Target::File(file) => file.write(buf),
            Target::Fd(fd) => write_fd(*fd, buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// One write(2) to a descriptor owned elsewhere. A non-blocking one (Node
/// makes stdout pipes so) that is full is waited for with poll(2), checking
/// for an abort every second, so a slow reader slows the dump instead of
/// failing it.
fn write_fd(fd: i32, buf: &[u8]) -> io::Result<usize> {
    loop {
        // SAFETY: plain syscall on a descriptor the caller keeps open; `buf` is valid for its length.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => {}
            Some(libc::EAGAIN) => {
                if cancel::check().is_err() {
                    return Err(io::Error::other("aborted"));
                }
                let mut poll = libc::pollfd { fd, events: libc::POLLOUT, revents: 0 };
                // SAFETY: one valid pollfd. Its result only says when to try the write again.
                unsafe { libc::poll(&mut poll, 1, 1000) };
            }
            _ => return Err(err),
        }
    }
}
