//! What the stage reads in a live `wal.log`: its complete records, the
//! "prefix" noted before a pass, and, under the freeze, the records after it,
//! which must end with the Begin of our own transaction.
//!
//! Why an unchanged prefix proves that no checkpoint lost anything during a
//! pass. A checkpoint flushes the heaps, then truncates the WAL and writes it
//! again from offset 8. What it can take from a pass is a committed record R
//! whose page was copied before the flush: R is then in neither the copy nor
//! the WAL. After that checkpoint every new record has an LSN above R's (the
//! engine never reissues the LSN of a record whose page it flushed, or that
//! precedes `catalog.lsn`: its crash recovery relies on it), so the first
//! record in the WAL carries an LSN above R's, and R's is at least the first
//! LSN of the prefix (R was in the prefix or came after it). The WAL's first
//! record, and so its prefix, differs. LSNs are reissued only after a
//! rollback (of records no page holds), so an identical prefix can come back,
//! but then nothing it stands for was flushed and lost. This needs one
//! complete record in the prefix: with none there is nothing to compare, and
//! the stage first writes one (an empty transaction, `stage.rs`).
use crate::core::error::{CoreError, CoreResult};
use crate::core::wal::record::{UnitHeader, BEGIN, COMMIT, UNIT_HEADER_LEN};
use std::path::Path;

/// The file header: "PWAL", format version 1, flags 0.
pub const WAL_HEADER_LEN: usize = 8;
const WAL_MAGIC: &[u8; 4] = b"PWAL";
/// Record types that change the schema (CreateTable .. DropColumn): their
/// replay is by name, not by LSN (powdb-online.md §2.4).
const DDL_TYPES: std::ops::RangeInclusive<u8> = 6..=9;

/// One complete record: where it starts and its header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record {
    pub offset: usize,
    pub header: UnitHeader,
}

/// The complete records of a WAL image from some offset on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Records {
    /// Where the complete records end (the start of a torn or damaged tail).
    pub end: usize,
    pub count: u64,
    pub first: Option<Record>,
    pub last: Option<Record>,
    /// The record before `last`.
    pub before_last: Option<Record>,
    /// The first schema-changing record, if any.
    pub ddl: Option<Record>,
}

/// Reads the records of `wal` from `from` (at least the header) on, each
/// with its length and CRC checked, up to the first that is not complete.
/// A file without the `PWAL` header has no records here.
pub fn records(wal: &[u8], from: usize) -> Records {
    if wal.len() < WAL_HEADER_LEN || &wal[..4] != WAL_MAGIC || from < WAL_HEADER_LEN {
        return Records::default();
    }
    scan(wal, from)
}

/// The complete records of `bytes` from `at` on, whatever precedes them.
fn scan(bytes: &[u8], mut at: usize) -> Records {
    let mut out = Records { end: at.min(bytes.len()), ..Records::default() };
    while let Some(raw) = bytes.get(at..at + UNIT_HEADER_LEN) {
        let header = UnitHeader::parse(raw.try_into().expect("a 25-byte slice"));
        let body = header.data_len().and_then(|n| bytes.get(at + UNIT_HEADER_LEN..at + UNIT_HEADER_LEN + n));
        let Some(data) = body.filter(|data| header.expected_crc(data) == header.crc) else { break };
        let record = Record { offset: at, header };
        out.first.get_or_insert(record);
        out.before_last = out.last.replace(record);
        if out.ddl.is_none() && DDL_TYPES.contains(&header.kind) {
            out.ddl = Some(record);
        }
        out.count += 1;
        at += UNIT_HEADER_LEN + data.len();
        out.end = at;
    }
    out
}

/// The WAL as noted before a pass: its complete records, kept whole (a
/// compare under the freeze is the cheapest exact check: no hashing).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prefix {
    pub bytes: Vec<u8>,
    pub records: u64,
    /// The LSN of its last record (0 when it holds none).
    pub last_lsn: u64,
}

impl Prefix {
    pub fn of(wal: &[u8]) -> Prefix {
        let r = records(wal, WAL_HEADER_LEN);
        Prefix { bytes: wal[..r.end].to_vec(), records: r.count, last_lsn: r.last.map_or(0, |l| l.header.lsn) }
    }

    /// Where its complete records end (8 for a header alone, 0 without one).
    pub fn end(&self) -> usize {
        self.bytes.len()
    }

    /// Whether `wal` still starts with exactly these bytes.
    pub fn holds_in(&self, wal: &[u8]) -> bool {
        wal.starts_with(&self.bytes)
    }
}

/// Reads `wal.log` whole into `buf` (its allocation reused: read once
/// before a freeze, the read under it touches no new memory); a missing file
/// reads as empty.
pub fn read_wal(path: &Path, buf: &mut Vec<u8>) -> CoreResult<()> {
    use std::io::Read;
    buf.clear();
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(CoreError::io("open", path, e)),
    };
    file.read_to_end(buf).map_err(|e| CoreError::io("read", path, e))?;
    Ok(())
}

/// Makes room in `buf` for a WAL grown by `more` bytes, touching every page
/// of it now rather than under the freeze.
pub fn reserve(buf: &mut Vec<u8>, more: usize) {
    let len = buf.len();
    buf.resize(len + more, 0);
    buf.truncate(len);
}

/// Our transaction's Begin in the WAL read under the freeze.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OurBegin {
    pub record: Record,
    /// The LSN of the record before it: what the staged copy reaches.
    pub reaches_lsn: u64,
}

/// Finds our Begin among the records of `wal` from `from` on (`before`: the
/// LSN of the record just before `from`, if any). Under the freeze the server
/// we froze writes nothing after its Begin, so a WAL whose last complete
/// record is a Begin and which ends there is ours. None otherwise.
pub fn our_begin(wal: &[u8], tail: &Records, before: Option<u64>) -> Option<OurBegin> {
    let last = tail.last.filter(|l| l.header.kind == BEGIN && tail.end == wal.len())?;
    let before = tail.before_last.map(|b| b.header.lsn).or(before);
    Some(OurBegin { record: last, reaches_lsn: before.unwrap_or(last.header.lsn.saturating_sub(1)) })
}

/// After the commit: whether the WAL, read again from our Begin's offset
/// (`from_begin`), says the freeze was ours. Some(true) when our Begin is
/// still there, followed by a Commit of the same transaction with the next
/// LSN; Some(false) when it is followed by anything else (on the server we
/// froze nothing can come between the two); None when a checkpoint has
/// rewritten the WAL since (nothing to tell).
pub fn commit_follows(from_begin: &[u8], begin_raw: &[u8], begin: &UnitHeader) -> Option<bool> {
    let rest = from_begin.strip_prefix(begin_raw)?;
    let next = scan(rest, 0).first;
    Some(
        next.is_some_and(|c| c.header.kind == COMMIT && c.header.tx_id == begin.tx_id && c.header.lsn == begin.lsn + 1),
    )
}
