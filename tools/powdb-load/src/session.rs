//! One worker's long-lived connection: connects lazily, reconnects after a
//! lost one, and sorts every failure into what the server answered (the
//! statement did not run, or failed) and what it did not (the outcome is
//! unknown: the request may still run on the server after we gave up).
use crate::stop::Stop;
use powdb_backup::core::error::CoreError;
use powdb_backup::core::online::{Connection, Login, Reply};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How a statement ended.
pub enum Outcome {
    Done(Reply),
    /// The server answered with an error: the statement did not take effect.
    Refused {
        kind: &'static str,
        message: String,
    },
    /// No answer (timeout, lost connection): it may or may not have run. The
    /// connection is dropped, so a transaction open on it is rolled back.
    Lost,
    /// Not sent: there is no connection and connecting failed.
    Unsent,
}

/// Errors by kind, shared by all workers, with the first few messages.
#[derive(Default)]
pub struct Errors {
    by_kind: BTreeMap<&'static str, u64>,
    samples: Vec<String>,
}

pub type SharedErrors = Arc<Mutex<Errors>>;

const MAX_SAMPLES: usize = 20;

impl Errors {
    pub fn count(&mut self, kind: &'static str, message: &str) {
        *self.by_kind.entry(kind).or_default() += 1;
        let sample = format!("{kind}: {message}");
        if self.samples.len() < MAX_SAMPLES && !self.samples.contains(&sample) {
            self.samples.push(sample);
        }
    }

    pub fn to_json(&self) -> (serde_json::Value, serde_json::Value) {
        (serde_json::json!(self.by_kind), serde_json::json!(self.samples))
    }
}

/// The kind an error is counted under.
pub fn kind_of(e: &CoreError) -> &'static str {
    match e.code.as_str() {
        "ERR_SERVER_BUSY" => "gate_timeout",
        "ERR_SERVER_QUERY" if e.message.contains("unique constraint violation") => "duplicate_key",
        "ERR_SERVER_QUERY" => "query",
        "ERR_SERVER_TIMEOUT" => "timeout",
        "ERR_SERVER_UNREACHABLE" => "unreachable",
        "ERR_SERVER_AUTH" => "auth",
        "ERR_SERVER_PROTOCOL" => "protocol",
        _ => "other",
    }
}

/// True when the server itself answered with the error (see `Outcome`).
fn answered(e: &CoreError) -> bool {
    matches!(e.code.as_str(), "ERR_SERVER_BUSY" | "ERR_SERVER_QUERY")
}

pub struct Session {
    login: Login,
    conn: Option<Connection>,
    stop: Stop,
    errors: SharedErrors,
}

/// Pause before reconnecting, so a stopped server is not hammered.
const RECONNECT_PAUSE: Duration = Duration::from_millis(100);

impl Session {
    pub fn new(login: Login, stop: Stop, errors: SharedErrors) -> Session {
        Session { login, conn: None, stop, errors }
    }

    /// Connects unless connected; false (after a pause) when that failed.
    pub fn connect(&mut self) -> bool {
        if self.conn.is_some() {
            return true;
        }
        match Connection::connect(&self.login) {
            Ok(c) => self.conn = Some(c),
            Err(e) => {
                self.count(&e);
                self.stop.sleep(RECONNECT_PAUSE);
            }
        }
        self.conn.is_some()
    }

    /// Runs one statement. Lost connections are counted here; refusals are
    /// the caller's to count, as some are planned (a duplicate key).
    pub fn exec(&mut self, powql: &str) -> Outcome {
        if !self.connect() {
            return Outcome::Unsent;
        }
        let conn = self.conn.as_mut().expect("connected");
        match conn.query(powql) {
            Ok(r) => Outcome::Done(r),
            Err(e) if answered(&e) => Outcome::Refused { kind: kind_of(&e), message: e.message },
            Err(e) => {
                self.count(&e);
                self.conn = None;
                Outcome::Lost
            }
        }
    }

    /// Closes the connection: the server rolls back a transaction open on it.
    pub fn disconnect(&mut self) {
        self.conn = None;
    }

    pub fn count(&self, e: &CoreError) {
        self.errors.lock().unwrap().count(kind_of(e), &e.message);
    }

    pub fn count_refusal(&self, kind: &'static str, message: &str) {
        self.errors.lock().unwrap().count(kind, message);
    }

    pub fn stop(&self) -> &Stop {
        &self.stop
    }
}
