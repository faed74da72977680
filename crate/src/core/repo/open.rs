//! Creating and opening repositories, and their password keys.
use super::config::{
    Compression, Config, CONFIG_KEY, DEFAULT_CHUNKING, ENCRYPTION_NONE, ENCRYPTION_XCHACHA, FORMAT, KIND,
};
use super::keys::{self, random_bytes, KdfParams, KeyFile, Keys, MASTER_LEN};
use super::storage::Storage;
use super::{hex, Repo};
use crate::core::error::{CoreError, CoreResult};

pub const KEYS_PREFIX: &str = "keys/";

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// How to create a repository.
pub struct InitOptions<'a> {
    pub compression: Compression,
    /// Encrypt with a master key this password wraps.
    pub password: Option<&'a str>,
    pub kdf: KdfParams,
    /// The format to write: `FORMAT` unless an older one is asked for, so
    /// that an older powdb-backup can read the repository (3 at the oldest).
    pub format: Option<u32>,
}

fn write_key(storage: &dyn Storage, file: &KeyFile) -> CoreResult<String> {
    let id = hex(&random_bytes::<8>());
    let text = serde_json::to_vec_pretty(file).expect("key files serialize");
    storage.put_new(&format!("{KEYS_PREFIX}{id}"), &text)?;
    Ok(id)
}

/// Creates a repository in empty storage; `config` is written last, so a
/// killed init leaves no repository (and can be removed and rerun), and a
/// refused or failed one leaves behind no directory it created.
pub fn init(storage: Box<dyn Storage>, options: InitOptions) -> CoreResult<Repo> {
    let created = storage.prepare_new()?;
    init_in(storage, options).inspect_err(|_| {
        if let Some(dir) = created {
            let _ = std::fs::remove_dir_all(dir);
        }
    })
}

fn init_in(storage: Box<dyn Storage>, options: InitOptions) -> CoreResult<Repo> {
    if !storage.list(KEYS_PREFIX)?.is_empty() || storage.get(CONFIG_KEY).is_ok() {
        return Err(CoreError::new("ERR_DEST_NOT_EMPTY", format!("{} already holds a repository", storage.location())));
    }
    let format = options.format.unwrap_or(FORMAT);
    if !(3..=FORMAT).contains(&format) {
        return Err(CoreError::new(
            "ERR_INVALID_ARG",
            format!("repository format {format} cannot be created: ask for 3 to {FORMAT}"),
        ));
    }
    let id = hex(&random_bytes::<16>());
    let (keys, key_id, id_key_hex) = match options.password {
        Some(password) => {
            let master: [u8; MASTER_LEN] = random_bytes();
            let file = keys::wrap(&master, password, &id, options.kdf, now())?;
            let key_id = write_key(storage.as_ref(), &file)?;
            (Keys::encrypted(&master), Some(key_id), None)
        }
        None => {
            let id_key: [u8; 32] = random_bytes();
            (Keys::plain(id_key), None, Some(hex(&id_key)))
        }
    };
    let config = Config {
        format,
        kind: KIND.into(),
        id,
        created_unix_secs: now(),
        compression: options.compression.name(),
        encryption: if keys.is_encrypted() { ENCRYPTION_XCHACHA } else { ENCRYPTION_NONE }.into(),
        chunking: DEFAULT_CHUNKING,
        id_key_hex,
    };
    storage.put_new(CONFIG_KEY, &serde_json::to_vec_pretty(&config).expect("config serializes"))?;
    Ok(Repo::new(storage, config, keys, key_id))
}

/// The config of the repository in `storage`.
pub fn read_config(storage: &dyn Storage) -> CoreResult<Config> {
    let bytes = storage.get(CONFIG_KEY).map_err(|e| match e.code.as_str() {
        // A store that cannot be reached or refuses us says nothing about the repository.
        code if code.starts_with("ERR_STORE") => e,
        code => {
            let location = storage.location();
            let message = match code {
                "ERR_MISSING_FILE" => format!(
                    "{location} is not a powdb-backup repository (no config): create one with `powdb-backup init`, or check the path"
                ),
                _ => format!("{location} is not a powdb-backup repository ({})", e.message),
            };
            CoreError::new("ERR_NOT_A_REPO", message)
        }
    })?;
    Config::parse(&bytes, &storage.location())
}

/// Names the key file an ERR_BAD_KEY_FILE comes from.
fn in_key_file(e: CoreError, id: &str) -> CoreError {
    if e.code == "ERR_BAD_KEY_FILE" {
        CoreError::new(&e.code, format!("{KEYS_PREFIX}{id}: {}", e.message))
    } else {
        e
    }
}

/// Every key file: `(id, file)`.
pub fn key_files(storage: &dyn Storage) -> CoreResult<Vec<(String, KeyFile)>> {
    storage
        .list(KEYS_PREFIX)?
        .into_iter()
        .map(|o| {
            let id = o.key[KEYS_PREFIX.len()..].to_string();
            let file = serde_json::from_slice(&storage.get(&o.key)?)
                .map_err(|e| CoreError::new("ERR_BAD_KEY_FILE", format!("{KEYS_PREFIX}{id} is malformed: {e}")))?;
            Ok((id, file))
        })
        .collect()
}

/// Opens a repository (the password is needed when it is encrypted) and loads its index.
pub fn open(storage: Box<dyn Storage>, password: Option<&str>) -> CoreResult<Repo> {
    let config = read_config(storage.as_ref())?;
    let repo = match config.encryption.as_str() {
        ENCRYPTION_NONE => {
            let id_key = config
                .id_key_hex
                .as_deref()
                .and_then(keys::unhex)
                .and_then(|k| <[u8; 32]>::try_from(k).ok())
                .ok_or_else(|| CoreError::new("ERR_NOT_A_REPO", "the repository config has no valid id key"))?;
            if !storage.list(KEYS_PREFIX)?.is_empty() {
                return Err(CoreError::new(
                    "ERR_INTEGRITY",
                    format!("{} says it is not encrypted but holds keys: its config was altered", storage.location()),
                ));
            }
            Repo::new(storage, config, Keys::plain(id_key), None)
        }
        ENCRYPTION_XCHACHA => {
            let Some(password) = password else {
                return Err(CoreError::new(
                    "ERR_PASSWORD_REQUIRED",
                    format!("repository {} is encrypted: give its password (POWDB_BACKUP_PASSWORD, --password-file, or the prompt)", storage.location()),
                ));
            };
            let files = key_files(storage.as_ref())?;
            let mut found = None;
            for (id, file) in &files {
                if let Some(master) = keys::unwrap(file, password, &config.id).map_err(|e| in_key_file(e, id))? {
                    found = Some((id.clone(), master));
                    break;
                }
            }
            let (key_id, master) = found.ok_or_else(|| {
                CoreError::new(
                    "ERR_BAD_PASSWORD",
                    format!(
                        "the password opens none of the {} key(s) of repository {}",
                        files.len(),
                        storage.location()
                    ),
                )
            })?;
            Repo::new(storage, config, Keys::encrypted(&master), Some(key_id))
        }
        other => {
            return Err(CoreError::new("ERR_UNSUPPORTED_FORMAT", format!("unknown repository encryption {other:?}")));
        }
    };
    repo.reload_index()?;
    Ok(repo)
}

impl Repo {
    fn master(&self, password: &str) -> CoreResult<[u8; MASTER_LEN]> {
        // The master key is not kept in memory beyond the cipher; unwrap it again.
        for (id, file) in key_files(self.storage.as_ref())? {
            if let Some(master) = keys::unwrap(&file, password, &self.config.id).map_err(|e| in_key_file(e, &id))? {
                return Ok(master);
            }
        }
        Err(CoreError::new("ERR_BAD_PASSWORD", "the current password opens none of the repository's keys"))
    }

    /// Adds a password: the master key wrapped anew. Needs a current password.
    pub fn add_key(&self, current: &str, new_password: &str, kdf: KdfParams) -> CoreResult<String> {
        if !self.keys.is_encrypted() {
            return Err(CoreError::new(
                "ERR_NOT_ENCRYPTED",
                format!("repository {} is not encrypted", self.location()),
            ));
        }
        let master = self.master(current)?;
        let file = keys::wrap(&master, new_password, &self.config.id, kdf, now())?;
        write_key(self.storage.as_ref(), &file)
    }

    /// Removes a key; the last one never (the data would be lost).
    pub fn remove_key(&self, id: &str) -> CoreResult<()> {
        let files = key_files(self.storage.as_ref())?;
        if !files.iter().any(|(k, _)| k == id) {
            return Err(CoreError::new("ERR_NO_KEY", format!("repository {} has no key {id}", self.location())));
        }
        if files.len() == 1 {
            return Err(CoreError::new(
                "ERR_LAST_KEY",
                "refusing to remove the only key: the repository could never be opened again",
            ));
        }
        self.storage.delete(&format!("{KEYS_PREFIX}{id}"))
    }
}
