//! Fault injection for the crash-safety suite, as in lib/crashpoint.ts:
//! `POWDB_BACKUP_CRASH_AT=<point>:<n>` kills the process with SIGKILL the
//! n-th time it reaches `<point>`; `<point>:<n>:stop` stops it there with
//! SIGSTOP instead (every thread), for a test to act on the world while the
//! process is frozen at that point, then let it go on with SIGCONT. Unset, it
//! costs one comparison.
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::LazyLock;

struct Target {
    point: String,
    nth: u32,
    signal: libc::c_int,
}

static TARGET: LazyLock<Option<Target>> = LazyLock::new(|| parse(&std::env::var("POWDB_BACKUP_CRASH_AT").ok()?));
static SEEN: AtomicU32 = AtomicU32::new(0);

fn parse(spec: &str) -> Option<Target> {
    let (point, rest) = spec.split_once(':')?;
    let (nth, signal) = match rest.split_once(':') {
        Some((nth, "stop")) => (nth, libc::SIGSTOP),
        Some(_) => return None,
        None => (rest, libc::SIGKILL),
    };
    Some(Target { point: point.to_string(), nth: nth.parse().ok()?, signal })
}

pub fn hit(point: &str) {
    if let Some(target) = TARGET.as_ref() {
        if target.point == point && SEEN.fetch_add(1, Ordering::SeqCst) + 1 == target.nth {
            // To this thread (`raise`, not `kill(getpid())`): a signal sent to the
            // process may be taken by another thread, and this one would go on
            // for a moment past the point before SIGSTOP stops it.
            // SAFETY: plain syscall; with SIGKILL the process ends here by design.
            unsafe { libc::raise(target.signal) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_names_a_point_a_count_and_how() {
        let t = parse("online-frozen:2").unwrap();
        assert_eq!((t.point.as_str(), t.nth, t.signal), ("online-frozen", 2, libc::SIGKILL));
        let t = parse("online-frozen:1:stop").unwrap();
        assert_eq!((t.nth, t.signal), (1, libc::SIGSTOP));
        assert!(parse("online-frozen:1:term").is_none());
        assert!(parse("online-frozen").is_none());
        assert!(parse("online-frozen:x").is_none());
    }
}
