//! The stage's parts that need no server, on data directories made by the
//! real engine (tools/powdb-fixture, built by `npm run build:tools`): the
//! page rule, torn reads, incremental passes, the WAL prefix and our Begin,
//! the preflight. The stage itself runs against a real server in
//! `__test__/online/stage.spec.ts`.
use super::heaps::{PassStats, StagedHeaps};
use super::pages::{is_whole, tests::Tearing};
use super::source::preflight;
use super::walstate::{commit_follows, our_begin, records, Prefix, WAL_HEADER_LEN};
use crate::core::page::PAGE_SIZE;
use crate::core::test_support::TempDir;
use crate::core::wal::record::{UnitHeader, BEGIN, COMMIT, UNIT_HEADER_LEN};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Runs the engine fixture tool (`--gen new`: powdb-storage 0.29.0).
fn fixture(args: &[&str]) {
    let tool = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/powdb-fixture");
    assert!(tool.exists(), "{} is missing: run `npm run build:tools`", tool.display());
    let out = std::process::Command::new(&tool).args(args).args(["--gen", "new"]).output().unwrap();
    assert!(out.status.success(), "powdb-fixture {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A data directory with T (ids 0..rows, indexed) and one value in overflow pages.
fn database(tmp: &TempDir, rows: usize) -> PathBuf {
    let dir = tmp.path("data");
    let d = dir.to_str().unwrap();
    fixture(&["create", d, "--rows", &rows.to_string(), "--index"]);
    fixture(&["big", d, "--id", "1000000", "--bytes", "20000"]);
    dir
}

fn staged(tmp: &TempDir) -> PathBuf {
    let dir = tmp.path("staged");
    std::fs::create_dir(&dir).unwrap();
    dir
}

fn pass(heaps: &mut StagedHeaps) -> PassStats {
    heaps.pass(&|| None).unwrap()
}

#[test]
fn every_page_the_engine_writes_passes_the_rule_and_a_flipped_byte_does_not() {
    let tmp = TempDir::new();
    let dir = database(&tmp, 3000);
    let heap = std::fs::read(dir.join("T.heap")).unwrap();
    assert!(heap.len() >= 8 * PAGE_SIZE, "{}", heap.len());
    let types: Vec<u8> = heap.chunks_exact(PAGE_SIZE).map(|p| p[4]).collect();
    assert!(types.contains(&5) && types.contains(&1) && types.contains(&3), "superblock, data, overflow: {types:?}");
    for (i, page) in heap.chunks_exact(PAGE_SIZE).enumerate() {
        assert!(is_whole(page), "page {i}");
        let mut flipped = page.to_vec();
        flipped[PAGE_SIZE - 100] ^= 0x40;
        assert!(!is_whole(&flipped), "page {i} flipped");
    }
}

#[test]
fn a_torn_page_is_read_again_and_one_torn_on_every_read_fails() {
    let tmp = TempDir::new();
    let dir = database(&tmp, 3000);
    let bytes = std::fs::read(dir.join("T.heap")).unwrap();
    let mut heaps = StagedHeaps::new(&dir, &staged(&tmp));
    let mut stats = PassStats::default();
    heaps.copy_from("T.heap", Tearing { bytes: bytes.clone(), page: 2, tear: 3 }, &mut stats).unwrap();
    assert_eq!(stats.torn_rereads, 3);
    assert_eq!(std::fs::read(tmp.path("staged/T.heap")).unwrap(), bytes);

    let other = TempDir::new();
    let mut heaps = StagedHeaps::new(&dir, &staged(&other));
    let e = heaps.copy_from("T.heap", Tearing { bytes, page: 2, tear: u32::MAX }, &mut stats).unwrap_err();
    assert_eq!(e.code, "ERR_PAGE_CRC", "{e}");
    assert!(e.message.contains("T.heap: page 2 failed its CRC32 check on 9 reads"), "{e}");
}

#[test]
fn later_passes_read_only_changed_heaps_and_write_only_changed_pages() {
    let tmp = TempDir::new();
    let dir = database(&tmp, 3000);
    let d = dir.to_str().unwrap();
    fixture(&["add-table", d, "--table", "U", "--rows", "500"]);
    std::thread::sleep(Duration::from_millis(150)); // older than the racy margin
    let staging = staged(&tmp);
    let mut heaps = StagedHeaps::new(&dir, &staging);
    let first = pass(&mut heaps);
    assert_eq!((first.files_read, first.pages_recopied), (2, 0));
    assert_eq!(first.pages_added, heaps.pages());
    let same = |name: &str| std::fs::read(dir.join(name)).unwrap() == std::fs::read(staging.join(name)).unwrap();
    assert!(same("T.heap") && same("U.heap"));
    assert_eq!(pass(&mut heaps).files_read, 0, "nothing changed");

    fixture(&["update", d, "--every", "1000"]);
    let third = pass(&mut heaps);
    assert_eq!(third.files_read, 1, "only T changed: {third:?}");
    assert!(third.pages_recopied > 0 && third.pages_recopied <= 6, "{third:?}");
    assert!(same("T.heap") && same("U.heap"));

    fixture(&["drop-table", d, "--table", "U"]);
    pass(&mut heaps);
    assert!(!staging.join("U.heap").exists());
}

/// One WAL record as the engine writes it.
fn record(tx: u64, kind: u8, lsn: u64, data: &[u8]) -> Vec<u8> {
    let mut h = UnitHeader { total_len: (UNIT_HEADER_LEN + data.len()) as u32, crc: 0, tx_id: tx, kind, lsn };
    h.crc = h.expected_crc(data);
    let mut out = Vec::new();
    out.extend_from_slice(&h.total_len.to_le_bytes());
    out.extend_from_slice(&h.crc.to_le_bytes());
    out.extend_from_slice(&tx.to_le_bytes());
    out.push(kind);
    out.extend_from_slice(&lsn.to_le_bytes());
    out.extend_from_slice(data);
    out
}

/// The WAL of a directory left as a crashed server leaves it: records not checkpointed.
fn crashed_wal(tmp: &TempDir) -> Vec<u8> {
    let dir = database(tmp, 100);
    fixture(&["dirty", dir.to_str().unwrap(), "--from", "100", "--count", "50"]);
    std::fs::read(dir.join("wal.log")).unwrap()
}

#[test]
fn the_prefix_is_the_complete_records_of_a_real_wal() {
    let wal = crashed_wal(&TempDir::new());
    let prefix = Prefix::of(&wal);
    assert_eq!(prefix.end(), wal.len());
    assert!(prefix.records > 50 && prefix.last_lsn > 50, "{} records, last LSN {}", prefix.records, prefix.last_lsn);
    assert!(records(&wal, WAL_HEADER_LEN).ddl.is_none());
    // A torn tail is left out; the prefix then holds in the whole file.
    let last = records(&wal, WAL_HEADER_LEN).last.unwrap();
    let cut = Prefix::of(&wal[..wal.len() - 3]);
    assert_eq!((cut.end(), cut.records), (last.offset, prefix.records - 1));
    assert!(cut.holds_in(&wal) && prefix.holds_in(&wal));
    // A checkpoint rewrites from offset 8: the prefix no longer holds.
    let mut rewritten = wal[..WAL_HEADER_LEN].to_vec();
    rewritten.extend(record(1, BEGIN, prefix.last_lsn + 1, &[]));
    rewritten.resize(wal.len() + 100, 0);
    assert!(!prefix.holds_in(&rewritten) && !prefix.holds_in(&wal[..wal.len() - 1]));
    // A header alone (an emptied WAL) has no record to compare.
    assert_eq!(Prefix::of(&wal[..WAL_HEADER_LEN]).records, 0);
    assert_eq!(Prefix::of(b"PWA").end(), 0);
}

#[test]
fn our_begin_ends_the_wal_and_its_commit_follows_it() {
    let mut wal = crashed_wal(&TempDir::new());
    let prefix = Prefix::of(&wal);
    let (tx, lsn) = (77, prefix.last_lsn + 1);
    let begin = record(tx, BEGIN, lsn, &[]);
    wal.extend(&begin);
    let tail = records(&wal, prefix.end());
    let ours = our_begin(&wal, &tail, Some(prefix.last_lsn)).unwrap();
    assert_eq!((ours.record.offset, ours.record.header.lsn, ours.reaches_lsn), (prefix.end(), lsn, prefix.last_lsn));
    // Anything after it, or a WAL that ends otherwise, is not ours.
    let mut more = wal.clone();
    more.extend(record(tx, 1, lsn + 1, b"row"));
    assert!(our_begin(&more, &records(&more, prefix.end()), None).is_none());
    assert!(our_begin(&wal[..prefix.end()], &records(&wal[..prefix.end()], prefix.end()), None).is_none());
    // After the commit: our Commit next, something else, or a rewritten WAL.
    let header = ours.record.header;
    let commit = [begin.clone(), record(tx, COMMIT, lsn + 1, &[])].concat();
    assert_eq!(commit_follows(&commit, &begin, &header), Some(true));
    let other = [begin.clone(), record(tx, 1, lsn + 1, b"row")].concat();
    assert_eq!(commit_follows(&other, &begin, &header), Some(false));
    assert_eq!(commit_follows(&begin, &begin, &header), Some(false));
    assert_eq!(commit_follows(&record(1, BEGIN, 5, &[]), &begin, &header), None);
    // DDL after the prefix is seen.
    let mut ddl = wal[..prefix.end()].to_vec();
    ddl.extend(record(0, 6, lsn, b"T"));
    assert_eq!(records(&ddl, prefix.end()).ddl.map(|r| r.header.lsn), Some(lsn));
}

#[test]
fn preflight_refuses_what_a_stage_cannot_copy() {
    let tmp = TempDir::new();
    let dir = database(&tmp, 10);
    let staging = staged(&tmp);
    // Made by the fixture, which has closed it: no LOCK, so no server.
    assert_eq!(preflight(&dir, &staging).unwrap_err().code, "ERR_SERVER_MISMATCH");
    // A process standing for the server, with the environment given, once it has exec'd.
    let server = |env: &str| {
        let child = std::process::Command::new("sleep").arg("30").env("POWDB_SYNC_MODE", env).spawn().unwrap();
        let environ = format!("/proc/{}/environ", child.id());
        while !std::fs::read(&environ).unwrap().windows(15).any(|w| w == b"POWDB_SYNC_MODE") {
            std::thread::sleep(Duration::from_millis(5));
        }
        std::fs::write(dir.join("LOCK"), child.id().to_string()).unwrap();
        child
    };
    let mut off = server("off");
    let e = preflight(&dir, &staging).unwrap_err();
    off.kill().unwrap();
    off.wait().unwrap();
    assert_eq!(e.code, "ERR_WAL_OFF", "{e}");
    let mut normal = server("Normal");
    let ok = preflight(&dir, &staging);
    assert_eq!(preflight(&dir, &dir.join("..").join("data")).unwrap_err().code, "ERR_INVALID_ARG");
    std::fs::write(staging.join("x"), b"").unwrap();
    assert_eq!(preflight(&dir, &staging).unwrap_err().code, "ERR_DEST_NOT_EMPTY");
    std::fs::remove_file(staging.join("x")).unwrap();
    let mut catalog = std::fs::read(dir.join("catalog.bin")).unwrap();
    catalog[4..6].copy_from_slice(&8u16.to_le_bytes());
    std::fs::write(dir.join("catalog.bin"), catalog).unwrap();
    let newer = preflight(&dir, &staging).unwrap_err();
    normal.kill().unwrap();
    normal.wait().unwrap();
    ok.unwrap();
    assert_eq!(newer.code, "ERR_UNSUPPORTED_FORMAT", "{newer}");
}
