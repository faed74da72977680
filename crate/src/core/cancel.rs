//! Cooperative cancellation: the operation running on this thread checks its
//! token between chunks, so an abort stops even a long file within a chunk's
//! time (milliseconds).
use super::error::{CoreError, CoreResult};
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub type Token = Arc<AtomicBool>;

thread_local! {
    static CURRENT: RefCell<Option<Token>> = const { RefCell::new(None) };
}

/// Runs `work` with `token` as this thread's cancellation token.
pub fn with<T>(token: Option<Token>, work: impl FnOnce() -> T) -> T {
    let previous = CURRENT.with(|c| c.replace(token));
    let result = work();
    CURRENT.with(|c| *c.borrow_mut() = previous);
    result
}

/// This thread's token, to hand on to helper threads.
pub fn current() -> Option<Token> {
    CURRENT.with(|c| c.borrow().clone())
}

/// Fails with ERR_ABORTED once this thread's token is set.
pub fn check() -> CoreResult<()> {
    let aborted = CURRENT.with(|c| c.borrow().as_ref().is_some_and(|t| t.load(Ordering::Relaxed)));
    if aborted {
        return Err(CoreError::new("ERR_ABORTED", "the operation was aborted"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_only_the_current_token() {
        assert!(check().is_ok());
        let token: Token = Arc::new(AtomicBool::new(false));
        with(Some(token.clone()), || {
            assert!(check().is_ok());
            token.store(true, Ordering::Relaxed);
            assert_eq!(check().unwrap_err().code, "ERR_ABORTED");
        });
        assert!(check().is_ok());
    }
}
