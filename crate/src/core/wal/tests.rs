//! Segment reading, boundaries and replay on segments encoded here as
//! powdb-sync writes them (the vitest suites use the engine's own).
use super::record::{UnitHeader, BEGIN, COMMIT, OVERFLOW_WRITE, UNIT_HEADER_LEN};
use super::replay::{cut_at_or_before, write_wal, WAL_HEADER};
use super::scan::first_overflow_record;
use super::segment::{inspect_segment, HEADER_LEN};
use crate::core::test_support::TempDir;

/// (tx_id, type, lsn, data)
type Unit = (u64, u8, u64, Vec<u8>);

fn unit_bytes((tx, kind, lsn, data): &Unit) -> Vec<u8> {
    let h = UnitHeader { total_len: (UNIT_HEADER_LEN + data.len()) as u32, crc: 0, tx_id: *tx, kind: *kind, lsn: *lsn };
    let mut out = Vec::new();
    out.extend_from_slice(&h.total_len.to_le_bytes());
    out.extend_from_slice(&h.expected_crc(data).to_le_bytes());
    out.extend_from_slice(&tx.to_le_bytes());
    out.push(*kind);
    out.extend_from_slice(&lsn.to_le_bytes());
    out.extend_from_slice(data);
    out
}

fn segment(units: &[Unit]) -> Vec<u8> {
    let mut out = b"PRUL".to_vec();
    for v in [1u16, 0, 1, 5] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&(units.len() as u32).to_le_bytes());
    for v in [units[0].2, units.last().unwrap().2, 1] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&[7u8; 16]);
    assert_eq!(out.len(), HEADER_LEN);
    for u in units {
        out.extend(unit_bytes(u));
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(b"RULF");
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// A transaction `tx` inserting `rows` rows starting at LSN `lsn`: Begin, rows, Commit.
fn tx(tx: u64, lsn: u64, rows: u64) -> Vec<Unit> {
    let mut units = vec![(tx, BEGIN, lsn, vec![])];
    for i in 0..rows {
        units.push((tx, 1, lsn + 1 + i, format!("row {i} of {tx}").into_bytes()));
    }
    units.push((tx, COMMIT, lsn + 1 + rows, vec![]));
    units
}

#[test]
fn a_segment_is_read_whole_and_its_boundaries_are_the_commits() {
    let dir = TempDir::new();
    let units: Vec<Unit> = [tx(1, 11, 2), tx(2, 15, 3)].concat(); // 11..=14, 15..=19
    let path = dir.write("s.prul", &segment(&units));
    let s = inspect_segment(&path).unwrap();
    assert_eq!((s.header.start_lsn, s.header.end_lsn, s.header.units), (11, 19, 9));
    assert_eq!(s.last_boundary, Some(19));
    assert_eq!(s.blake3_hex, blake3::hash(&std::fs::read(&path).unwrap()).to_hex().to_string());
    let open = dir.write("open.prul", &segment(&[tx(1, 11, 2), tx(2, 15, 3)[..2].to_vec()].concat()));
    assert_eq!(inspect_segment(&open).unwrap().last_boundary, Some(14));
}

#[test]
fn every_damage_is_refused_with_its_reason() {
    let dir = TempDir::new();
    let good = segment(&tx(1, 11, 2));
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            {
                let mut b = good.clone();
                b[HEADER_LEN + 30] ^= 1;
                b
            },
            "CRC mismatch at LSN 12",
        ), // the second unit (the Begin is 25 bytes)
        (
            {
                let mut b = good.clone();
                let n = b.len();
                b[n - 1] ^= 1;
                b
            },
            "footer CRC mismatch",
        ),
        (
            {
                let mut b = good.clone();
                b[0] = b'X';
                b
            },
            "magic mismatch",
        ),
        (good[..good.len() - 3].to_vec(), ""),
        (segment(&[(1, BEGIN, 11, vec![]), (1, COMMIT, 13, vec![])]), "contiguous"),
        (segment(&[(1, OVERFLOW_WRITE, 11, vec![1])]), "is an overflow record (type 11)"),
        (segment(&[(1, 13, 11, vec![1])]), "unknown retained unit record type 13"),
        (
            {
                let mut b = good.clone();
                b[12] = 9;
                b
            },
            "",
        ), // unit count
    ];
    for (i, (bytes, why)) in cases.into_iter().enumerate() {
        let path = dir.write(&format!("bad{i}.prul"), &bytes);
        let err = inspect_segment(&path).unwrap_err();
        assert_eq!(err.code, "ERR_BAD_SEGMENT", "case {i}: {err}");
        assert!(err.message.contains(why), "case {i}: {err}");
    }
}

#[test]
fn a_replay_cuts_at_the_last_boundary_at_or_before_the_target_and_copies_bytes_unchanged() {
    let dir = TempDir::new();
    let first = dir.write("a.prul", &segment(&[tx(1, 11, 2), tx(2, 15, 3)].concat())); // 11..=19
    let second = dir.write("b.prul", &segment(&tx(3, 20, 1))); // 20..=22
    let segments = vec![first.clone(), second.clone()];
    assert_eq!(cut_at_or_before(&segments, 10, 10).unwrap().lsn, 10);
    assert_eq!(cut_at_or_before(&segments, 10, 13).unwrap().lsn, 10); // inside the first transaction
    assert_eq!(cut_at_or_before(&segments, 10, 14).unwrap().lsn, 14);
    assert_eq!(cut_at_or_before(&segments, 10, 21).unwrap().lsn, 19);
    assert_eq!(cut_at_or_before(&segments, 10, 99).unwrap().lsn, 22);
    assert_eq!(cut_at_or_before(&segments, 14, 99).unwrap().lsn, 22); // starting inside a segment

    let out = dir.path("wal.log");
    let cut = write_wal(&segments, 14, 19, &out).unwrap();
    assert_eq!((cut.cut_lsn, cut.units), (19, 5));
    let wal = std::fs::read(&out).unwrap();
    let expected: Vec<u8> = tx(2, 15, 3).iter().flat_map(unit_bytes).collect();
    assert_eq!(&wal[..8], &WAL_HEADER);
    assert_eq!(&wal[8..], &expected[..]);
    assert_eq!(cut.bytes, wal.len() as u64);

    let gap = write_wal(&[second], 10, 22, &dir.path("gap.log")).unwrap_err();
    assert_eq!(gap.code, "ERR_ARCHIVE_GAP", "{gap}");
    let short = write_wal(&[first], 10, 22, &dir.path("short.log")).unwrap_err();
    assert_eq!(short.code, "ERR_ARCHIVE_GAP", "{short}");
}

#[test]
fn overflow_records_in_a_wal_are_found_and_a_torn_tail_is_not_an_error() {
    let dir = TempDir::new();
    let mut wal = WAL_HEADER.to_vec();
    for u in tx(1, 5, 2) {
        wal.extend(unit_bytes(&u));
    }
    let plain = dir.write("plain.log", &wal);
    assert_eq!(first_overflow_record(&plain).unwrap(), None);
    wal.extend(unit_bytes(&(2, OVERFLOW_WRITE, 9, vec![0; 100])));
    let overflow = dir.write("overflow.log", &wal);
    assert_eq!(first_overflow_record(&overflow).unwrap(), Some((9, OVERFLOW_WRITE)));
    let torn = dir.write("torn.log", &wal[..wal.len() - 120]);
    assert_eq!(first_overflow_record(&torn).unwrap(), None);
    assert_eq!(first_overflow_record(&dir.path("absent.log")).unwrap(), None);
}

#[test]
fn a_transaction_a_crash_cut_short_is_left_out_though_its_id_commits_in_the_next_session() {
    let dir = TempDir::new();
    let a = dir.write("a.prul", &segment(&tx(1, 11, 2))); // 11..=14, committed
    let tail = vec![(1, BEGIN, 15, vec![]), (1, 1, 16, b"uncommitted".to_vec())];
    let b = dir.write("b.prul", &segment(&tail)); // the crash tail, archived by the next open
    let c = dir.write("c.prul", &segment(&tx(1, 17, 1))); // 17..=19: tx ids restart at 1
    let segments = vec![a, b, c];
    assert_eq!(cut_at_or_before(&segments, 10, 16).unwrap().lsn, 14);
    assert_eq!(cut_at_or_before(&segments, 10, 18).unwrap().lsn, 14);
    assert_eq!(cut_at_or_before(&segments, 10, 19).unwrap().lsn, 19);
    let out = dir.path("wal.log");
    let cut = write_wal(&segments, 10, 19, &out).unwrap();
    assert_eq!((cut.cut_lsn, cut.units), (19, 7));
    let expected: Vec<u8> = [tx(1, 11, 2), tx(1, 17, 1)].concat().iter().flat_map(unit_bytes).collect();
    assert_eq!(&std::fs::read(&out).unwrap()[8..], &expected[..]);
}

#[test]
fn interleaved_autocommit_statements_are_cut_at_each_commit_leaving_out_the_uncommitted() {
    let dir = TempDir::new();
    // As the engine logs two autocommit inserts: rows of tx 1 and 2, then both Commits.
    let units: Vec<Unit> =
        vec![(1, 1, 42, vec![1]), (2, 1, 43, vec![2]), (1, COMMIT, 44, vec![]), (2, COMMIT, 45, vec![])];
    let path = dir.write("s.prul", &segment(&units));
    let segments = vec![path];
    assert_eq!(cut_at_or_before(&segments, 41, 43).unwrap().lsn, 41);
    assert_eq!(cut_at_or_before(&segments, 41, 44).unwrap().lsn, 44);
    let out = dir.path("wal.log");
    let cut = write_wal(&segments, 41, 44, &out).unwrap();
    assert_eq!((cut.cut_lsn, cut.units), (44, 2)); // tx 1's row and Commit; tx 2 is not committed by then
    let expected: Vec<u8> = [units[0].clone(), units[2].clone()].iter().flat_map(unit_bytes).collect();
    assert_eq!(&std::fs::read(&out).unwrap()[8..], &expected[..]);
}

#[test]
fn a_cut_says_where_the_first_add_column_is_and_how_far_a_replay_is_safe() {
    let dir = TempDir::new();
    // tx 1 (11..=13), an add column in tx 2 (14..=16), tx 3 (17..=19).
    let alter: Vec<Unit> = vec![(2, BEGIN, 14, vec![]), (2, 8, 15, b"ddl".to_vec()), (2, COMMIT, 16, vec![])];
    let units = [tx(1, 11, 1), alter, tx(3, 17, 1)].concat();
    let segments = vec![dir.write("s.prul", &segment(&units))];
    let before = cut_at_or_before(&segments, 10, 13).unwrap();
    assert_eq!((before.lsn, before.add_column, before.safe), (13, None, 13));
    let inside = cut_at_or_before(&segments, 10, 15).unwrap(); // the alter's transaction is left out
    assert_eq!((inside.lsn, inside.add_column, inside.safe), (13, None, 13));
    let after = cut_at_or_before(&segments, 10, 19).unwrap();
    assert_eq!((after.lsn, after.add_column, after.safe), (19, Some(15), 13));
}
