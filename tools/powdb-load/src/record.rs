//! What the workers did, as they do it (shared with the thread that writes
//! the log), and the log itself: one JSON document written when the run
//! stops. A statement still in flight then shows `acked: null`, which is
//! what the checks need: it may or may not have taken effect.
use crate::session::SharedErrors;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A statement that takes effect exactly once (an append, a DDL step).
#[derive(Clone)]
pub struct Entry {
    /// The row's sequence number (for DDL steps: the step's index).
    pub seq: u64,
    /// Unix ms just before its first attempt was sent.
    pub sent: u64,
    /// Unix ms when it was known to have taken effect; None: not known.
    pub acked: Option<u64>,
    /// The pad's length in characters (appends), or the DDL step's name.
    pub what: What,
}

#[derive(Clone)]
pub enum What {
    Pad(u64),
    Ddl { table: String, op: &'static str },
}

pub type Entries = Arc<Mutex<Vec<Entry>>>;

/// Pushes a new entry stamped now and returns its index.
pub fn begin(entries: &Entries, seq: u64, what: What) -> usize {
    let mut e = entries.lock().unwrap();
    e.push(Entry { seq, sent: crate::unix_ms(), acked: None, what });
    e.len() - 1
}

pub fn ack(entries: &Entries, index: usize, at: u64) {
    entries.lock().unwrap()[index].acked = Some(at);
}

/// The transfer workers' tallies.
#[derive(Default)]
pub struct Transfers {
    pub committed: AtomicU64,
    pub rolled_back: AtomicU64,
    /// Rolled-back transactions in which a duplicate-key insert failed.
    pub failed_statement_in_tx: AtomicU64,
    pub failed_statement_outside_tx: AtomicU64,
    /// Ended by us dropping the connection (the server rolls back).
    pub aborted: AtomicU64,
    /// The commit got an error answer: rolled back.
    pub commit_refused: AtomicU64,
    /// The commit got no answer: committed or not.
    pub commit_unknown: AtomicU64,
}

impl Transfers {
    fn to_json(&self) -> Value {
        let g = |a: &AtomicU64| a.load(Ordering::SeqCst);
        json!({
            "committed": g(&self.committed),
            "rolled_back": g(&self.rolled_back),
            "failed_statement_in_tx": g(&self.failed_statement_in_tx),
            "failed_statement_outside_tx": g(&self.failed_statement_outside_tx),
            "aborted": g(&self.aborted),
            "commit_refused": g(&self.commit_refused),
            "commit_unknown": g(&self.commit_unknown),
        })
    }
}

/// Everything the log is made of.
pub struct Run {
    pub seed: u64,
    pub started: u64,
    pub config: Value,
    pub accounts: u64,
    pub total: i64,
    pub writers: Vec<Entries>,
    pub transfers: Arc<Transfers>,
    pub ddl: Entries,
    /// Updates of the hot table (`run --hot`) acknowledged.
    pub hot_updates: u64,
    pub errors: SharedErrors,
    /// Set when a worker met something that breaks the run's premises.
    pub fatal: Arc<Mutex<Option<String>>>,
}

fn stamp(e: &Entry) -> Value {
    json!([e.seq, e.sent, e.acked])
}

impl Run {
    fn to_json(&self, stopped: u64, reason: &str) -> Value {
        let writers: Vec<Value> = (self.writers.iter().enumerate())
            .map(|(i, w)| {
                let rows: Vec<Value> = (w.lock().unwrap().iter())
                    .map(|e| match e.what {
                        What::Pad(len) => json!([e.seq, e.sent, e.acked, len]),
                        What::Ddl { .. } => stamp(e),
                    })
                    .collect();
                json!({ "writer": i + 1, "rows": rows })
            })
            .collect();
        // DDL steps in order; the rows of the tables they fill are steps too.
        let mut ddl_ops = Vec::new();
        let mut ddl_rows: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for e in self.ddl.lock().unwrap().iter() {
            if let What::Ddl { table, op } = &e.what {
                if *op == "insert" {
                    ddl_rows.entry(table.clone()).or_default().push(stamp(e));
                } else {
                    ddl_ops.push(json!({ "table": table, "op": op, "sent": e.sent, "acked": e.acked }));
                }
            }
        }
        let (errors, samples) = self.errors.lock().unwrap().to_json();
        json!({
            "format": "powdb-load-run/1",
            "seed": self.seed,
            "started_unix_ms": self.started,
            "stopped_unix_ms": stopped,
            "stop_reason": reason,
            "config": self.config,
            "accounts": self.accounts,
            "total": self.total,
            "writers": writers,
            "transfers": self.transfers.to_json(),
            "ddl": { "ops": ddl_ops, "rows": ddl_rows },
            "hot_updates": self.hot_updates,
            "errors": errors,
            "error_samples": samples,
            "fatal": *self.fatal.lock().unwrap(),
        })
    }

    /// Writes the log whole (temporary file, then rename), so a reader
    /// never sees half of it.
    pub fn write(&self, path: &Path, reason: &str) -> std::io::Result<()> {
        let doc = self.to_json(crate::unix_ms(), reason);
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec(&doc).map_err(std::io::Error::other)?)?;
        std::fs::rename(&tmp, path)
    }
}
