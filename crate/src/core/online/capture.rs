//! A stage under way (`Run`) and the steps of an attempt around its freeze:
//! the mark before the pass, the pass, the freeze, what is read under it and
//! the window check, then the commit and the staged files (see `stage.rs` for
//! the whole).
use super::heaps::{list_heaps, PassStats, StagedHeaps};
use super::held::HeldFreeze;
use super::report::{StageOptions, StageReport};
use super::source::{self, SmallFiles, CATALOG, WAL};
use super::walstate::{self, OurBegin, Prefix, Records};
use super::{Connection, Login};
use crate::core::error::{CoreError, CoreResult};
use crate::core::fsio;
use crate::core::wal::record::UNIT_HEADER_LEN;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Duration;

/// One stage under way.
pub(super) struct Run<'a> {
    pub(super) data_dir: &'a Path,
    pub(super) staging: &'a Path,
    pub(super) login: &'a Login,
    pub(super) options: &'a StageOptions,
    pub(super) heaps: StagedHeaps,
    pub(super) report: StageReport,
    /// Bytes read by the passes and how long they took: the read rate.
    pub(super) read: (u64, Duration),
    /// A connection made before the pass, so that the window from the pass
    /// to the freeze does not include connecting and logging in (~25 ms).
    pub(super) spare: Option<Connection>,
}

/// Noted before a pass.
pub(super) struct Mark {
    prefix: Prefix,
    catalog: blake3::Hash,
    heaps: Vec<String>,
}

/// What a freeze read: the WAL, with our Begin in it, and the small files.
pub(super) struct Capture {
    wal: Vec<u8>,
    begin: OurBegin,
    files: SmallFiles,
}

const NO_RECORD: &str = "the WAL held no record when the pass began";
pub(super) const CHECKPOINTED: &str = "a checkpoint rewrote the WAL during the pass";

/// `Err(reason)`: the attempt is given up and another one runs.
pub(super) type Step<T> = CoreResult<Result<T, String>>;

fn retry<T>(e: CoreError) -> Step<T> {
    Ok(Err(format!("{}: {}", e.code, e.message)))
}

impl Run<'_> {
    /// Notes the WAL prefix, the catalog and the heaps. A WAL without a
    /// complete record gives the window check nothing to compare, so an
    /// empty transaction (a freeze of about a millisecond) writes two first.
    pub(super) fn mark(&mut self) -> Step<Mark> {
        let catalog = blake3::hash(&source::read_optional(&self.data_dir.join(CATALOG))?.unwrap_or_default());
        let heaps = list_heaps(self.data_dir)?;
        let (path, mut wal) = (self.data_dir.join(WAL), Vec::new());
        walstate::read_wal(&path, &mut wal)?;
        if walstate::records(&wal, walstate::WAL_HEADER_LEN).count == 0 {
            let held = match self.freeze()? {
                Ok(held) => held,
                Err(reason) => return Ok(Err(reason)),
            };
            if let Err(reason) = self.ended(held.commit())? {
                return Ok(Err(reason));
            }
            self.connect_spare()?;
            walstate::read_wal(&path, &mut wal)?;
        }
        let prefix = Prefix::of(&wal);
        if prefix.records == 0 {
            return Ok(Err(NO_RECORD.into())); // checkpointed right after ours: again
        }
        Ok(Ok(Mark { prefix, catalog, heaps }))
    }

    /// A pass over the heaps; under `held` it stops when the freeze must end.
    pub(super) fn pass(&mut self, held: Option<&HeldFreeze>) -> CoreResult<()> {
        let stats: PassStats = self.heaps.pass(&|| held.and_then(HeldFreeze::stop))?;
        self.read = (self.read.0 + stats.bytes_read, self.read.1 + stats.elapsed);
        self.report.pages_recopied += stats.pages_recopied;
        self.report.torn_rereads += stats.torn_rereads;
        Ok(())
    }

    /// A new connection; its handshake may wait as long as a `begin` does
    /// (a server in a checkpoint answers neither until it ends).
    pub(super) fn connect(&self) -> CoreResult<Connection> {
        Connection::connect_within(self.login, self.options.begin_wait)
    }

    /// Connects the connection the next freeze begins on, unless there is one.
    pub(super) fn connect_spare(&mut self) -> CoreResult<()> {
        if self.spare.is_none() {
            self.spare = Some(self.connect()?);
        }
        Ok(())
    }

    /// Begins a freeze, on the spare connection if there is one (a spare the
    /// server dropped as idle during a long pass is replaced once);
    /// `Err(reason)` when another transaction held the gate too long.
    pub(super) fn freeze(&mut self) -> Step<HeldFreeze> {
        let (conn, spare) = match self.spare.take() {
            Some(conn) => (conn, true),
            None => (self.connect()?, false),
        };
        let (budget, wait) = (self.options.budget, self.options.begin_wait);
        let began = match HeldFreeze::begin(conn, budget, wait) {
            Err(e) if spare && e.code == "ERR_SERVER_UNREACHABLE" => HeldFreeze::begin(self.connect()?, budget, wait),
            other => other,
        };
        match began {
            Ok(held) => Ok(Ok(held)),
            Err(e) if e.code == "ERR_SERVER_BUSY" => retry(e),
            Err(e) => Err(e),
        }
    }

    /// Before the freeze: reads the WAL, so that the read under the freeze
    /// lands in memory already touched, and gives the attempt up at once
    /// (no freeze needed) when the window has broken already.
    pub(super) fn preread(&self, mark: Option<&Mark>) -> Step<Vec<u8>> {
        let mut wal = Vec::new();
        walstate::read_wal(&self.data_dir.join(WAL), &mut wal)?;
        if let Some(mark) = mark.filter(|_| !self.options.test.skip_window_check) {
            if mark.prefix.records == 0 {
                return Ok(Err(NO_RECORD.into()));
            }
            if !mark.prefix.holds_in(&wal) {
                return Ok(Err(CHECKPOINTED.into()));
            }
        }
        let more = (wal.len() / 4).max(1 << 20);
        walstate::reserve(&mut wal, more);
        Ok(Ok(wal))
    }

    /// Under the freeze: the WAL (which must end with our Begin), read into
    /// `wal`, and the small files; with `mark`, `Err(reason)` when the
    /// window broke. Only the records after the prefix are parsed.
    pub(super) fn capture(&self, held: &HeldFreeze, mark: Option<&Mark>, wal: Vec<u8>) -> Step<Capture> {
        Ok(self.capture_keeping(held, mark, wal)?.map_err(|(reason, _)| reason))
    }

    /// `capture`; a broken window gives the WAL read under the freeze back
    /// with the reason (still what the server holds while the freeze lasts).
    pub(super) fn capture_keeping(
        &self,
        held: &HeldFreeze,
        mark: Option<&Mark>,
        mut wal: Vec<u8>,
    ) -> CoreResult<Result<Capture, (String, Vec<u8>)>> {
        walstate::read_wal(&self.data_dir.join(WAL), &mut wal)?;
        self.check_capture(held, mark, wal)
    }

    /// The checks of `capture` on a WAL read under the freeze.
    pub(super) fn check_capture(
        &self,
        held: &HeldFreeze,
        mark: Option<&Mark>,
        wal: Vec<u8>,
    ) -> CoreResult<Result<Capture, (String, Vec<u8>)>> {
        let check = mark.filter(|_| !self.options.test.skip_window_check);
        let (from, before) = match check {
            Some(m) if m.prefix.records > 0 && m.prefix.holds_in(&wal) => (m.prefix.end(), Some(m.prefix.last_lsn)),
            _ => (walstate::WAL_HEADER_LEN, None),
        };
        let tail = walstate::records(&wal, from);
        let begin = walstate::our_begin(&wal, &tail, before)
            .ok_or_else(|| self.not_ours(&wal, "does not end with a Begin (written at `begin`)"))?;
        if let Some(mark) = check {
            if let Some(reason) = self.window_broken(mark, &wal, &tail, &begin)? {
                return Ok(Err((reason, wal)));
            }
        }
        let files = match SmallFiles::read(self.data_dir)? {
            Ok(files) => files,
            Err(reason) => return Ok(Err((reason, wal))),
        };
        if check.is_some_and(|m| blake3::hash(files.catalog()) != m.catalog) {
            return Ok(Err(("catalog.bin changed during the pass (DDL)".into(), wal)));
        }
        match held.stop() {
            Some(e) => Err(e),
            None => Ok(Ok(Capture { wal, begin, files })),
        }
    }

    /// Why the copy made by the pass since `mark` may lack committed changes
    /// (see `walstate.rs` for why the prefix tells), or None.
    fn window_broken(&self, mark: &Mark, wal: &[u8], tail: &Records, begin: &OurBegin) -> CoreResult<Option<String>> {
        let prefix = &mark.prefix;
        if prefix.records == 0 {
            return Ok(Some(NO_RECORD.into()));
        }
        if !prefix.holds_in(wal) {
            return Ok(Some(CHECKPOINTED.into()));
        }
        if begin.record.header.lsn <= prefix.last_lsn {
            return Err(self.not_ours(wal, "ends with a Begin older than the records seen before the freeze"));
        }
        if let Some(ddl) = tail.ddl {
            let (kind, lsn) = (ddl.header.kind, ddl.header.lsn);
            return Ok(Some(format!("DDL during the pass (WAL record type {kind} at LSN {lsn})")));
        }
        if list_heaps(self.data_dir)? != mark.heaps {
            return Ok(Some("the set of heap files changed during the pass".into()));
        }
        Ok(None)
    }

    fn not_ours(&self, wal: &[u8], what: &str) -> CoreError {
        let last = walstate::records(wal, walstate::WAL_HEADER_LEN).last;
        let seen = last.map_or("no record".to_string(), |l| format!("type {} at LSN {}", l.header.kind, l.header.lsn));
        CoreError::new(
            "ERR_SERVER_MISMATCH",
            format!(
                "under the write freeze on powdb-server at {}:{}, {}/wal.log {what} of our transaction (its last \
                 record: {seen}): that server does not serve this directory, or it runs with POWDB_SYNC_MODE=off \
                 (no WAL); give the address of the server whose data directory this is",
                self.login.host,
                self.login.port,
                self.data_dir.display()
            ),
        )
    }

    /// Commits the freeze, whatever `captured` says, and keeps its time. A
    /// freeze the server or the watchdog ended first explains anything read
    /// under it (a rollback empties the WAL, a commit lets writers in), so
    /// that is the outcome, to retry.
    pub(super) fn end(&mut self, held: HeldFreeze, captured: Step<Capture>) -> Step<Capture> {
        let (worked, frozen_at) = (held.held(), held.began_unix_ms());
        let ending = if self.options.test.end_with_rollback { held.rollback_for_test() } else { held.commit() };
        let held_for = match self.ended(ending)? {
            Ok(held_for) => held_for,
            Err(reason) => return Ok(Err(reason)),
        };
        let capture = match captured? {
            Ok(capture) => capture,
            Err(reason) => return Ok(Err(reason)),
        };
        self.check_commit_follows(&capture)?;
        self.report.freeze_ms = held_for.as_secs_f64() * 1000.0;
        self.report.freeze_work_ms = worked.as_secs_f64() * 1000.0;
        self.report.frozen_at_unix_ms = frozen_at;
        Ok(Ok(capture))
    }

    /// Notes how long a freeze held; `Err(reason)` when the server or the
    /// watchdog had ended it (what was read under it is dropped).
    pub(super) fn ended(&mut self, (committed, held): (CoreResult<Duration>, Duration)) -> Step<Duration> {
        self.report.longest_freeze_ms = self.report.longest_freeze_ms.max(held.as_secs_f64() * 1000.0);
        match committed {
            Ok(d) => Ok(Ok(d)),
            Err(e) if e.code == "ERR_FREEZE_LOST" || e.code == "ERR_FREEZE_BUDGET" => retry(e),
            Err(e) => Err(e),
        }
    }

    /// Reads the WAL again at our Begin: on the server we froze, our Commit
    /// follows it (unless a checkpoint has rewritten the WAL since).
    fn check_commit_follows(&self, c: &Capture) -> CoreResult<()> {
        let at = c.begin.record.offset;
        let begin_raw = &c.wal[at..at + c.begin.record.header.total_len as usize];
        let path = self.data_dir.join(WAL);
        let mut after = vec![0u8; begin_raw.len() + UNIT_HEADER_LEN];
        let got = match fsio::open_read(&path) {
            Ok(file) => file.read_at(&mut after, at as u64).map_err(|e| CoreError::io("read", &path, e))?,
            Err(e) if e.code == "ENOENT" => 0,
            Err(e) => return Err(e),
        };
        match walstate::commit_follows(&after[..got], begin_raw, &c.begin.record.header) {
            Some(false) => Err(self.not_ours(&c.wal, "did not get the Commit")),
            _ => Ok(()),
        }
    }

    /// Writes the staged WAL (up to our Begin) and the small files, fsyncs
    /// everything staged, and completes the report.
    pub(super) fn finish(mut self, c: Capture) -> CoreResult<StageReport> {
        let wal = &c.wal[..c.begin.record.offset];
        let mut files = vec![(WAL, wal)];
        files.extend(c.files.0.iter().map(|(name, bytes)| (*name, bytes.as_slice())));
        for (name, bytes) in files {
            let path = self.staging.join(name);
            let mut sink = fsio::Sink::new(fsio::create_new(&path)?, &path);
            sink.append(bytes)?;
            sink.finish()?;
        }
        self.heaps.sync()?;
        fsio::sync(&fsio::open_read(self.staging)?, self.staging)?;
        self.report.wal_bytes = wal.len() as u64;
        self.report.freeze_lsn = c.begin.reaches_lsn;
        self.report.begin_lsn = c.begin.record.header.lsn;
        self.report.heap_pages = self.heaps.pages();
        Ok(self.report)
    }
}
