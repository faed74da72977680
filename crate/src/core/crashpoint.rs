//! Fault injection for the crash-safety suite, as in lib/crashpoint.ts:
//! `POWDB_BACKUP_CRASH_AT=<point>:<n>` kills the process with SIGKILL the
//! n-th time it reaches `<point>`. Unset, it costs one comparison.
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::LazyLock;

static TARGET: LazyLock<Option<(String, u32)>> = LazyLock::new(|| {
    let spec = std::env::var("POWDB_BACKUP_CRASH_AT").ok()?;
    let (point, nth) = spec.split_once(':')?;
    Some((point.to_string(), nth.parse().ok()?))
});
static SEEN: AtomicU32 = AtomicU32::new(0);

pub fn hit(point: &str) {
    if let Some((target, nth)) = TARGET.as_ref() {
        if target == point && SEEN.fetch_add(1, Ordering::SeqCst) + 1 == *nth {
            // SAFETY: plain syscalls; the process ends here by design.
            unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
        }
    }
}
