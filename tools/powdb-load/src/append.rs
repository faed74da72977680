//! The appenders, and the rule every statement that must take effect
//! exactly once follows (`once`).
//!
//! The rule: send the statement, unchanged, until it is known to have taken
//! effect. An error the server answered means it did not (an autocommit
//! statement that fails is rolled back), so it is sent again. No answer (a
//! timeout, a lost connection) leaves it unknown: it may have committed, or
//! may still be queued on the server's gate and commit after we gave up. So
//! it is sent again too, and every such statement carries a unique key: a
//! repeat of one that did commit is refused as a duplicate key, which is the
//! proof it committed. Reading the writer's last row back after a
//! reconnect would not do: it cannot see a request still queued on the
//! server, which commits later.
//!
//! A writer sends seq s+1 only once s is known to have committed, so its rows
//! commit in order and any consistent image holds exactly 1..k. The log keeps
//! the first attempt's send time (the earliest moment s could have
//! committed) and the moment commit became known (no earlier than the
//! commit), which is what the bounds lo <= k <= hi need.
use crate::prng::Prng;
use crate::record::{self, Entries, What};
use crate::session::{Outcome, Session};
use crate::unix_ms;
use std::time::Duration;

/// How `once` ended.
pub enum Once {
    /// Known to have taken effect at this unix ms.
    Acked(u64),
    /// The run stopped first.
    Stopped,
    /// Refused as already done although no earlier attempt could have done
    /// it: the run's premises are broken.
    Conflict(String),
}

/// Tells whether an error answer is the one a repeat of an already
/// committed statement gets.
pub type Repeat = fn(&str) -> bool;

/// Pause after an error answer before sending again.
const RETRY_PAUSE: Duration = Duration::from_millis(20);

/// Runs `powql` by the rule above.
pub fn once(session: &mut Session, powql: &str, repeat: Repeat) -> Once {
    let mut maybe_done = false;
    loop {
        if session.stop().is_set() {
            return Once::Stopped;
        }
        match session.exec(powql) {
            Outcome::Done(_) => return Once::Acked(unix_ms()),
            Outcome::Refused { message, .. } if repeat(&message) && maybe_done => return Once::Acked(unix_ms()),
            Outcome::Refused { message, .. } if repeat(&message) => return Once::Conflict(message),
            Outcome::Refused { kind, message } => {
                session.count_refusal(kind, &message);
                session.stop().sleep(RETRY_PAUSE);
            }
            Outcome::Lost => maybe_done = true,
            Outcome::Unsent => {}
        }
    }
}

pub fn duplicate_key(message: &str) -> bool {
    message.contains("unique constraint violation")
}

/// The unique key of writer `w`'s row `seq`.
pub fn key(writer: u64, seq: u64) -> u64 {
    writer * 1_000_000_000 + seq
}

/// A pad the checks can recompute from (writer, seq, length): the prefix
/// "w-seq-", then one letter chosen by seq. Detects a row whose value was
/// cut, torn or swapped with another's.
pub fn pad(writer: u64, seq: u64, len: u64) -> String {
    let mut s = format!("{writer}-{seq}-");
    let letter = char::from(b'a' + (seq % 26) as u8);
    while (s.len() as u64) < len {
        s.push(letter);
    }
    s
}

/// Inline values mostly; with `big`, one in ten over 4 KiB (a heap page), so
/// it goes to overflow pages.
fn pad_len(rng: &mut Prng, big: bool) -> u64 {
    if big && rng.chance(10) {
        rng.range(4500, 9000)
    } else {
        rng.range(24, 120)
    }
}

/// Appender `writer`: rows 1, 2, 3... into Log, autocommit, until stopped.
pub fn run(mut session: Session, writer: u64, mut rng: Prng, big: bool, rows: Entries) -> Option<String> {
    for seq in 1.. {
        if session.stop().is_set() {
            break;
        }
        let len = pad_len(&mut rng, big);
        let powql = format!(
            "insert Log {{ id := {}, writer := {writer}, seq := {seq}, pad := \"{}\" }}",
            key(writer, seq),
            pad(writer, seq, len)
        );
        let at = record::begin(&rows, seq, What::Pad(len));
        match once(&mut session, &powql, duplicate_key) {
            Once::Acked(t) => record::ack(&rows, at, t),
            Once::Stopped => break,
            Once::Conflict(m) => return Some(format!("writer {writer} seq {seq}: {m}")),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pad_has_its_length_and_names_its_row() {
        assert_eq!(pad(2, 27, 10), "2-27-bbbbb");
        assert_eq!(pad(1, 1, 9000).len(), 9000);
        // Shorter than the prefix: the prefix whole.
        assert_eq!(pad(12, 123456, 3), "12-123456-");
    }
}
