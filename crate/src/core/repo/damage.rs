//! Damage records (`damage/<name>`): the pack locations of blobs that
//! `verify` or `repair` found damaged or missing. The index leaves those
//! locations out, so a backup stores such a chunk again from its source
//! instead of deduplicating against a copy that cannot be read, and a
//! restore takes the new copy. `repair` removes them once it has dealt
//! with the packs. Sealed with the object's key as context, like an index.
use super::keys::new_name;
use super::keys::{BlobId, Keys, ID_LEN};
use super::packlist::{decode_packs, encode_pack_head};
use super::storage::Storage;
use super::Repo;
use crate::core::error::{CoreError, CoreResult};
use std::collections::{HashMap, HashSet};

const MAGIC: &[u8; 8] = b"PWBDMG2\0";
pub const DAMAGE_PREFIX: &str = "damage/";

/// Damaged locations: pack key to the ids of its blobs that are damaged or missing.
pub type Damage = HashMap<String, HashSet<BlobId>>;

pub fn encode(damage: &Damage) -> Vec<u8> {
    let mut packs: Vec<(&String, &HashSet<BlobId>)> = damage.iter().collect();
    packs.sort_by(|a, b| a.0.cmp(b.0));
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&(packs.len() as u32).to_le_bytes());
    for (key, ids) in packs {
        let mut ids: Vec<&BlobId> = ids.iter().collect();
        ids.sort();
        encode_pack_head(&mut out, key, ids.len());
        ids.into_iter().for_each(|id| out.extend_from_slice(id));
    }
    out
}

pub fn decode(raw: &[u8]) -> Option<Damage> {
    let mut damage = Damage::new();
    for (key, ids) in decode_packs(raw, MAGIC, ID_LEN)? {
        let set = damage.entry(key).or_default();
        set.extend(ids.chunks_exact(ID_LEN).map(|id| BlobId::try_from(id).expect("32 bytes")));
    }
    Some(damage)
}

/// Every damage record: their keys and the locations they name together.
/// A record that fails its seal says nothing reliable and is passed over
/// (verify finds the damage again; repair removes it).
pub fn read_all(storage: &dyn Storage, keys: &Keys) -> CoreResult<(Vec<String>, Damage)> {
    let mut names = Vec::new();
    let mut damage = Damage::new();
    for object in storage.list(DAMAGE_PREFIX)? {
        let sealed = storage.get(&object.key)?;
        let what = format!("damage record {}", object.key);
        let opened = keys.open(&sealed, object.key.as_bytes(), &what).ok().and_then(|p| decode(&p));
        if let Some(found) = opened {
            for (pack, ids) in found {
                damage.entry(pack).or_default().extend(ids);
            }
        }
        names.push(object.key);
    }
    Ok((names, damage))
}

pub fn is_damaged(damage: &Damage, pack: &str, id: &BlobId) -> bool {
    damage.get(pack).is_some_and(|ids| ids.contains(id))
}

/// Records the locations of `found` that no record names yet; returns how
/// many it added (none: nothing is written).
pub fn record(repo: &Repo, found: &Damage) -> CoreResult<u64> {
    let (_, known) = read_all(repo.storage.as_ref(), &repo.keys)?;
    let mut new = Damage::new();
    for (pack, ids) in found {
        for id in ids.iter().filter(|id| !is_damaged(&known, pack, id)) {
            new.entry(pack.clone()).or_default().insert(*id);
        }
    }
    let count = new.values().map(|ids| ids.len() as u64).sum();
    if count > 0 {
        repo.write_object(&format!("{DAMAGE_PREFIX}{}", new_name()), &encode(&new))?;
    }
    Ok(count)
}

/// The error for a blob whose only copies are recorded as damaged.
pub fn damaged_blob(repo: &Repo, id: &BlobId) -> CoreError {
    CoreError::new(
        "ERR_INTEGRITY",
        format!(
            "chunk {} of repository {} is damaged (verify recorded it; `powdb-backup repair --repo` drops it, and the next backup of a source that still holds it stores it again)",
            super::short(id),
            repo.location()
        ),
    )
}
