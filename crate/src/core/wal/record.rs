//! One WAL record, as `wal.log` holds it and as a retained segment holds it
//! unchanged: `u32 total_len, u32 crc, u64 tx_id, u8 type, u64 lsn, data`,
//! with `crc = crc32(tx_id ‖ type ‖ lsn ‖ data)`.
pub const UNIT_HEADER_LEN: usize = 25;
/// The engine treats a longer record as corruption.
pub const MAX_UNIT_DATA: usize = 256 << 20;

pub const COMMIT: u8 = 4;
pub const ROLLBACK: u8 = 5;
pub const DDL_ADD_COLUMN: u8 = 8;
pub const BEGIN: u8 = 10;
/// Written for values too large to store inline; powdb-sync 0.29 cannot archive them.
pub const OVERFLOW_WRITE: u8 = 11;
pub const OVERFLOW_FREE: u8 = 12;

/// A record's header fields; its data is held by the reader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnitHeader {
    pub total_len: u32,
    pub crc: u32,
    pub tx_id: u64,
    pub kind: u8,
    pub lsn: u64,
}

impl UnitHeader {
    pub fn parse(raw: &[u8; UNIT_HEADER_LEN]) -> UnitHeader {
        let u32_at = |at: usize| u32::from_le_bytes(raw[at..at + 4].try_into().expect("4 bytes"));
        let u64_at = |at: usize| u64::from_le_bytes(raw[at..at + 8].try_into().expect("8 bytes"));
        UnitHeader { total_len: u32_at(0), crc: u32_at(4), tx_id: u64_at(8), kind: raw[16], lsn: u64_at(17) }
    }

    /// Length of the data after the header, when the length field is sane.
    pub fn data_len(&self) -> Option<usize> {
        let len = (self.total_len as usize).checked_sub(UNIT_HEADER_LEN)?;
        (len <= MAX_UNIT_DATA).then_some(len)
    }

    /// The CRC the header must carry for `data`.
    pub fn expected_crc(&self, data: &[u8]) -> u32 {
        let mut crc = crc32fast::Hasher::new();
        crc.update(&self.tx_id.to_le_bytes());
        crc.update(&[self.kind]);
        crc.update(&self.lsn.to_le_bytes());
        crc.update(data);
        crc.finalize()
    }
}

/// Whether the database is at a commit point right after this record: it
/// commits a transaction, or belongs to none (transaction 0). A replay that
/// stops here and leaves out every transaction not committed by then gives
/// exactly the state of the transactions committed so far, as the engine's
/// own crash recovery would.
pub fn is_commit_point(unit: &UnitHeader) -> bool {
    unit.kind == COMMIT || (unit.tx_id == 0 && unit.kind != BEGIN && unit.kind != ROLLBACK)
}
