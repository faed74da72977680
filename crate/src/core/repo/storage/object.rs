//! A repository on S3-compatible object storage (`s3://bucket/prefix`),
//! through the `object_store` crate. Objects are written whole under new
//! names; "create if absent" is a conditional `If-None-Match: *` PUT where the
//! server honours it, otherwise a HEAD before the PUT (the repository's
//! unique names and writer lock then carry the guarantee).
use super::{missing, ObjectInfo, Storage};
use crate::core::error::{CoreError, CoreResult};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, RetryConfig, UpdateVersion};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

/// One runtime for every object-store repository of the process: its two
/// workers drive the HTTP connections; callers block on it from the libuv
/// and rayon threads (never from inside the runtime).
static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("powdb-backup-s3")
        .enable_all()
        .build()
        .expect("a tokio runtime starts")
});

/// Where an `s3://` repository is and how to reach it.
#[derive(Debug, Clone, Default)]
pub struct ObjectStoreConfig {
    pub bucket: String,
    /// Key prefix without leading or trailing `/` (may be empty).
    pub prefix: String,
    /// Overrides `AWS_ENDPOINT_URL` (for example `http://127.0.0.1:8333`).
    pub endpoint: Option<String>,
    /// Use `If-None-Match: *` for create-if-absent (off: HEAD, then PUT).
    pub conditional_writes: bool,
    /// Requests in flight at once (uploads of packs, ranged reads).
    pub transfers: usize,
}

/// Default requests in flight: enough to hide a round trip, at 8 MiB per
/// pack upload well inside the memory bound.
pub const DEFAULT_TRANSFERS: usize = 4;
/// More would only add memory (each upload holds its pack).
pub const MAX_TRANSFERS: usize = 16;

impl ObjectStoreConfig {
    /// Parses `s3://bucket[/prefix]`.
    pub fn parse(url: &str) -> CoreResult<ObjectStoreConfig> {
        let bad = || CoreError::new("ERR_INVALID_ARG", format!("{url:?} is not an s3://<bucket>/<prefix> URL"));
        let rest = url.strip_prefix("s3://").ok_or_else(bad)?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let prefix = prefix.trim_matches('/');
        let plain = |part: &str| !part.is_empty() && part != "." && part != "..";
        if bucket.is_empty() || (!prefix.is_empty() && !prefix.split('/').all(plain)) {
            return Err(bad());
        }
        Ok(ObjectStoreConfig {
            bucket: bucket.into(),
            prefix: prefix.into(),
            endpoint: None,
            conditional_writes: true,
            transfers: DEFAULT_TRANSFERS,
        })
    }
}

pub struct ObjectStoreDir {
    shared: Arc<Shared>,
    transfers: usize,
    uploads: Uploads,
}

/// What requests need, shared with the upload tasks.
struct Shared {
    store: AmazonS3,
    prefix: String,
    location: String,
    /// Where the endpoint is, for messages (never a credential).
    endpoint: String,
    /// Whether the server refuses to overwrite on `If-None-Match: *`: found
    /// by a probe before the first create (readers never write one), or set off.
    conditional: std::sync::OnceLock<bool>,
    /// Whether the server refuses a PUT whose `If-Match` names another
    /// version: found by a probe before the first `replace_if`, or set off.
    conditional_update: std::sync::OnceLock<bool>,
    /// Credentials in use, never to appear in a message.
    secrets: Vec<String>,
    /// Credentials were given (environment, profile, web identity, container):
    /// a refusal without them means none were found.
    named_credentials: bool,
}

/// Deferred uploads running in the background: at most `transfers` at once
/// (a writer waits for a free slot, so memory stays bounded).
struct Uploads {
    slots: Arc<Semaphore>,
    running: Mutex<Vec<JoinHandle<CoreResult<()>>>>,
}

/// How often a wait for uploads looks at the cancellation token.
const CANCEL_POLL: Duration = Duration::from_millis(100);

/// The endpoint: the given one, else the environment's, else the profile's;
/// plain HTTP only when AWS_ALLOW_HTTP says so.
fn resolved_endpoint(config: &ObjectStoreConfig, from_profile: Option<String>) -> CoreResult<Option<String>> {
    let set = |var: &str| std::env::var(var).ok().filter(|v| !v.is_empty());
    let endpoint =
        config.endpoint.clone().or_else(|| set("AWS_ENDPOINT_URL")).or_else(|| set("AWS_ENDPOINT")).or(from_profile);
    if let Some(endpoint) = &endpoint {
        // object_store refuses plain HTTP with a bare "builder error" at the first request.
        let allowed = set("AWS_ALLOW_HTTP").is_some_and(|v| v.eq_ignore_ascii_case("true"));
        if endpoint.to_ascii_lowercase().starts_with("http://") && !allowed {
            return Err(CoreError::new(
                "ERR_INVALID_ARG",
                format!("endpoint {endpoint} is plain HTTP, which sends requests unencrypted: set AWS_ALLOW_HTTP=true to allow it (a server on this machine or a trusted network), or use https://"),
            ));
        }
    }
    Ok(endpoint)
}

impl ObjectStoreDir {
    /// Connects lazily: nothing is sent before the first operation.
    pub fn new(config: &ObjectStoreConfig) -> CoreResult<ObjectStoreDir> {
        // TLS through ring (builds faster than aws-lc-rs); once per process.
        static TLS: std::sync::Once = std::sync::Once::new();
        TLS.call_once(|| {
            let _ = rustls::crypto::ring::default_provider().install_default();
        });
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(&config.bucket).with_retry(RetryConfig {
            max_retries: 4,
            retry_timeout: Duration::from_secs(20),
            ..RetryConfig::default()
        });
        let set = |var: &str| std::env::var(var).ok().filter(|v| !v.is_empty());
        let profile = super::aws_profile::from_environment()?;
        let mut secrets: Vec<String> =
            ["AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID"].iter().filter_map(|v| set(v)).collect();
        if set("AWS_ACCESS_KEY_ID").is_none() {
            if let (Some(id), Some(secret)) = (profile.access_key_id, profile.secret_access_key) {
                secrets.extend([id.clone(), secret.clone()]);
                builder = builder.with_access_key_id(id).with_secret_access_key(secret);
                if let Some(token) = profile.session_token {
                    secrets.push(token.clone());
                    builder = builder.with_token(token);
                }
            }
        }
        let endpoint = resolved_endpoint(config, profile.endpoint_url)?;
        if let Some(endpoint) = &endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if set("AWS_REGION").is_none() && set("AWS_DEFAULT_REGION").is_none() {
            builder = builder.with_region(profile.region.as_deref().unwrap_or("us-east-1"));
        }
        let endpoint = endpoint.unwrap_or_else(|| "AWS S3".into());
        // Without keys in the environment or a profile, object_store asks the
        // instance metadata service, whose refusal off EC2 reads "access denied".
        let named_credentials = set("AWS_ACCESS_KEY_ID").is_some()
            || secrets.len() >= 2
            || [
                "AWS_WEB_IDENTITY_TOKEN_FILE",
                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            ]
            .iter()
            .any(|v| set(v).is_some());
        let scrub = |text: &str| scrub(text, &secrets);
        let location = if config.prefix.is_empty() {
            format!("s3://{}", config.bucket)
        } else {
            format!("s3://{}/{}", config.bucket, config.prefix)
        };
        let store = builder.build().map_err(|e| {
            CoreError::new(
                "ERR_INVALID_ARG",
                format!("cannot use {location} (endpoint {endpoint}): {}", scrub(&e.to_string())),
            )
        })?;
        let prefix = if config.prefix.is_empty() { String::new() } else { format!("{}/", config.prefix) };
        let transfers = config.transfers.clamp(1, MAX_TRANSFERS);
        Ok(ObjectStoreDir {
            shared: Arc::new(Shared {
                store,
                secrets,
                prefix,
                location,
                endpoint,
                named_credentials,
                conditional: if config.conditional_writes { std::sync::OnceLock::new() } else { false.into() },
                conditional_update: if config.conditional_writes { std::sync::OnceLock::new() } else { false.into() },
            }),
            transfers,
            uploads: Uploads { slots: Arc::new(Semaphore::new(transfers)), running: Mutex::new(Vec::new()) },
        })
    }

    /// Whether the server refuses a second conditional create of one key (some,
    /// such as Garage, silently ignore `If-None-Match`), for `info`: known
    /// after this handle's first write; else asked with two creates of a probe
    /// object, then removed (one a killed reader leaves, the next writer removes).
    fn probe(&self) -> CoreResult<bool> {
        if let Some(known) = self.shared.conditional.get() {
            return Ok(*known);
        }
        let shared = &self.shared;
        let key = format!("{PROBE_PREFIX}{}", super::super::keys::new_name());
        let honoured = block_on(async {
            shared.create(&key, PutPayload::from_static(b"1"), true).await?;
            let second = shared.create(&key, PutPayload::from_static(b"2"), true).await;
            shared.delete(&key).await?;
            match second {
                Ok(()) => Ok(false),
                Err(e) if e.code == "EEXIST" => Ok(true),
                Err(e) => Err(e),
            }
        })?;
        Ok(*shared.conditional.get_or_init(|| honoured))
    }

    /// Whether the server refuses a replace whose `If-Match` names a version
    /// that is not there: a probe object written, replaced on a made-up ETag,
    /// then removed (one a killed process leaves, the next writer removes).
    fn probe_update(&self) -> CoreResult<bool> {
        if let Some(known) = self.shared.conditional_update.get() {
            return Ok(*known);
        }
        let shared = &self.shared;
        let key = format!("{PROBE_PREFIX}{}", super::super::keys::new_name());
        let honoured = block_on(async {
            let path = shared.path(&key)?;
            shared
                .store
                .put(&path, PutPayload::from_static(b"1"))
                .await
                .map_err(|e| shared.error("cannot write", &key, e))?;
            let made_up = "\"00000000000000000000000000000000\"";
            let second = shared.replace_if(&key, PutPayload::from_static(b"2"), made_up).await;
            shared.delete(&key).await?;
            match second {
                Ok(()) => Ok(false),
                Err(e) if e.code == "ECHANGED" => Ok(true),
                Err(e) => Err(e),
            }
        })?;
        Ok(*shared.conditional_update.get_or_init(|| honoured))
    }

    /// Creates `key` (blocking); the first create also finds out whether the
    /// server honours conditional writes.
    fn create(&self, key: &str, payload: PutPayload) -> CoreResult<()> {
        let shared = &self.shared;
        match shared.conditional.get() {
            Some(conditional) => block_on(shared.create(key, payload, *conditional)),
            None => {
                let honoured = block_on(shared.create_learning(key, payload))?;
                shared.conditional.get_or_init(|| honoured);
                Ok(())
            }
        }
    }

    fn running(&self) -> std::sync::MutexGuard<'_, Vec<JoinHandle<CoreResult<()>>>> {
        self.uploads.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for `work`, looking at the cancellation token meanwhile; an abort
    /// also stops every background upload.
    fn wait<T>(&self, work: impl std::future::Future<Output = T>) -> CoreResult<T> {
        let mut work = std::pin::pin!(work);
        loop {
            if let Err(e) = crate::core::cancel::check() {
                self.abort_pending();
                return Err(e);
            }
            // The timer is made inside the runtime (it needs its clock).
            if let Ok(done) = RUNTIME.block_on(async { tokio::time::timeout(CANCEL_POLL, &mut work).await }) {
                return Ok(done);
            }
        }
    }

    /// The first failure among finished uploads (the others keep running).
    fn reap_finished(&self) -> CoreResult<()> {
        let finished: Vec<_> = {
            let mut running = self.running();
            let (done, busy) = running.drain(..).partition(|h: &JoinHandle<_>| h.is_finished());
            *running = busy;
            done
        };
        finished.into_iter().try_for_each(|h| joined(&self.shared, RUNTIME.block_on(h)))
    }
}

/// An upload task's outcome (a panicked or aborted task is a failed upload).
fn joined(shared: &Shared, result: Result<CoreResult<()>, tokio::task::JoinError>) -> CoreResult<()> {
    result
        .unwrap_or_else(|e| Err(CoreError::new("ERR_STORE", format!("an upload to {} stopped: {e}", shared.location))))
}

impl Shared {
    fn path(&self, key: &str) -> CoreResult<StorePath> {
        let plain = |part: &str| !part.is_empty() && part != "." && part != "..";
        if !key.split('/').all(plain) {
            return Err(CoreError::new("ERR_INVALID_ARG", format!("bad repository object name {key:?}")));
        }
        StorePath::parse(format!("{}{key}", self.prefix))
            .map_err(|e| CoreError::new("ERR_INVALID_ARG", format!("bad repository object name {key:?}: {e}")))
    }

    /// A store error as a stable code, naming the endpoint and bucket, never a secret.
    fn error(&self, what: &str, key: &str, e: object_store::Error) -> CoreError {
        let text = scrub(&e.to_string(), &self.secrets);
        let has = |word: &str| text.contains(word);
        // S3 error codes first: object_store files a refused list or a failed
        // PUT under a generic error, so the variant alone does not tell (and
        // versitygw answers an unknown access key with 404 XAdminUserNotFound).
        let (code, why) =
            if ["SignatureDoesNotMatch", "InvalidAccessKeyId", "InvalidToken", "ExpiredToken", "XAdminUserNotFound"]
                .iter()
                .any(|w| has(w))
            {
                ("ERR_STORE_AUTH", format!("the credentials were refused: {text}"))
            } else if has("NoSuchBucket") {
                ("ERR_STORE_NO_BUCKET", "the bucket does not exist".to_string())
            } else {
                match &e {
                    object_store::Error::NotFound { .. } => return missing(&self.location, key),
                    object_store::Error::AlreadyExists { .. } => ("EEXIST", "it already exists".to_string()),
                    object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. } => {
                        ("ERR_STORE_DENIED", format!("access denied: {text}"))
                    }
                    _ if has("AccessDenied") || has("403 Forbidden") => {
                        ("ERR_STORE_DENIED", format!("access denied: {text}"))
                    }
                    _ if [
                        "SlowDown",
                        "503 Service Unavailable",
                        "429 Too Many Requests",
                        "TooManyRequests",
                        "RequestLimitExceeded",
                    ]
                    .iter()
                    .any(|w| has(w)) =>
                    {
                        ("ERR_STORE_THROTTLED", format!("the server kept throttling requests: {text}"))
                    }
                    _ if is_unreachable(&e) => {
                        ("ERR_STORE_UNREACHABLE", format!("the endpoint cannot be reached: {text}"))
                    }
                    _ => ("ERR_STORE", text),
                }
            };
        if !self.named_credentials && matches!(code, "ERR_STORE_DENIED" | "ERR_STORE_AUTH" | "ERR_STORE") {
            return CoreError::new(
                "ERR_STORE_AUTH",
                format!(
                    "{what} {key} in {} (endpoint {}): no S3 credentials were found: none in the environment (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), none in ~/.aws/credentials or ~/.aws/config (profile {}), and the instance metadata service gave none; set one of them ({why})",
                    self.location,
                    self.endpoint,
                    std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".into())
                ),
            );
        }
        CoreError::new(code, format!("{what} {key} in {} (endpoint {}): {why}", self.location, self.endpoint))
    }

    /// Creates `key` while it is unknown whether the server honours
    /// `If-None-Match`: a HEAD first (so nothing is overwritten either way),
    /// the conditional PUT, then the same PUT again, which such a server
    /// refuses (one that accepts it rewrote the same bytes). Returns whether
    /// the server honours it; leaves no other object behind.
    async fn create_learning(&self, key: &str, payload: PutPayload) -> CoreResult<bool> {
        let path = self.path(key)?;
        match self.store.head(&path).await {
            Ok(_) => return Err(self.error("cannot write", key, exists(&path))),
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(self.error("cannot write", key, e)),
        }
        self.create(key, payload.clone(), true).await?;
        match self.create(key, payload, true).await {
            Ok(()) => Ok(false),
            Err(e) if e.code == "EEXIST" => Ok(true),
            Err(e) => Err(e),
        }
    }

    /// Publishes a new object: a conditional PUT, or HEAD then PUT.
    async fn create(&self, key: &str, payload: PutPayload, conditional: bool) -> CoreResult<()> {
        let path = self.path(key)?;
        let result = if conditional {
            let opts = PutOptions { mode: PutMode::Create, ..PutOptions::default() };
            self.store.put_opts(&path, payload, opts).await.map(|_| ())
        } else {
            match self.store.head(&path).await {
                Ok(_) => Err(exists(&path)),
                Err(object_store::Error::NotFound { .. }) => self.store.put(&path, payload).await.map(|_| ()),
                Err(e) => Err(e),
            }
        };
        result.map_err(|e| self.error("cannot write", key, e))
    }

    /// A PUT with `If-Match: <tag>`: `ECHANGED` when the server finds another version (or none).
    async fn replace_if(&self, key: &str, payload: PutPayload, tag: &str) -> CoreResult<()> {
        let path = self.path(key)?;
        let version = UpdateVersion { e_tag: Some(tag.to_string()), version: None };
        let opts = PutOptions { mode: PutMode::Update(version), ..PutOptions::default() };
        match self.store.put_opts(&path, payload, opts).await {
            Ok(_) => Ok(()),
            Err(object_store::Error::Precondition { .. }) => {
                Err(CoreError::new("ECHANGED", format!("{key} in {} changed meanwhile", self.location)))
            }
            Err(e) => Err(self.error("cannot write", key, e)),
        }
    }

    async fn delete(&self, key: &str) -> CoreResult<()> {
        match self.store.delete(&self.path(key)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error("cannot delete", key, e)),
        }
    }

    async fn get_range(&self, key: &str, offset: u64, len: usize) -> CoreResult<Vec<u8>> {
        let path = self.path(key)?;
        let bytes = self
            .store
            .get_range(&path, offset..offset + len as u64)
            .await
            .map_err(|e| self.error("cannot read", key, e))?;
        if bytes.len() != len {
            return Err(CoreError::new("ERR_INTEGRITY", format!("repository object {key} is truncated")));
        }
        Ok(Vec::from(bytes)) // no copy when the body arrived in one piece
    }
}

/// The error for a create that found the object there.
fn exists(path: &StorePath) -> object_store::Error {
    object_store::Error::AlreadyExists { path: path.to_string(), source: "exists (checked before writing)".into() }
}

/// Probe objects (top level) that `conditional_writes` creates and removes.
const PROBE_PREFIX: &str = "probe-";

fn block_on<T>(work: impl std::future::Future<Output = T>) -> T {
    RUNTIME.block_on(work)
}

/// Connection failures (refused, DNS, TLS, timeouts), not answers from the server.
fn is_unreachable(e: &object_store::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(r) = err.downcast_ref::<reqwest::Error>() {
            if r.is_connect() || r.is_timeout() {
                return true;
            }
        }
        let text = err.to_string();
        if text.contains("error sending request") || text.contains("Connection refused") || text.contains("dns error") {
            return true;
        }
        source = err.source();
    }
    false
}

/// Strips the credentials from a message.
fn scrub(text: &str, secrets: &[String]) -> String {
    secrets
        .iter()
        .filter(|s| s.len() >= 4)
        .fold(text.to_string(), |out, secret| out.replace(secret.as_str(), "<redacted>"))
}

impl Storage for ObjectStoreDir {
    fn location(&self) -> String {
        self.shared.location.clone()
    }

    fn put_new(&self, key: &str, data: &[u8]) -> CoreResult<()> {
        self.create(key, PutPayload::from(bytes_of(data)))
    }

    /// Starts the upload in the background once a slot is free and returns;
    /// `sync_published` waits for it. An earlier upload's failure surfaces here.
    fn put_new_deferred(&self, key: &str, data: Vec<u8>) -> CoreResult<Option<Vec<u8>>> {
        self.reap_finished()?;
        let Some(&conditional) = self.shared.conditional.get() else {
            // The first create finds out how to create: it runs here, whole.
            return self.create(key, PutPayload::from(data)).map(|()| None);
        };
        let slot: OwnedSemaphorePermit = self
            .wait(self.uploads.slots.clone().acquire_owned())?
            .map_err(|e| CoreError::new("ERR_STORE", format!("upload slots closed: {e}")))?;
        // The pack moves into the request: no copy, freed once sent.
        let (shared, key, payload) = (self.shared.clone(), key.to_string(), PutPayload::from(data));
        let task = RUNTIME.spawn(async move {
            let _slot = slot;
            shared.create(&key, payload, conditional).await
        });
        self.running().push(task);
        Ok(None)
    }

    /// Waits for every background upload; the first failure is returned.
    fn sync_published(&self) -> CoreResult<()> {
        let tasks = std::mem::take(&mut *self.running());
        let mut first = Ok(());
        for task in tasks {
            let outcome = self.wait(task).and_then(|r| joined(&self.shared, r));
            if first.is_ok() {
                first = outcome;
            }
        }
        first
    }

    /// Stops background uploads: an object whose PUT did not complete never appears.
    fn abort_pending(&self) {
        for task in std::mem::take(&mut *self.running()) {
            task.abort();
        }
    }

    fn is_remote(&self) -> bool {
        true
    }

    fn transfers(&self) -> usize {
        self.transfers
    }

    fn get(&self, key: &str) -> CoreResult<Vec<u8>> {
        let shared = &self.shared;
        let path = shared.path(key)?;
        block_on(async { shared.store.get(&path).await?.bytes().await })
            .map(Vec::from)
            .map_err(|e| shared.error("cannot read", key, e))
    }

    fn get_range(&self, key: &str, offset: u64, len: usize) -> CoreResult<Vec<u8>> {
        block_on(self.shared.get_range(key, offset, len))
    }

    /// Up to `transfers` ranged GETs in flight, results in order.
    fn get_ranges(&self, reads: &[(&str, u64, usize)]) -> CoreResult<Vec<Vec<u8>>> {
        use futures_util::{StreamExt, TryStreamExt};
        let shared = &self.shared;
        let fetches = futures_util::stream::iter(reads).map(|(key, offset, len)| shared.get_range(key, *offset, *len));
        self.wait(fetches.buffered(self.transfers).try_collect())?
    }

    fn list(&self, prefix: &str) -> CoreResult<Vec<ObjectInfo>> {
        use futures_util::TryStreamExt;
        let shared = &self.shared;
        let dir = prefix.trim_end_matches('/');
        let root = format!("{}{dir}", shared.prefix);
        let root = root.trim_end_matches('/');
        let at = (!root.is_empty()).then(|| StorePath::from(root));
        let metas: Vec<object_store::ObjectMeta> = block_on(shared.store.list(at.as_ref()).try_collect())
            .map_err(|e| shared.error("cannot list", prefix, e))?;
        let mut out: Vec<ObjectInfo> = metas
            .into_iter()
            .filter_map(|m| {
                let key = m.location.as_ref().strip_prefix(&shared.prefix)?.to_string();
                let name = key.rsplit('/').next().unwrap_or("");
                (!name.starts_with('.')).then_some(ObjectInfo { key, size: m.size })
            })
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    fn delete(&self, key: &str) -> CoreResult<()> {
        block_on(self.shared.delete(key))
    }

    fn put_replace(&self, key: &str, data: &[u8]) -> CoreResult<()> {
        let path = self.shared.path(key)?;
        block_on(self.shared.store.put(&path, PutPayload::from(bytes_of(data))))
            .map(|_| ())
            .map_err(|e| self.shared.error("cannot write", key, e))
    }

    fn get_tagged(&self, key: &str) -> CoreResult<(Vec<u8>, String)> {
        let shared = &self.shared;
        let path = shared.path(key)?;
        let (bytes, tag) = block_on(async {
            let got = shared.store.get(&path).await?;
            let tag = got.meta.e_tag.clone().unwrap_or_default();
            Ok::<_, object_store::Error>((got.bytes().await?, tag))
        })
        .map_err(|e| shared.error("cannot read", key, e))?;
        Ok((Vec::from(bytes), tag))
    }

    fn replace_if(&self, key: &str, data: &[u8], tag: &str) -> CoreResult<()> {
        if !self.conditional_updates()? {
            return self.put_replace(key, data);
        }
        block_on(self.shared.replace_if(key, PutPayload::from(bytes_of(data)), tag))
    }

    fn conditional_writes(&self) -> CoreResult<bool> {
        self.probe()
    }

    fn conditional_updates(&self) -> CoreResult<bool> {
        self.probe_update()
    }

    /// Objects are written by single PUTs (an interrupted one never appears):
    /// only probe objects of killed `info` runs can be left.
    fn clean_partial(&self) -> CoreResult<usize> {
        let shared = &self.shared;
        let root = shared.prefix.trim_end_matches('/');
        let at = (!root.is_empty()).then(|| StorePath::from(root));
        let top =
            block_on(shared.store.list_with_delimiter(at.as_ref())).map_err(|e| shared.error("cannot list", "", e))?;
        let probes: Vec<String> = top
            .objects
            .iter()
            .filter_map(|m| m.location.as_ref().strip_prefix(&shared.prefix))
            .filter(|key| key.starts_with(PROBE_PREFIX))
            .map(str::to_string)
            .collect();
        probes.iter().try_for_each(|key| block_on(shared.delete(key)))?;
        Ok(probes.len())
    }
}

impl Drop for ObjectStoreDir {
    fn drop(&mut self) {
        self.abort_pending();
    }
}

fn bytes_of(data: &[u8]) -> bytes::Bytes {
    bytes::Bytes::copy_from_slice(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_s3_urls() {
        let c = ObjectStoreConfig::parse("s3://bucket/some/prefix/").unwrap();
        assert_eq!((c.bucket.as_str(), c.prefix.as_str()), ("bucket", "some/prefix"));
        assert_eq!(ObjectStoreConfig::parse("s3://bucket").unwrap().prefix, "");
        for bad in ["s3://", "http://x/y", "s3://b/../x", "s3://b/a//c"] {
            assert!(ObjectStoreConfig::parse(bad).is_err(), "{bad}");
        }
    }
}
