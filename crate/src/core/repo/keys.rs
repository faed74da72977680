//! The repository's secrets and what they protect. A plain repository has
//! only an id key (chunk ids are keyed hashes, so equal content dedups while
//! ids reveal nothing without the key); an encrypted one also has a cipher
//! key, and both live in a random master key that each password wraps.
use crate::core::error::{CoreError, CoreResult};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

pub const ID_LEN: usize = 32;
pub type BlobId = [u8; ID_LEN];
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
/// What sealing adds to a blob of an encrypted repository.
pub const SEAL_OVERHEAD: usize = NONCE_LEN + TAG_LEN;
/// A plain repository's objects end with a keyed checksum instead.
const CHECKSUM_LEN: usize = 32;
/// Master key: 32 bytes cipher key, 32 bytes id key.
pub const MASTER_LEN: usize = 64;

pub struct Keys {
    cipher: Option<XChaCha20Poly1305>,
    id_key: [u8; 32],
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new object name: random, so concurrent or repeated writers never collide.
pub fn new_name() -> String {
    hex(&random_bytes::<32>())
}

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    getrandom::getrandom(&mut out).expect("the OS random source works");
    out
}

fn integrity(what: &str) -> CoreError {
    CoreError::new("ERR_INTEGRITY", format!("{what} failed its authentication check: damaged or tampered with"))
}

impl Keys {
    /// An encrypted repository's keys from its master key.
    pub fn encrypted(master: &[u8; MASTER_LEN]) -> Keys {
        let cipher = XChaCha20Poly1305::new_from_slice(&master[..32]).expect("32-byte key");
        Keys { cipher: Some(cipher), id_key: master[32..].try_into().expect("32-byte id key") }
    }

    /// A plain repository's keys: only the id key.
    pub fn plain(id_key: [u8; 32]) -> Keys {
        Keys { cipher: None, id_key }
    }

    pub fn is_encrypted(&self) -> bool {
        self.cipher.is_some()
    }

    /// The id of a chunk: BLAKE3 keyed with the repository's id key.
    pub fn id(&self, data: &[u8]) -> BlobId {
        *blake3::keyed_hash(&self.id_key, data).as_bytes()
    }

    /// The seed of the content-defined chunker, so that chunk boundaries do not
    /// fingerprint known content across repositories.
    pub fn chunker_seed(&self) -> u64 {
        let digest = blake3::keyed_hash(&self.id_key, b"powdb-backup fastcdc seed");
        u64::from_le_bytes(digest.as_bytes()[..8].try_into().expect("8 bytes"))
    }

    /// Seals an object bound to `context` (its name, or a blob's id): encrypted
    /// and authenticated, or in a plain repository followed by a keyed checksum.
    pub fn seal(&self, plain: &[u8], context: &[u8]) -> Vec<u8> {
        match &self.cipher {
            Some(cipher) => encrypt(cipher, plain, context),
            None => {
                let mut out = Vec::with_capacity(plain.len() + CHECKSUM_LEN);
                out.extend_from_slice(plain);
                out.extend_from_slice(&self.checksum(plain, context));
                out
            }
        }
    }

    /// Opens what `seal` made; `what` names it in the error.
    pub fn open(&self, sealed: &[u8], context: &[u8], what: &str) -> CoreResult<Vec<u8>> {
        match &self.cipher {
            Some(cipher) => decrypt(cipher, sealed, context).ok_or_else(|| integrity(what)),
            None => {
                let split = sealed.len().checked_sub(CHECKSUM_LEN).ok_or_else(|| integrity(what))?;
                let (plain, sum) = sealed.split_at(split);
                if self.checksum(plain, context) != sum {
                    return Err(integrity(what));
                }
                Ok(plain.to_vec())
            }
        }
    }

    /// Seals a blob: encrypted with its id as context, or stored as is in a
    /// plain repository (its id, a keyed hash of its content, checks it).
    pub fn seal_blob(&self, data: Vec<u8>, id: &BlobId) -> Vec<u8> {
        match &self.cipher {
            Some(cipher) => encrypt(cipher, &data, id),
            None => data,
        }
    }

    /// The plaintext of a sealed blob: `None` in a plain repository, where the
    /// stored bytes are the plaintext (no copy).
    pub fn open_blob(&self, sealed: &[u8], id: &BlobId, what: &str) -> CoreResult<Option<Vec<u8>>> {
        match &self.cipher {
            Some(cipher) => decrypt(cipher, sealed, id).map(Some).ok_or_else(|| integrity(what)),
            None => Ok(None),
        }
    }

    fn checksum(&self, plain: &[u8], context: &[u8]) -> [u8; CHECKSUM_LEN] {
        let mut hasher = blake3::Hasher::new_keyed(&self.id_key);
        hasher.update(&(context.len() as u64).to_le_bytes());
        hasher.update(context);
        hasher.update(plain);
        *hasher.finalize().as_bytes()
    }
}

fn encrypt(cipher: &XChaCha20Poly1305, plain: &[u8], context: &[u8]) -> Vec<u8> {
    let nonce: [u8; NONCE_LEN] = random_bytes();
    let sealed = cipher
        .encrypt(XNonce::from_slice(&nonce), Payload { msg: plain, aad: context })
        .expect("XChaCha20-Poly1305 encrypts any length we use");
    let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    out
}

fn decrypt(cipher: &XChaCha20Poly1305, sealed: &[u8], context: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return None;
    }
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    cipher.decrypt(XNonce::from_slice(nonce), Payload { msg: body, aad: context }).ok()
}

/// argon2id cost of a password key (OWASP's recommended minimum: 46 MiB, one pass).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KdfParams {
    pub m_kib: u32,
    pub t: u32,
    pub p: u32,
}

pub const DEFAULT_KDF: KdfParams = KdfParams { m_kib: 46 * 1024, t: 1, p: 1 };

/// A password's key file: the master key wrapped by a key derived from it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct KeyFile {
    pub kdf: String,
    #[serde(flatten)]
    pub params: KdfParams,
    pub salt_hex: String,
    pub wrapped_hex: String,
    pub created_unix_secs: u64,
}

pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

fn derive(password: &str, salt: &[u8], params: KdfParams) -> CoreResult<XChaCha20Poly1305> {
    let bad = |e: argon2::Error| CoreError::new("ERR_BAD_KEY_FILE", format!("cannot derive the password key: {e}"));
    let argon = argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        argon2::Params::new(params.m_kib, params.t, params.p, Some(32)).map_err(bad)?,
    );
    let mut key = [0u8; 32];
    argon.hash_password_into(password.as_bytes(), salt, &mut key).map_err(bad)?;
    Ok(XChaCha20Poly1305::new_from_slice(&key).expect("32-byte key"))
}

/// Wraps `master` with `password`; `repo_id` binds the key file to its repository.
pub fn wrap(
    master: &[u8; MASTER_LEN],
    password: &str,
    repo_id: &str,
    params: KdfParams,
    now: u64,
) -> CoreResult<KeyFile> {
    let salt: [u8; 16] = random_bytes();
    let kek = derive(password, &salt, params)?;
    let wrapped = encrypt(&kek, master, repo_id.as_bytes());
    Ok(KeyFile {
        kdf: "argon2id".into(),
        params,
        salt_hex: hex(&salt),
        wrapped_hex: hex(&wrapped),
        created_unix_secs: now,
    })
}

/// The master key, if `password` opens this key file.
pub fn unwrap(file: &KeyFile, password: &str, repo_id: &str) -> CoreResult<Option<[u8; MASTER_LEN]>> {
    let bad = || CoreError::new("ERR_BAD_KEY_FILE", "a key file is malformed");
    if file.kdf != "argon2id" || file.params.m_kib > 4 << 20 || file.params.t > 64 || file.params.p > 64 {
        return Err(bad());
    }
    let salt = unhex(&file.salt_hex).ok_or_else(bad)?;
    let wrapped = unhex(&file.wrapped_hex).ok_or_else(bad)?;
    let kek = derive(password, &salt, file.params)?;
    Ok(decrypt(&kek, &wrapped, repo_id.as_bytes()).and_then(|m| m.try_into().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: KdfParams = KdfParams { m_kib: 64, t: 1, p: 1 };

    #[test]
    fn sealing_round_trips_and_refuses_any_flipped_byte_or_other_context() {
        for keys in [Keys::plain(random_bytes()), Keys::encrypted(&random_bytes())] {
            let sealed = keys.seal(b"row data", b"snapshots/x");
            assert_eq!(keys.open(&sealed, b"snapshots/x", "x").unwrap(), b"row data");
            assert_eq!(keys.open(&sealed, b"snapshots/y", "x").unwrap_err().code, "ERR_INTEGRITY");
            for i in 0..sealed.len() {
                let mut bad = sealed.clone();
                bad[i] ^= 1;
                assert!(keys.open(&bad, b"snapshots/x", "x").is_err(), "byte {i}");
            }
        }
        let keys = Keys::encrypted(&random_bytes());
        let id = keys.id(b"chunk");
        let sealed = keys.seal_blob(b"chunk".to_vec(), &id);
        assert!(!sealed.windows(5).any(|w| w == b"chunk"));
        assert_eq!(keys.open_blob(&sealed, &id, "blob").unwrap().unwrap(), b"chunk");
    }

    #[test]
    fn a_password_unwraps_only_its_own_key_file() {
        let master: [u8; MASTER_LEN] = random_bytes();
        let file = wrap(&master, "secret", "repo1", FAST, 0).unwrap();
        assert_eq!(unwrap(&file, "secret", "repo1").unwrap(), Some(master));
        assert_eq!(unwrap(&file, "wrong", "repo1").unwrap(), None);
        assert_eq!(unwrap(&file, "secret", "repo2").unwrap(), None);
    }
}
