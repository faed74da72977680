//! The transfer workers: explicit transactions that move an amount between
//! two accounts, so the sum of all balances never changes, whatever commits.
//! A seeded share ends in `rollback` (on 0.29.0 a rollback checkpoints the
//! server: a full reopen, flush and WAL truncation), and a share runs a
//! failing statement (a duplicate-key insert) inside or outside a
//! transaction. A failed statement aborts the transaction it is in (the
//! server refuses all but `rollback` after it), so those end in `rollback`
//! after the debit. The insert carries a non-zero balance, so a failed
//! insert that left a row behind would break the sum as well as the row
//! count.
use crate::prng::Prng;
use crate::record::Transfers;
use crate::session::{Outcome, Session};
use powdb_backup::core::online::Reply;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Percentages of transfers that roll back, run a failing statement inside
/// the transaction (then roll back), or run one on its own.
const ROLLBACK_PCT: u64 = 15;
const FAIL_IN_TX_PCT: u64 = 3;
const FAIL_ALONE_PCT: u64 = 3;

enum Plan {
    Commit,
    Rollback,
    FailInTx,
}

pub fn run(mut session: Session, accounts: u64, mut rng: Prng, tally: Arc<Transfers>) {
    while !session.stop().is_set() {
        let roll = rng.below(100);
        let a = rng.range(1, accounts);
        let b = 1 + (a - 1 + rng.range(1, accounts - 1)) % accounts;
        let amount = rng.range(1, 100);
        if roll < FAIL_ALONE_PCT {
            if expect_duplicate(&mut session, a) {
                bump(&tally.failed_statement_outside_tx);
            }
            continue;
        }
        let plan = match roll - FAIL_ALONE_PCT {
            r if r < FAIL_IN_TX_PCT => Plan::FailInTx,
            r if r < FAIL_IN_TX_PCT + ROLLBACK_PCT => Plan::Rollback,
            _ => Plan::Commit,
        };
        transfer(&mut session, (a, b, amount), plan, &tally);
    }
}

fn bump(n: &AtomicU64) {
    n.fetch_add(1, Ordering::SeqCst);
}

/// One transaction. Any unexpected answer inside it ends it by dropping the
/// connection (the server rolls it back): never a guess at what it did.
fn transfer(session: &mut Session, (a, b, amount): (u64, u64, u64), plan: Plan, tally: &Transfers) {
    match session.exec("begin") {
        Outcome::Done(_) => {}
        // Nothing began (the gate stayed busy), or the connection is gone.
        Outcome::Refused { kind, message } => return session.count_refusal(kind, &message),
        Outcome::Lost | Outcome::Unsent => return,
    }
    let debit = format!("Acct filter .id = {a} update {{ bal := .bal - {amount} }}");
    let credit = format!("Acct filter .id = {b} update {{ bal := .bal + {amount} }}");
    let ok = update_one(session, &debit)
        && match plan {
            Plan::FailInTx => expect_duplicate(session, b),
            _ => update_one(session, &credit),
        };
    if !ok {
        session.disconnect();
        bump(&tally.aborted);
        return;
    }
    let end = if matches!(plan, Plan::Commit) { "commit" } else { "rollback" };
    match session.exec(end) {
        Outcome::Done(_) if end == "commit" => bump(&tally.committed),
        Outcome::Done(_) => {
            bump(&tally.rolled_back);
            if matches!(plan, Plan::FailInTx) {
                bump(&tally.failed_statement_in_tx);
            }
        }
        Outcome::Refused { kind, message } => {
            session.count_refusal(kind, &message);
            session.disconnect();
            bump(if end == "commit" { &tally.commit_refused } else { &tally.aborted });
        }
        Outcome::Lost => bump(if end == "commit" { &tally.commit_unknown } else { &tally.aborted }),
        Outcome::Unsent => bump(&tally.aborted),
    }
}

/// An update that must change exactly one row.
fn update_one(session: &mut Session, powql: &str) -> bool {
    match session.exec(powql) {
        Outcome::Done(Reply::Ok { affected: 1 }) => true,
        Outcome::Done(other) => {
            session.count_refusal("unexpected_reply", &format!("{powql}: {other:?}"));
            false
        }
        Outcome::Refused { kind, message } => {
            session.count_refusal(kind, &message);
            false
        }
        Outcome::Lost | Outcome::Unsent => false,
    }
}

/// Inserts an account that exists; true when the server refused it as a
/// duplicate key, as it must.
fn expect_duplicate(session: &mut Session, id: u64) -> bool {
    match session.exec(&format!("insert Acct {{ id := {id}, bal := 7 }}")) {
        Outcome::Refused { message, .. } if crate::append::duplicate_key(&message) => true,
        Outcome::Refused { kind, message } => {
            session.count_refusal(kind, &message);
            false
        }
        Outcome::Done(r) => {
            session.count_refusal("duplicate_accepted", &format!("insert of existing account {id}: {r:?}"));
            false
        }
        Outcome::Lost | Outcome::Unsent => false,
    }
}
