//! Settings from the AWS shared files (`~/.aws/credentials`, `~/.aws/config`)
//! for the profile `AWS_PROFILE` names (else `default`), which `object_store`
//! does not read. The environment still wins, as with the AWS CLI and SDKs:
//! a profile only fills in what `AWS_*` variables leave unset.
use crate::core::error::{CoreError, CoreResult};
use std::collections::HashMap;
use std::path::PathBuf;

/// What a profile sets (each `None` when the files do not say).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Profile {
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
}

type Section = HashMap<String, String>;

/// The `[name]` sections of an INI file, keys lowercased (comments and
/// continuation lines of nested settings are skipped).
fn sections(text: &str) -> HashMap<String, Section> {
    let mut out: HashMap<String, Section> = HashMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        if let Some(name) = trimmed.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
            let name = name.trim().to_string();
            out.entry(name.clone()).or_default();
            current = Some(name);
            continue;
        }
        if line.starts_with([' ', '\t']) {
            continue; // a nested setting (for example under `s3 =`)
        }
        if let (Some(section), Some((key, value))) = (&current, trimmed.split_once('=')) {
            let value = value.trim();
            if !value.is_empty() {
                out.get_mut(section).expect("section exists").insert(key.trim().to_lowercase(), value.to_string());
            }
        }
    }
    out
}

/// Reads the profile's settings. `env` looks up a variable, `read` a file's
/// text (None when it does not exist). A profile named by `AWS_PROFILE` that
/// neither file has is an error; a missing `default` is not.
pub fn resolve(env: &dyn Fn(&str) -> Option<String>, read: &dyn Fn(&PathBuf) -> Option<String>) -> CoreResult<Profile> {
    let home = env("HOME").map(PathBuf::from);
    let file = |var: &str, name: &str| {
        env(var).map(PathBuf::from).or_else(|| home.as_ref().map(|h| h.join(".aws").join(name)))
    };
    let named = env("AWS_PROFILE").filter(|p| !p.is_empty());
    let profile = named.clone().unwrap_or_else(|| "default".into());

    let credentials_path = file("AWS_SHARED_CREDENTIALS_FILE", "credentials");
    let config_path = file("AWS_CONFIG_FILE", "config");
    let credentials = credentials_path.as_ref().and_then(read).map(|t| sections(&t)).unwrap_or_default();
    let config = config_path.as_ref().and_then(read).map(|t| sections(&t)).unwrap_or_default();
    // The config file names profiles `[profile x]`, except `[default]`.
    let in_config = config
        .get(&format!("profile {profile}"))
        .or_else(|| (profile == "default").then(|| config.get("default")).flatten());
    let in_credentials = credentials.get(&profile);
    if named.is_some() && in_config.is_none() && in_credentials.is_none() {
        let shown = |p: &Option<PathBuf>| p.as_ref().map_or("(no HOME)".into(), |p| p.display().to_string());
        return Err(CoreError::new(
            "ERR_INVALID_ARG",
            format!(
                "AWS_PROFILE names the profile {profile:?}, which neither {} nor {} has",
                shown(&credentials_path),
                shown(&config_path)
            ),
        ));
    }
    // The credentials file wins over the config file for keys.
    let get =
        |key: &str| in_credentials.and_then(|s| s.get(key)).or_else(|| in_config.and_then(|s| s.get(key))).cloned();
    Ok(Profile {
        access_key_id: get("aws_access_key_id"),
        secret_access_key: get("aws_secret_access_key"),
        session_token: get("aws_session_token"),
        region: in_config.and_then(|s| s.get("region")).cloned(),
        endpoint_url: in_config.and_then(|s| s.get("endpoint_url")).cloned(),
    })
}

/// The profile of this process's environment and files.
pub fn from_environment() -> CoreResult<Profile> {
    resolve(&|var| std::env::var(var).ok(), &|path| std::fs::read_to_string(path).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CREDENTIALS: &str = "[default]\naws_access_key_id = AKDEFAULT\naws_secret_access_key = default-secret\n\n\
        # a comment\n[backup]\naws_access_key_id=AKBACKUP\naws_secret_access_key=backup-secret\naws_session_token = tok\n";
    const CONFIG: &str = "[default]\nregion = eu-west-1\n[profile backup]\nregion = us-west-2\nendpoint_url = http://127.0.0.1:9000\n\
        s3 =\n  addressing_style = path\n[profile only-config]\naws_access_key_id = AKCONFIG\naws_secret_access_key = config-secret\n";

    fn with(vars: &[(&str, &str)]) -> CoreResult<Profile> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        resolve(&|var| vars.get(var).cloned(), &|path| match path.to_str() {
            Some("/home/u/.aws/credentials") => Some(CREDENTIALS.into()),
            Some("/home/u/.aws/config") => Some(CONFIG.into()),
            _ => None,
        })
    }

    #[test]
    fn reads_the_default_profile() {
        let p = with(&[("HOME", "/home/u")]).unwrap();
        assert_eq!(p.access_key_id.as_deref(), Some("AKDEFAULT"));
        assert_eq!(p.secret_access_key.as_deref(), Some("default-secret"));
        assert_eq!((p.session_token, p.region.as_deref(), p.endpoint_url), (None, Some("eu-west-1"), None));
    }

    #[test]
    fn reads_a_named_profile_from_both_files() {
        let p = with(&[("HOME", "/home/u"), ("AWS_PROFILE", "backup")]).unwrap();
        assert_eq!(p.access_key_id.as_deref(), Some("AKBACKUP"));
        assert_eq!(p.session_token.as_deref(), Some("tok"));
        assert_eq!(p.region.as_deref(), Some("us-west-2"));
        assert_eq!(p.endpoint_url.as_deref(), Some("http://127.0.0.1:9000"));
        let c = with(&[("HOME", "/home/u"), ("AWS_PROFILE", "only-config")]).unwrap();
        assert_eq!(c.access_key_id.as_deref(), Some("AKCONFIG"));
    }

    #[test]
    fn a_named_profile_that_is_nowhere_is_an_error() {
        let e = with(&[("HOME", "/home/u"), ("AWS_PROFILE", "nope")]).unwrap_err();
        assert_eq!(e.code, "ERR_INVALID_ARG");
        assert!(e.message.contains("\"nope\"") && e.message.contains("/home/u/.aws/credentials"), "{}", e.message);
        // No files and no profile asked for: nothing set, no error.
        assert_eq!(with(&[]).unwrap(), Profile::default());
    }

    #[test]
    fn the_file_variables_move_the_files() {
        let p =
            with(&[("AWS_SHARED_CREDENTIALS_FILE", "/home/u/.aws/credentials"), ("AWS_PROFILE", "backup")]).unwrap();
        assert_eq!((p.access_key_id.as_deref(), p.region), (Some("AKBACKUP"), None));
    }
}
