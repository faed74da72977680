//! The DDL worker: tables D1, D2, ... each created, filled with a few rows,
//! given a column and an index, and dropped two tables later, with pauses
//! between the steps. Every step follows the once-rule (`append::once`):
//! `if not exists` / `if exists` forms, or an answer that says the step was
//! already done, make a repeat safe. Names are never reused, so the log
//! tells for every table what a consistent image may hold.
use crate::append::{duplicate_key, once, Once, Repeat};
use crate::prng::Prng;
use crate::record::{self, Entries, What};
use crate::session::Session;
use std::time::Duration;

fn column_exists(message: &str) -> bool {
    message.contains("already exists")
}

fn never(_: &str) -> bool {
    false
}

/// One step: runs it by the once-rule and logs it; false when the run
/// stops (or its premises broke, which `fatal` then says).
fn step(
    session: &mut Session,
    log: &Entries,
    (table, op, seq): (&str, &'static str, u64),
    powql: &str,
    repeat: Repeat,
    fatal: &mut Option<String>,
) -> bool {
    let at = record::begin(log, seq, What::Ddl { table: table.to_string(), op });
    match once(session, powql, repeat) {
        Once::Acked(t) => {
            record::ack(log, at, t);
            true
        }
        Once::Stopped => false,
        Once::Conflict(m) => {
            *fatal = Some(format!("{table} {op}: {m}"));
            false
        }
    }
}

/// A seeded pause between steps; false when the run stopped during it.
fn pause(session: &Session, rng: &mut Prng) -> bool {
    !session.stop().sleep(Duration::from_millis(rng.range(50, 300)))
}

/// Runs until stopped; returns what broke the run's premises, if anything.
pub fn run(mut session: Session, mut rng: Prng, log: Entries) -> Option<String> {
    let mut fatal = None;
    for n in 1u64.. {
        let t = format!("D{n}");
        let t = t.as_str();
        let created = step(
            &mut session,
            &log,
            (t, "create", 0),
            &format!("type {t} if not exists {{ required unique id: int, v: int }}"),
            never,
            &mut fatal,
        );
        if !created || !pause(&session, &mut rng) {
            break;
        }
        for id in 1..=rng.range(2, 6) {
            let insert = format!("insert {t} {{ id := {id}, v := {} }}", id * 10);
            if !step(&mut session, &log, (t, "insert", id), &insert, duplicate_key, &mut fatal) {
                return fatal;
            }
        }
        let old = format!("D{}", n.saturating_sub(2));
        let rest: [(&str, &'static str, String, Repeat); 3] = [
            (t, "add_column", format!("alter {t} add column note: str"), column_exists),
            (t, "add_index", format!("alter {t} add index if not exists .v"), never),
            (&old, "drop", format!("drop if exists {old}"), never),
        ];
        for (target, op, powql, repeat) in rest {
            if op == "drop" && n < 3 {
                continue;
            }
            if !pause(&session, &mut rng) || !step(&mut session, &log, (target, op, 0), &powql, repeat, &mut fatal) {
                return fatal;
            }
        }
    }
    fatal
}
