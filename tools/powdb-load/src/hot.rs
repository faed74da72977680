//! The hot-table workers (`run --hot TABLE`): autocommit updates of rows
//! picked at random across an existing table, so its heap is written all
//! over and every checkpoint flushes pages of it. For the benchmark, which
//! puts writers on the database's largest table; the rows they change are
//! not in the log (only how many updates were acknowledged), so the tests'
//! checks of a restored copy do not depend on them.
use crate::prng::Prng;
use crate::session::{Outcome, Session};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Pause after an error answer before the next update.
const RETRY_PAUSE: Duration = Duration::from_millis(20);

/// Updates `table`'s `column` (an int) on rows whose `key` (an indexed int)
/// is in `0..rows`, until stopped; counts the acknowledged updates.
pub fn run(mut session: Session, target: HotTarget, mut rng: Prng, acked: Arc<AtomicU64>) {
    let HotTarget { table, key, column, rows } = target;
    while !session.stop().is_set() {
        let id = rng.below(rows.max(1));
        let value = rng.below(1_000_000);
        let powql = format!("{table} filter .{key} = {id} update {{ {column} := {value} }}");
        match session.exec(&powql) {
            Outcome::Done(_) => {
                acked.fetch_add(1, Ordering::SeqCst);
            }
            Outcome::Refused { kind, message } => {
                session.count_refusal(kind, &message);
                session.stop().sleep(RETRY_PAUSE);
            }
            Outcome::Lost | Outcome::Unsent => {}
        }
    }
}

/// Which rows the hot-table workers update.
#[derive(Clone, Debug)]
pub struct HotTarget {
    pub table: String,
    pub key: String,
    pub column: String,
    pub rows: u64,
}
