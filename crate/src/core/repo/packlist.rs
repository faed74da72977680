//! The layout an index object and a damage record share: a magic, then for
//! each pack its key and a run of fixed-size items about its blobs.

/// The layout an index and a damage record share: a magic, a u32 count of
/// packs, then each pack's key (u16 length, UTF-8) and `n` (u32) items.
pub fn encode_pack_head(out: &mut Vec<u8>, key: &str, items: usize) {
    out.extend_from_slice(&(key.len() as u16).to_le_bytes());
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(&(items as u32).to_le_bytes());
}

/// Each pack's key and the bytes of its items (`item_len` each); None when
/// `raw` is not exactly that layout after `magic`.
pub fn decode_packs<'a>(raw: &'a [u8], magic: &[u8], item_len: usize) -> Option<Vec<(String, &'a [u8])>> {
    if raw.get(..magic.len())? != magic {
        return None;
    }
    let mut at = magic.len();
    let mut take = |n: usize| {
        let part = raw.get(at..at.checked_add(n)?)?;
        at += n;
        Some(part)
    };
    let count = u32::from_le_bytes(take(4)?.try_into().ok()?);
    let mut packs = Vec::new();
    for _ in 0..count {
        let key_len = u16::from_le_bytes(take(2)?.try_into().ok()?) as usize;
        let key = std::str::from_utf8(take(key_len)?).ok()?.to_string();
        let n = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
        packs.push((key, take(n.checked_mul(item_len)?)?));
    }
    (at == raw.len()).then_some(packs)
}
