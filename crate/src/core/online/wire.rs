//! The framing of powdb-server 0.29.0's wire protocol, as far as a backup
//! client needs it: `Connect` (with the v0.22+ hello block), `Query`,
//! `SyncStatus`, and the server's replies to them. The layout follows
//! `powdb-server-0.29.0/src/protocol.rs` field for field; the handshake bytes
//! are checked against upstream's own conformance vectors
//! (`crate/tests/wire_vectors/`).
//!
//! Every frame is `[type u8][flags u8][payload_len u32 LE][payload]`; a string
//! is a `u32` LE length and UTF-8 bytes. Decoding never panics and never
//! allocates more than the payload it was given.
use std::io::{self, Read};

pub const MSG_CONNECT: u8 = 0x01;
pub const MSG_CONNECT_OK: u8 = 0x02;
pub const MSG_QUERY: u8 = 0x03;
pub const MSG_RESULT_ROWS: u8 = 0x07;
pub const MSG_RESULT_SCALAR: u8 = 0x08;
pub const MSG_RESULT_OK: u8 = 0x09;
pub const MSG_ERROR: u8 = 0x0A;
pub const MSG_RESULT_MSG: u8 = 0x0B;
pub const MSG_PONG: u8 = 0x12;
pub const MSG_SYNC_STATUS: u8 = 0x20;
pub const MSG_SYNC_STATUS_RESULT: u8 = 0x23;

/// The largest payload the server sends or accepts (64 MiB); a reply
/// announcing more is refused before anything is allocated.
pub const MAX_PAYLOAD: usize = 64 << 20;

/// Opens a hello block (wire bytes `31 48 57 50`).
const HELLO_MAGIC: u32 = 0x5057_4831;
/// At most this many feature names in a hello, as the server caps them.
const MAX_HELLO_FEATURES: usize = 64;

/// Protocol v1 (no hello) and v2 (hello block): the range this client speaks.
pub const PROTOCOL_MIN: u16 = 1;
pub const PROTOCOL_MAX: u16 = 2;

/// The server's error classes this client branches on (`ErrorClass` in
/// protocol.rs; the trailing byte of an Error frame).
pub mod class {
    pub const TIMEOUT: u8 = 3;
    pub const READONLY_REFUSED: u8 = 5;
    pub const AUTH_FAILED: u8 = 6;
    pub const RATE_LIMITED: u8 = 7;
    pub const PROTOCOL_VERSION: u8 = 10;
}

/// What a client states in the hello block of its `Connect`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientHello {
    pub min_protocol: u16,
    pub max_protocol: u16,
    /// The newest catalog format the client reads; 0 states none.
    pub catalog_version: u16,
    pub features: Vec<String>,
}

impl ClientHello {
    /// This client's hello: protocols 1 and 2, no catalog ceiling (it reads
    /// no catalog over the wire), and the two features it understands.
    pub fn ours() -> Self {
        ClientHello {
            min_protocol: PROTOCOL_MIN,
            max_protocol: PROTOCOL_MAX,
            catalog_version: 0,
            features: vec!["error-class".into(), "sync".into()],
        }
    }
}

/// What the server answers in the hello block of its `ConnectOk`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerHello {
    /// The version both sides use from now on.
    pub protocol: u16,
    pub min_protocol: u16,
    pub max_protocol: u16,
    pub catalog_version: u16,
    /// The agreed features (the intersection of both sides').
    pub features: Vec<String>,
}

/// The server's status for one replica id (`WireSyncStatus`). With sync off
/// only `remote_lsn` (the catalog's highest LSN) says anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncStatus {
    pub replica_id: String,
    pub active: bool,
    pub last_applied_lsn: Option<u64>,
    pub remote_lsn: u64,
    pub servable_lsn: Option<u64>,
    pub unarchived_lsn: Option<u64>,
    pub lag_lsn: Option<u64>,
    pub lag_bytes: Option<u64>,
    pub lag_ms: Option<u64>,
    pub stale: bool,
    /// 0 none, 1 pull, 2 await archive, 3 rebootstrap.
    pub repair_action: u8,
    pub last_sync_error: Option<String>,
}

/// A frame the server sends, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerFrame {
    ConnectOk {
        version: String,
        hello: Option<ServerHello>,
    },
    Rows {
        columns: Vec<String>,
        rows: Vec<Vec<String>>,
    },
    Scalar(String),
    Ok {
        affected: u64,
    },
    Message(String),
    /// `class` is the trailing class byte, absent from pre-0.22 servers.
    Error {
        message: String,
        class: Option<u8>,
    },
    SyncStatus(SyncStatus),
    Pong,
}

/// One whole frame: the header and `payload`.
pub fn frame(msg_type: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(6 + payload.len());
    out.push(msg_type);
    out.push(0); // flags
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_features(out: &mut Vec<u8>, features: &[String]) {
    let count = features.len().min(MAX_HELLO_FEATURES);
    out.extend_from_slice(&(count as u16).to_le_bytes());
    for f in &features[..count] {
        put_str(out, f);
    }
}

/// A `Connect` frame. An empty password or user name is sent as "none" (a
/// zero length), which is how the server reads them. With a hello the user
/// field is always written (the hello follows it); without one it is left
/// out when absent, as a legacy client writes it.
pub fn encode_connect(db_name: &str, password: &str, user: &str, hello: Option<&ClientHello>) -> Vec<u8> {
    let mut p = Vec::new();
    put_str(&mut p, db_name);
    put_str(&mut p, password);
    match hello {
        Some(hello) => {
            put_str(&mut p, user);
            p.extend_from_slice(&HELLO_MAGIC.to_le_bytes());
            p.extend_from_slice(&hello.min_protocol.to_le_bytes());
            p.extend_from_slice(&hello.max_protocol.to_le_bytes());
            p.extend_from_slice(&hello.catalog_version.to_le_bytes());
            put_features(&mut p, &hello.features);
        }
        None if !user.is_empty() => put_str(&mut p, user),
        None => {}
    }
    frame(MSG_CONNECT, &p)
}

/// A PowQL `Query` frame.
pub fn encode_query(powql: &str) -> Vec<u8> {
    let mut p = Vec::new();
    put_str(&mut p, powql);
    frame(MSG_QUERY, &p)
}

/// A `SyncStatus` frame for `replica_id`.
pub fn encode_sync_status(replica_id: &str) -> Vec<u8> {
    let mut p = Vec::new();
    put_str(&mut p, replica_id);
    frame(MSG_SYNC_STATUS, &p)
}

/// Reads one frame's type and payload. `Ok(None)` at a clean end of stream
/// (the server closed between frames); a payload over `max_payload` is
/// refused as `InvalidData` before it is read.
pub fn read_frame(r: &mut impl Read, max_payload: usize) -> io::Result<Option<(u8, Vec<u8>)>> {
    let mut header = [0u8; 6];
    let mut got = 0;
    while got < header.len() {
        match r.read(&mut header[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the server closed mid-frame")),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let len = u32::from_le_bytes([header[2], header[3], header[4], header[5]]) as usize;
    if len > max_payload {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame 0x{:02x} announces {len} bytes (at most {max_payload})", header[0]),
        ));
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload)?;
    Ok(Some((header[0], payload)))
}

/// A cursor over a payload whose reads fail (never panic) past its end.
struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len()).ok_or(format!("truncated {what}"))?;
        let bytes = &self.data[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }
    fn u8(&mut self, what: &str) -> Result<u8, String> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &str) -> Result<u16, String> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self, what: &str) -> Result<u32, String> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self, what: &str) -> Result<u64, String> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    fn bool(&mut self, what: &str) -> Result<bool, String> {
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(format!("invalid boolean {other} for {what}")),
        }
    }
    /// A string, decoded lossily as the server decodes its own.
    fn str(&mut self, what: &str) -> Result<String, String> {
        let len = self.u32(what)? as usize;
        Ok(String::from_utf8_lossy(self.take(len, what)?).into_owned())
    }
    fn opt_u64(&mut self, what: &str) -> Result<Option<u64>, String> {
        Ok(if self.bool(what)? { Some(self.u64(what)?) } else { None })
    }
    fn rest(&self) -> usize {
        self.data.len() - self.pos
    }
}

fn decode_server_hello(c: &mut Cursor) -> Result<ServerHello, String> {
    if c.u32("hello magic")? != HELLO_MAGIC {
        return Err("malformed CONNECT_OK hello block".into());
    }
    let protocol = c.u16("negotiated protocol")?;
    let min_protocol = c.u16("minimum protocol")?;
    let max_protocol = c.u16("maximum protocol")?;
    let catalog_version = c.u16("catalog version")?;
    let count = c.u16("feature count")? as usize;
    if count > MAX_HELLO_FEATURES {
        return Err(format!("{count} features in the hello (at most {MAX_HELLO_FEATURES})"));
    }
    let mut features = Vec::with_capacity(count);
    for _ in 0..count {
        features.push(c.str("feature name")?);
    }
    // Bytes after the feature list are a later release's extension: skipped.
    Ok(ServerHello { protocol, min_protocol, max_protocol, catalog_version, features })
}

fn decode_sync_status(c: &mut Cursor) -> Result<SyncStatus, String> {
    Ok(SyncStatus {
        replica_id: c.str("replica id")?,
        active: c.bool("active")?,
        last_applied_lsn: c.opt_u64("last applied LSN")?,
        remote_lsn: c.u64("remote LSN")?,
        servable_lsn: c.opt_u64("servable LSN")?,
        unarchived_lsn: c.opt_u64("unarchived LSN")?,
        lag_lsn: c.opt_u64("lag LSN")?,
        lag_bytes: c.opt_u64("lag bytes")?,
        lag_ms: c.opt_u64("lag milliseconds")?,
        stale: c.bool("stale")?,
        repair_action: match c.u8("repair action")? {
            a @ 0..=3 => a,
            other => return Err(format!("unknown sync repair action {other}")),
        },
        last_sync_error: if c.bool("last error")? { Some(c.str("last error")?) } else { None },
    })
}

/// Decodes a frame the server sent. A type this client never asks for (the
/// native typed results, sync pull and ack) is an error naming its byte.
pub fn decode(msg_type: u8, payload: &[u8]) -> Result<ServerFrame, String> {
    let mut c = Cursor { data: payload, pos: 0 };
    match msg_type {
        MSG_CONNECT_OK => {
            let version = c.str("server version")?;
            let hello = if c.rest() > 0 { Some(decode_server_hello(&mut c)?) } else { None };
            Ok(ServerFrame::ConnectOk { version, hello })
        }
        MSG_RESULT_ROWS => {
            let ncols = c.u16("column count")? as usize;
            // Each string costs at least its 4-byte length: the payload bounds the counts.
            if ncols > c.rest() / 4 {
                return Err("column count exceeds the payload".into());
            }
            let mut columns = Vec::with_capacity(ncols);
            for _ in 0..ncols {
                columns.push(c.str("column name")?);
            }
            let nrows = c.u32("row count")? as usize;
            if ncols == 0 && nrows > 0 || ncols > 0 && nrows > c.rest() / (4 * ncols) {
                return Err("row count exceeds the payload".into());
            }
            let mut rows = Vec::with_capacity(nrows);
            for _ in 0..nrows {
                let mut row = Vec::with_capacity(ncols);
                for _ in 0..ncols {
                    row.push(c.str("value")?);
                }
                rows.push(row);
            }
            Ok(ServerFrame::Rows { columns, rows })
        }
        MSG_RESULT_SCALAR => Ok(ServerFrame::Scalar(c.str("scalar")?)),
        MSG_RESULT_OK => Ok(ServerFrame::Ok { affected: c.u64("affected count")? }),
        MSG_RESULT_MSG => Ok(ServerFrame::Message(c.str("message")?)),
        MSG_ERROR => {
            let message = c.str("error message")?;
            // Exactly one trailing byte is the class; anything else is not.
            let class = if c.rest() == 1 { Some(c.u8("error class")?) } else { None };
            Ok(ServerFrame::Error { message, class })
        }
        MSG_SYNC_STATUS_RESULT => Ok(ServerFrame::SyncStatus(decode_sync_status(&mut c)?)),
        MSG_PONG => Ok(ServerFrame::Pong),
        other => Err(format!("unexpected frame type 0x{other:02x}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// powdb-server 0.29.0's `tests/wire_vectors/handshake.txt`, verbatim:
    /// bytes written by the server's own encoder, not by this module.
    const VECTORS: &str = include_str!("../../../tests/wire_vectors/powdb-server-0.29.0-handshake.txt");

    fn vector(kind: &str, name: &str) -> Vec<u8> {
        let hex = VECTORS
            .lines()
            .find_map(|l| {
                let mut parts = l.split_whitespace();
                (parts.next() == Some(kind) && parts.next() == Some(name)).then(|| parts.next().unwrap_or(""))
            })
            .unwrap_or_else(|| panic!("no {kind} {name} in the vectors"));
        (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect()
    }

    fn split(bytes: &[u8]) -> (u8, Vec<u8>) {
        read_frame(&mut &bytes[..], MAX_PAYLOAD).unwrap().unwrap()
    }

    #[test]
    fn connect_frames_match_the_servers_vectors_byte_for_byte() {
        assert_eq!(encode_connect("mydb", "pw", "", None), vector("frame", "connect_legacy_password_only"));
        assert_eq!(
            encode_connect("mydb", "pw", "alice", None),
            vector("frame", "connect_legacy_password_and_username")
        );
        let hello = |features: &[&str]| ClientHello {
            min_protocol: 1,
            max_protocol: 2,
            catalog_version: 7,
            features: features.iter().map(|f| f.to_string()).collect(),
        };
        assert_eq!(encode_connect("mydb", "", "", Some(&hello(&[]))), vector("frame", "connect_hello_no_credentials"));
        assert_eq!(
            encode_connect("mydb", "pw", "alice", Some(&hello(&["params", "sql"]))),
            vector("frame", "connect_hello_full")
        );
    }

    #[test]
    fn server_handshake_vectors_decode_to_their_fields() {
        let (t, p) = split(&vector("frame", "connect_ok_legacy"));
        assert_eq!(decode(t, &p).unwrap(), ServerFrame::ConnectOk { version: "0.21.0".into(), hello: None });
        let (t, p) = split(&vector("frame", "connect_ok_hello"));
        assert_eq!(
            decode(t, &p).unwrap(),
            ServerFrame::ConnectOk {
                version: "0.22.0".into(),
                hello: Some(ServerHello {
                    protocol: 2,
                    min_protocol: 1,
                    max_protocol: 2,
                    catalog_version: 7,
                    features: vec!["params".into(), "sql".into()],
                }),
            }
        );
        let (t, p) = split(&vector("frame", "connect_ok_hello_no_features"));
        assert!(
            matches!(decode(t, &p).unwrap(), ServerFrame::ConnectOk { hello: Some(h), .. } if h.protocol == 1 && h.features.is_empty())
        );
        let (t, p) = split(&vector("frame", "error_protocol_version"));
        assert_eq!(
            decode(t, &p).unwrap(),
            ServerFrame::Error { message: "unsupported wire protocol".into(), class: Some(class::PROTOCOL_VERSION) }
        );
    }

    #[test]
    fn the_classes_and_features_this_client_names_are_the_servers() {
        let byte = |name: &str| -> u8 {
            VECTORS.lines().find_map(|l| l.strip_prefix(&format!("class {name} "))).unwrap().parse().unwrap()
        };
        assert_eq!(byte("timeout"), class::TIMEOUT);
        assert_eq!(byte("readonly_refused"), class::READONLY_REFUSED);
        assert_eq!(byte("auth_failed"), class::AUTH_FAILED);
        assert_eq!(byte("rate_limited"), class::RATE_LIMITED);
        assert_eq!(byte("protocol_version"), class::PROTOCOL_VERSION);
        for f in ClientHello::ours().features {
            assert!(VECTORS.lines().any(|l| l == format!("feature {f}")), "{f} is not a server feature");
        }
    }

    /// A sync status payload laid out as `encode_sync_status` writes it.
    fn status_payload(last_error: Option<&str>) -> Vec<u8> {
        let mut p = Vec::new();
        put_str(&mut p, "powdb-backup");
        p.push(1); // active
        p.extend_from_slice(&[1, 7, 0, 0, 0, 0, 0, 0, 0]); // last applied: Some(7)
        p.extend_from_slice(&42u64.to_le_bytes()); // remote LSN
        p.push(0); // servable: None
        p.extend_from_slice(&[1, 40, 0, 0, 0, 0, 0, 0, 0]); // unarchived: Some(40)
        p.extend_from_slice(&[0, 0, 0]); // lag LSN, bytes, ms: None
        p.push(0); // stale
        p.push(2); // await archive
        match last_error {
            Some(e) => {
                p.push(1);
                put_str(&mut p, e);
            }
            None => p.push(0),
        }
        p
    }

    #[test]
    fn sync_status_decodes_every_field_in_order() {
        let (t, p) = split(&frame(MSG_SYNC_STATUS_RESULT, &status_payload(Some("boom"))));
        let ServerFrame::SyncStatus(s) = decode(t, &p).unwrap() else { panic!() };
        assert_eq!(
            s,
            SyncStatus {
                replica_id: "powdb-backup".into(),
                active: true,
                last_applied_lsn: Some(7),
                remote_lsn: 42,
                servable_lsn: None,
                unarchived_lsn: Some(40),
                lag_lsn: None,
                lag_bytes: None,
                lag_ms: None,
                stale: false,
                repair_action: 2,
                last_sync_error: Some("boom".into()),
            }
        );
    }

    #[test]
    fn every_truncation_of_a_reply_is_an_error_never_a_panic() {
        let rows = {
            let mut p = Vec::new();
            p.extend_from_slice(&2u16.to_le_bytes());
            put_str(&mut p, "id");
            put_str(&mut p, "v");
            p.extend_from_slice(&1u32.to_le_bytes());
            put_str(&mut p, "1");
            put_str(&mut p, "10");
            p
        };
        assert_eq!(
            decode(MSG_RESULT_ROWS, &rows).unwrap(),
            ServerFrame::Rows { columns: vec!["id".into(), "v".into()], rows: vec![vec!["1".into(), "10".into()]] }
        );
        for (t, p) in [(MSG_RESULT_ROWS, rows), (MSG_SYNC_STATUS_RESULT, status_payload(None))] {
            for cut in 0..p.len() {
                assert!(decode(t, &p[..cut]).is_err(), "type 0x{t:02x} cut at {cut} decoded");
            }
        }
    }

    #[test]
    fn counts_larger_than_the_payload_are_refused_before_allocating() {
        let mut p = 0u16.to_le_bytes().to_vec();
        p.extend_from_slice(&u32::MAX.to_le_bytes()); // zero columns, 4 billion rows
        assert!(decode(MSG_RESULT_ROWS, &p).is_err());
        let mut big = [0u8; 6];
        big[0] = MSG_RESULT_SCALAR;
        big[2..6].copy_from_slice(&(MAX_PAYLOAD as u32 + 1).to_le_bytes());
        let err = read_frame(&mut &big[..], MAX_PAYLOAD).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn an_error_frame_without_a_class_byte_is_a_legacy_error() {
        let mut p = Vec::new();
        put_str(&mut p, "authentication failed");
        assert_eq!(
            decode(MSG_ERROR, &p).unwrap(),
            ServerFrame::Error { message: "authentication failed".into(), class: None }
        );
        p.push(class::AUTH_FAILED);
        assert_eq!(
            decode(MSG_ERROR, &p).unwrap(),
            ServerFrame::Error { message: "authentication failed".into(), class: Some(class::AUTH_FAILED) }
        );
    }

    #[test]
    fn a_clean_end_between_frames_is_none_and_mid_frame_is_an_error() {
        assert!(read_frame(&mut &[][..], MAX_PAYLOAD).unwrap().is_none());
        let whole = encode_query("count(T)");
        for cut in 1..whole.len() {
            assert!(read_frame(&mut &whole[..cut], MAX_PAYLOAD).is_err(), "cut at {cut}");
        }
        assert_eq!(split(&whole), (MSG_QUERY, whole[6..].to_vec()));
    }
}
