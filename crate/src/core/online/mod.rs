//! Talking to a live powdb-server 0.29.0 for an online backup: a blocking
//! wire client with a deadline on every connect, read and write
//! (`Connection`), the `SyncStatus` probe that reads the server's LSN, and
//! the write freeze (`Freeze`): an explicit transaction that holds the
//! server's admission gate, so no writer, DDL statement or checkpoint runs
//! until it commits, while reads go on.
//!
//! Failures are `CoreError`s with stable codes: `ERR_SERVER_UNREACHABLE`,
//! `ERR_SERVER_TIMEOUT`, `ERR_SERVER_AUTH`, `ERR_SERVER_ROLE`,
//! `ERR_SERVER_BUSY`, `ERR_SERVER_PROTOCOL`, `ERR_SERVER_QUERY` and
//! `ERR_FREEZE_LOST`.
mod capture;
mod heaps;
mod held;
pub mod pages;
mod report;
mod source;
pub mod stage;
pub mod walstate;
pub mod wire;

#[cfg(test)]
mod stage_tests;

use super::error::{CoreError, CoreResult};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};
use wire::{class, ServerFrame};

pub use stage::{stage_live, StageOptions, StageReport, StageTestHooks};
pub use wire::{ServerHello, SyncStatus};

/// The replica id the probe asks about. No cursor is ever registered under
/// it, so the server reports it inactive; only the LSN fields matter.
pub const PROBE_REPLICA_ID: &str = "powdb-backup-probe";

/// Where and as whom to connect, and how long to wait. Its `Debug` leaves
/// the password out.
#[derive(Clone)]
pub struct Login {
    pub host: String,
    pub port: u16,
    /// The login name; empty for a server with one shared password
    /// (`POWDB_PASSWORD`) or none.
    pub user: String,
    /// Empty sends no password.
    pub password: String,
    /// The database name the `Connect` frame carries; empty is the server's
    /// default (a server serves one database).
    pub database: String,
    /// Per address tried.
    pub connect_timeout: Duration,
    /// Per request: from sending it to the whole reply. Longer than the
    /// server's own 5 s wait for its gate (`POWDB_TX_WAIT_TIMEOUT_MS`), so a
    /// busy gate is reported as the server says it, not as a silence.
    pub io_timeout: Duration,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("database", &self.database)
            .field("connect_timeout", &self.connect_timeout)
            .field("io_timeout", &self.io_timeout)
            .finish_non_exhaustive()
    }
}

impl Login {
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
    pub const DEFAULT_IO_TIMEOUT: Duration = Duration::from_secs(10);

    pub fn new(host: impl Into<String>, port: u16, user: impl Into<String>, password: impl Into<String>) -> Self {
        Login {
            host: host.into(),
            port,
            user: user.into(),
            password: password.into(),
            database: String::new(),
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            io_timeout: Self::DEFAULT_IO_TIMEOUT,
        }
    }

    fn server(&self) -> String {
        format!("powdb-server at {}:{}", self.host, self.port)
    }

    fn who(&self) -> String {
        if self.user.is_empty() {
            "the shared password".to_string()
        } else {
            format!("login '{}'", self.user)
        }
    }
}

/// An authenticated connection to a powdb-server.
pub struct Connection {
    stream: TcpStream,
    login: Login,
    version: String,
    hello: Option<ServerHello>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").field("server", &self.login.server()).field("version", &self.version).finish()
    }
}

/// A reply to a query that succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Rows { columns: Vec<String>, rows: Vec<Vec<String>> },
    Scalar(String),
    Ok { affected: u64 },
    Message(String),
}

/// What a query answered: a reply, or the server's refusal with its class.
enum Answer {
    Reply(Reply),
    Refused { message: String, class: Option<u8> },
}

fn timed_out(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

impl Connection {
    /// Connects and authenticates. A refused or unroutable address is
    /// `ERR_SERVER_UNREACHABLE`; wrong credentials, an unknown database or
    /// the server's rate limit `ERR_SERVER_AUTH`; no answer in time
    /// `ERR_SERVER_TIMEOUT`.
    pub fn connect(login: &Login) -> CoreResult<Connection> {
        Self::connect_within(login, login.io_timeout)
    }

    /// `connect`, waiting up to `wait` (at least the login's `io_timeout`)
    /// for the answer to the handshake: a server in a checkpoint does not
    /// answer it either until the checkpoint ends.
    pub fn connect_within(login: &Login, wait: Duration) -> CoreResult<Connection> {
        let wait = wait.max(login.io_timeout);
        let stream = dial(login)?;
        let _ = stream.set_nodelay(true);
        let mut conn = Connection { stream, login: login.clone(), version: String::new(), hello: None };
        let hello = wire::ClientHello::ours();
        let connect = wire::encode_connect(&login.database, &login.password, &login.user, Some(&hello));
        let reply =
            conn.request_within(&connect, "the handshake", wait).map_err(|e| handshake_error(login, wait, e))?;
        match reply {
            ServerFrame::ConnectOk { version, hello } => {
                conn.version = version;
                conn.hello = hello;
                Ok(conn)
            }
            ServerFrame::Error { message, class } => Err(refused_at_connect(login, &message, class)),
            other => Err(unexpected(login, "the handshake", &other)),
        }
    }

    /// The server's version string (its crate version, e.g. `0.29.0`).
    pub fn server_version(&self) -> &str {
        &self.version
    }

    /// The negotiated hello: protocol and agreed features (None from a
    /// server older than 0.22, which negotiates nothing).
    pub fn server_hello(&self) -> Option<&ServerHello> {
        self.hello.as_ref()
    }

    /// Runs one PowQL statement. A refusal is `ERR_SERVER_QUERY` with the
    /// server's message (`ERR_SERVER_BUSY` when its gate wait ran out).
    pub fn query(&mut self, powql: &str) -> CoreResult<Reply> {
        match self.ask(powql)? {
            Answer::Reply(r) => Ok(r),
            Answer::Refused { message, class } => Err(self.refused(powql, &message, class)),
        }
    }

    /// The server's sync status for `replica_id`; its `remote_lsn` is the
    /// highest LSN the server has written. Needs a login with write
    /// permission (`ERR_SERVER_ROLE` otherwise). On a server with sync
    /// enabled, the server first checkpoints and archives what is not yet
    /// archived (a full checkpoint, with every writer held for it).
    pub fn sync_status(&mut self, replica_id: &str) -> CoreResult<SyncStatus> {
        let what = "the sync status request";
        let within = self.login.io_timeout;
        match self.request(&wire::encode_sync_status(replica_id), what).map_err(|e| self.lost(what, within, e))? {
            ServerFrame::SyncStatus(s) => Ok(s),
            ServerFrame::Error { message, class } => Err(if message.starts_with("permission denied") {
                CoreError::new(
                    "ERR_SERVER_ROLE",
                    format!(
                        "{} refused {}: {message}. The LSN probe (a sync status request) needs \
                         write permission: connect with a readwrite (or admin) login",
                        self.login.server(),
                        self.login.who()
                    ),
                )
            } else if class == Some(class::AUTH_FAILED) {
                CoreError::new(
                    "ERR_SERVER_AUTH",
                    format!(
                        "{} refused the sync status probe: {message}. Configure logins on the server \
                         (powdb-cli useradd) and connect with one",
                        self.login.server()
                    ),
                )
            } else {
                self.refused("SyncStatus", &message, class)
            }),
            other => Err(unexpected(&self.login, what, &other)),
        }
    }

    /// Starts a freeze: `begin`, an explicit transaction that, until it
    /// writes, holds the server's whole admission gate: writers, DDL, sync
    /// frames and checkpoints wait (and fail after the server's
    /// `POWDB_TX_WAIT_TIMEOUT_MS`), reads run beside it. A readonly login is
    /// `ERR_SERVER_ROLE`; a gate held by another transaction past the
    /// server's wait `ERR_SERVER_BUSY`.
    pub fn freeze(self) -> CoreResult<Freeze> {
        let wait = self.login.io_timeout;
        self.freeze_within(wait)
    }

    /// `freeze`, waiting up to `wait` (at least the login's `io_timeout`)
    /// for the answer to `begin`. A server that checkpoints answers nothing
    /// until it is done, not even with its gate timeout: every explicit
    /// `rollback` is a full checkpoint on 0.29 (reopen, replay, index
    /// rebuild), which takes seconds per GiB. Waiting in its queue holds no
    /// writer; giving up would not cancel the `begin`, and the server,
    /// granting it later on a closed connection, would roll it back: one
    /// more full checkpoint.
    pub fn freeze_within(mut self, wait: Duration) -> CoreResult<Freeze> {
        let answer = self.ask_within("begin", wait.max(self.login.io_timeout))?;
        match answer {
            Answer::Reply(_) => Ok(Freeze { conn: self, began: Instant::now() }),
            Answer::Refused { message, .. } if message.starts_with("permission denied") => Err(CoreError::new(
                "ERR_SERVER_ROLE",
                format!(
                    "{} refused to freeze writes for {}: {message}. The freeze is an explicit \
                     transaction (`begin`) that holds the server's write gate, so it needs write \
                     permission: connect with a readwrite (or admin) login",
                    self.login.server(),
                    self.login.who()
                ),
            )),
            // The server's query deadline (`--query-timeout`, 30 s) passed while `begin`
            // waited behind a checkpoint: it did not begin, so it is a busy gate too.
            // (A gate timeout says "gate" and is reported as one, by `refused`.)
            Answer::Refused { message, class } if class == Some(class::TIMEOUT) && !message.contains("gate") => {
                Err(CoreError::new(
                    "ERR_SERVER_BUSY",
                    format!(
                        "{} answered `begin`: {message}. It was busy (a checkpoint, another transaction); run \
                         again when it is quieter",
                        self.login.server()
                    ),
                ))
            }
            Answer::Refused { message, class } => Err(self.refused("begin", &message, class)),
        }
    }

    /// Sends `powql` and reads its answer.
    fn ask(&mut self, powql: &str) -> CoreResult<Answer> {
        let within = self.login.io_timeout;
        self.ask_within(powql, within)
    }

    /// `ask`, waiting up to `within` for the answer.
    fn ask_within(&mut self, powql: &str, within: Duration) -> CoreResult<Answer> {
        let what = "a query";
        let asked = self.request_within(&wire::encode_query(powql), what, within);
        match asked.map_err(|e| self.lost(what, within, e))? {
            ServerFrame::Rows { columns, rows } => Ok(Answer::Reply(Reply::Rows { columns, rows })),
            ServerFrame::Scalar(v) => Ok(Answer::Reply(Reply::Scalar(v))),
            ServerFrame::Ok { affected } => Ok(Answer::Reply(Reply::Ok { affected })),
            ServerFrame::Message(m) => Ok(Answer::Reply(Reply::Message(m))),
            ServerFrame::Error { message, class } => Ok(Answer::Refused { message, class }),
            other => Err(unexpected(&self.login, what, &other)),
        }
    }

    /// Writes one frame and reads one reply, all within `io_timeout`. The
    /// notice the server sends as it closes a connection (`CLOSING_NOTICES`)
    /// is no reply: it may have been sent long before this request (say,
    /// while this process was stopped), which the server never read.
    fn request(&mut self, frame: &[u8], what: &str) -> Result<ServerFrame, RequestError> {
        let within = self.login.io_timeout;
        self.request_within(frame, what, within)
    }

    /// Writes one frame and reads one reply, all within `within`.
    fn request_within(&mut self, frame: &[u8], what: &str, within: Duration) -> Result<ServerFrame, RequestError> {
        let deadline = Instant::now() + within;
        self.stream.set_write_timeout(Some(self.login.io_timeout)).map_err(RequestError::Io)?;
        self.stream.write_all(frame).map_err(RequestError::Io)?;
        let mut reader = DeadlineReader { stream: &self.stream, deadline };
        match wire::read_frame(&mut reader, wire::MAX_PAYLOAD) {
            Ok(Some((t, payload))) => match wire::decode(t, &payload) {
                Ok(ServerFrame::Error { message, .. }) if CLOSING_NOTICES.contains(&message.as_str()) => {
                    Err(RequestError::Closed(Some(message)))
                }
                Ok(frame) => Ok(frame),
                Err(e) => Err(RequestError::Malformed(format!("{what}: {e}"))),
            },
            Ok(None) => Err(RequestError::Closed(None)),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => Err(RequestError::Malformed(format!("{what}: {e}"))),
            Err(e) => Err(RequestError::Io(e)),
        }
    }

    /// The error for a request that got no reply.
    fn lost(&self, what: &str, within: Duration, e: RequestError) -> CoreError {
        let server = self.login.server();
        let ms = within.as_millis();
        match e {
            RequestError::Io(e) if timed_out(&e) => CoreError::new(
                "ERR_SERVER_TIMEOUT",
                format!("{server} did not answer {what} within {ms} ms; check the server (is it overloaded or stopped?) and run again, or allow more time"),
            ),
            RequestError::Io(e) => CoreError::new(
                "ERR_SERVER_UNREACHABLE",
                format!("lost the connection to {server} during {what}: {e}; check that the server is running and run again"),
            ),
            RequestError::Closed(notice) => CoreError::new(
                "ERR_SERVER_UNREACHABLE",
                format!(
                    "{server} closed the connection{} during {what}; check the server's log and run again",
                    said(&notice)
                ),
            ),
            RequestError::Malformed(m) => protocol_error(&self.login, &m),
        }
    }

    fn refused(&self, statement: &str, message: &str, class: Option<u8>) -> CoreError {
        let server = self.login.server();
        if class == Some(class::TIMEOUT) && message.contains("gate") {
            return CoreError::new(
                "ERR_SERVER_BUSY",
                format!("{server} answered `{statement}`: {message}. Another transaction holds the server's write gate; run again when it ends"),
            );
        }
        let statement: String = statement.chars().take(80).collect();
        CoreError::new("ERR_SERVER_QUERY", format!("{server} refused `{statement}`: {message}"))
    }
}

/// What the probe learns from a server.
#[derive(Debug, Clone)]
pub struct Probe {
    pub server_version: String,
    pub hello: Option<ServerHello>,
    pub status: SyncStatus,
}

/// Connects and asks for the sync status under `PROBE_REPLICA_ID`: the
/// server's version and negotiated protocol, and its highest LSN. See
/// `Connection::sync_status` for what this costs a sync-enabled server.
pub fn probe(login: &Login) -> CoreResult<Probe> {
    let mut conn = Connection::connect(login)?;
    let status = conn.sync_status(PROBE_REPLICA_ID)?;
    Ok(Probe { server_version: conn.version, hello: conn.hello, status })
}

/// A held freeze: the connection whose explicit transaction holds the
/// server's gate.
///
/// There is deliberately no `rollback` (only `rollback_for_test`, for the
/// negative control that shows why) and no `Drop` impl: ending a freeze
/// with `rollback` makes the server checkpoint and reuse the transaction's
/// LSN, so a freeze ends with `commit`, or, on every failure path, by
/// dropping it: the socket closes and the server rolls the transaction back
/// on the disconnect, as it does for any client that goes away.
#[derive(Debug)]
pub struct Freeze {
    conn: Connection,
    began: Instant,
}

impl Freeze {
    /// How long the freeze has held so far (since `begin` was answered).
    pub fn held(&self) -> Duration {
        self.began.elapsed()
    }

    /// Ends the freeze with `commit` and returns how long it held (from
    /// `begin` answered to `commit` answered). Any failure means the server
    /// already rolled the transaction back, or may have: its lifetime reaper
    /// (`POWDB_TX_MAX_LIFETIME_MS`), its idle timeout, a restart or a lost
    /// connection. That is `ERR_FREEZE_LOST`, and whatever was copied under
    /// the freeze must be discarded.
    pub fn commit(mut self) -> CoreResult<Duration> {
        let server = self.conn.login.server();
        let lost = |why: String| {
            CoreError::new(
                "ERR_FREEZE_LOST",
                format!(
                    "the write freeze on {server} ended before its commit ({why}): writers may have run \
                     during it, so what was copied under it is not consistent. Discard it and run again \
                     (raise POWDB_TX_MAX_LIFETIME_MS on the server if the copy needs longer)"
                ),
            )
        };
        match self.conn.request(&wire::encode_query("commit"), "commit") {
            Ok(ServerFrame::Error { message, .. }) => Err(lost(format!("the server answered: {message}"))),
            Ok(
                ServerFrame::Rows { .. } | ServerFrame::Scalar(_) | ServerFrame::Ok { .. } | ServerFrame::Message(_),
            ) => Ok(self.began.elapsed()),
            Ok(other) => Err(lost(format!("unexpected reply {other:?}"))),
            Err(RequestError::Closed(notice)) => {
                Err(lost(format!("the server closed the connection{}", said(&notice))))
            }
            Err(RequestError::Io(e)) if timed_out(&e) => {
                Err(lost(format!("no answer to commit within {} ms", self.conn.login.io_timeout.as_millis())))
            }
            Err(RequestError::Io(e)) => Err(lost(format!("connection lost: {e}"))),
            Err(RequestError::Malformed(m)) => Err(lost(format!("malformed reply: {m}"))),
        }
    }

    /// Test only: ends the freeze with `rollback`, which a backup never does
    /// (see the type's comment); how long it held, or why the server refused.
    #[doc(hidden)]
    pub fn rollback_for_test(mut self) -> CoreResult<Duration> {
        self.conn.query("rollback")?;
        Ok(self.began.elapsed())
    }
}

/// Why a request got no decoded reply.
enum RequestError {
    Io(io::Error),
    /// The server closed the connection between frames, with its closing
    /// notice if it sent one.
    Closed(Option<String>),
    Malformed(String),
}

/// The error messages powdb-server 0.29 sends on a connection just before it
/// closes it, unasked (`handler/mod.rs`: a shutdown, the idle timeout).
const CLOSING_NOTICES: [&str; 2] = ["server shutting down", "idle timeout"];

fn said(notice: &Option<String>) -> String {
    notice.as_ref().map_or(String::new(), |m| format!(" (it said: {m})"))
}

/// Reads from the stream, failing with `TimedOut` once `deadline` passes.
struct DeadlineReader<'a> {
    stream: &'a TcpStream,
    deadline: Instant,
}

impl Read for DeadlineReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "deadline passed"));
        }
        self.stream.set_read_timeout(Some(left))?;
        let mut s = self.stream;
        s.read(buf)
    }
}

/// Opens a TCP connection to the first address of `host` that answers.
fn dial(login: &Login) -> CoreResult<TcpStream> {
    let server = login.server();
    let unreachable = |why: String| {
        CoreError::new(
            "ERR_SERVER_UNREACHABLE",
            format!("cannot reach {server}: {why}; check that the server is running and its host and port"),
        )
    };
    let addrs: Vec<SocketAddr> = (login.host.as_str(), login.port)
        .to_socket_addrs()
        .map_err(|e| unreachable(format!("cannot resolve the host ({e})")))?
        .collect();
    let mut last = None;
    for addr in &addrs {
        match TcpStream::connect_timeout(addr, login.connect_timeout) {
            Ok(s) => return Ok(s),
            Err(e) if timed_out(&e) => {
                last = Some(format!("no answer within {} ms", login.connect_timeout.as_millis()))
            }
            Err(e) => last = Some(e.to_string()),
        }
    }
    Err(unreachable(last.unwrap_or_else(|| "the host has no address".into())))
}

fn handshake_error(login: &Login, wait: Duration, e: RequestError) -> CoreError {
    let server = login.server();
    match e {
        RequestError::Io(e) if timed_out(&e) => CoreError::new(
            "ERR_SERVER_TIMEOUT",
            format!(
                "{server} accepted the connection but did not answer the handshake within {} ms; \
                 check that the server is a running powdb-server (not stopped or overloaded) and run again",
                wait.as_millis()
            ),
        ),
        RequestError::Io(e) => CoreError::new(
            "ERR_SERVER_UNREACHABLE",
            format!("lost the connection to {server} during the handshake: {e}; check that it is a powdb-server and run again"),
        ),
        RequestError::Closed(notice) => CoreError::new(
            "ERR_SERVER_UNREACHABLE",
            format!(
                "{server} closed the connection{} without answering the handshake; check that it is a \
                 powdb-server without --require-tls, with free connections, and read its log",
                said(&notice)
            ),
        ),
        RequestError::Malformed(m) => protocol_error(login, &m),
    }
}

fn refused_at_connect(login: &Login, message: &str, class: Option<u8>) -> CoreError {
    let server = login.server();
    match class {
        Some(class::PROTOCOL_VERSION) => protocol_error(login, message),
        Some(class::RATE_LIMITED) => CoreError::new(
            "ERR_SERVER_AUTH",
            format!("{server} refused {}: {message} (too many failed logins from here); wait, then run again with the right password", login.who()),
        ),
        _ => CoreError::new(
            "ERR_SERVER_AUTH",
            format!(
                "{server} refused {}: {message}; check the user name and password (and the database name, if given)",
                login.who()
            ),
        ),
    }
}

fn protocol_error(login: &Login, what: &str) -> CoreError {
    CoreError::new(
        "ERR_SERVER_PROTOCOL",
        format!(
            "{} answered something this client does not understand ({what}); check that the address is a powdb-server",
            login.server()
        ),
    )
}

fn unexpected(login: &Login, what: &str, frame: &ServerFrame) -> CoreError {
    let kind = match frame {
        ServerFrame::ConnectOk { .. } => "ConnectOk",
        ServerFrame::Rows { .. } => "rows",
        ServerFrame::Scalar(_) => "a scalar",
        ServerFrame::Ok { .. } => "ok",
        ServerFrame::Message(_) => "a message",
        ServerFrame::Error { .. } => "an error",
        ServerFrame::SyncStatus(_) => "a sync status",
        ServerFrame::Pong => "pong",
    };
    protocol_error(login, &format!("{kind} in reply to {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn login(port: u16) -> Login {
        let mut l = Login::new("127.0.0.1", port, "u", "p");
        l.connect_timeout = Duration::from_millis(500);
        l.io_timeout = Duration::from_millis(300);
        l
    }

    #[test]
    fn a_login_debug_leaves_the_password_out() {
        let shown = format!("{:?}", Login::new("h", 1, "u", "secret-pw"));
        assert!(shown.contains("\"u\"") && !shown.contains("secret-pw"), "{shown}");
    }

    #[test]
    fn a_closed_port_is_unreachable_at_once() {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let started = Instant::now();
        let e = Connection::connect(&login(port)).unwrap_err();
        assert_eq!(e.code, "ERR_SERVER_UNREACHABLE", "{e}");
        assert!(started.elapsed() < Duration::from_millis(500), "{:?}", started.elapsed());
    }

    #[test]
    fn an_unknown_host_is_unreachable() {
        let mut l = login(1);
        l.host = "no-such-host.invalid".into();
        assert_eq!(Connection::connect(&l).unwrap_err().code, "ERR_SERVER_UNREACHABLE");
    }

    // What a server that shut down (or timed a connection out) leaves in the
    // socket: its closing notice, then the end. A request sent afterwards
    // reads the notice first; it is no answer to that request.
    #[test]
    fn a_closing_notice_is_a_closed_connection_not_an_answer() {
        for notice in CLOSING_NOTICES {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let port = listener.local_addr().unwrap().port();
            let server = std::thread::spawn(move || {
                let (mut s, _) = listener.accept().unwrap();
                wire::read_frame(&mut s, wire::MAX_PAYLOAD).unwrap();
                let mut ok = 6u32.to_le_bytes().to_vec();
                ok.extend_from_slice(b"0.29.0");
                s.write_all(&wire::frame(wire::MSG_CONNECT_OK, &ok)).unwrap();
                let mut err = (notice.len() as u32).to_le_bytes().to_vec();
                err.extend_from_slice(notice.as_bytes());
                err.push(class::TIMEOUT);
                s.write_all(&wire::frame(wire::MSG_ERROR, &err)).unwrap();
                s
            });
            let mut conn = Connection::connect(&login(port)).unwrap();
            let _held = server.join().unwrap();
            let e = conn.query("begin").unwrap_err();
            assert_eq!(e.code, "ERR_SERVER_UNREACHABLE", "{e}");
            assert!(e.message.contains(&format!("(it said: {notice})")), "{e}");
        }
    }

    // A listener nobody accepts from: the kernel completes the TCP handshake
    // and no byte ever comes back. Only the deadline ends the wait.
    #[test]
    fn a_silent_peer_times_out_at_the_deadline() {
        let silent = TcpListener::bind("127.0.0.1:0").unwrap();
        let started = Instant::now();
        let e = Connection::connect(&login(silent.local_addr().unwrap().port())).unwrap_err();
        assert_eq!(e.code, "ERR_SERVER_TIMEOUT", "{e}");
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(300) && took < Duration::from_secs(2), "{took:?}");
    }
}
