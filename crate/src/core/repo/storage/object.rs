//! A repository on S3-compatible object storage (`s3://bucket/prefix`),
//! through the `object_store` crate. Objects are written whole under new
//! names; "create if absent" is a conditional `If-None-Match: *` PUT where the
//! server honours it, otherwise a HEAD before the PUT (the repository's
//! unique names and writer lock then carry the guarantee).
use super::{missing, ObjectInfo, Storage};
use crate::core::error::{CoreError, CoreResult};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, RetryConfig};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

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
}

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
        })
    }
}

pub struct ObjectStoreDir {
    store: Arc<AmazonS3>,
    prefix: String,
    location: String,
    /// Where the endpoint is, for messages (never a credential).
    endpoint: String,
    conditional: AtomicBool,
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
        if let Some(endpoint) = &config.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if std::env::var("AWS_REGION").is_err() && std::env::var("AWS_DEFAULT_REGION").is_err() {
            builder = builder.with_region("us-east-1");
        }
        let endpoint = config
            .endpoint
            .clone()
            .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
            .or_else(|| std::env::var("AWS_ENDPOINT").ok())
            .unwrap_or_else(|| "AWS S3".into());
        let location = if config.prefix.is_empty() {
            format!("s3://{}", config.bucket)
        } else {
            format!("s3://{}/{}", config.bucket, config.prefix)
        };
        let store = builder.build().map_err(|e| {
            CoreError::new("ERR_INVALID_ARG", format!("cannot use {location} (endpoint {endpoint}): {}", scrub(&e.to_string())))
        })?;
        let prefix = if config.prefix.is_empty() { String::new() } else { format!("{}/", config.prefix) };
        Ok(ObjectStoreDir {
            store: Arc::new(store),
            prefix,
            location,
            endpoint,
            conditional: AtomicBool::new(config.conditional_writes),
        })
    }

    /// Whether the server refuses a second conditional create of one key (some,
    /// such as Garage, silently ignore `If-None-Match`): two creates of a probe
    /// object, then it is removed.
    pub fn probe_conditional_writes(&self) -> CoreResult<bool> {
        let key = format!("probe-{}", super::super::writer::new_name());
        self.put_new(&key, b"1")?;
        let second = self.put_new(&key, b"2");
        self.delete(&key)?;
        match second {
            Ok(()) => Ok(false),
            Err(e) if e.code == "EEXIST" => Ok(true),
            Err(e) => Err(e),
        }
    }

    /// Falls back to HEAD-then-PUT creates (for servers that ignore `If-None-Match`).
    pub fn without_conditional_writes(&self) {
        self.conditional.store(false, Ordering::Relaxed);
    }

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
        let text = scrub(&e.to_string());
        let (code, why) = match &e {
            object_store::Error::NotFound { .. } if text.contains("NoSuchBucket") => {
                ("ERR_STORE_NO_BUCKET", "the bucket does not exist".to_string())
            }
            object_store::Error::NotFound { .. } => return missing(&self.location, key),
            object_store::Error::AlreadyExists { .. } => ("EEXIST", "it already exists".to_string()),
            object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. } => {
                if text.contains("SignatureDoesNotMatch") || text.contains("InvalidAccessKeyId") || text.contains("InvalidToken") {
                    ("ERR_STORE_AUTH", format!("the credentials were refused: {text}"))
                } else {
                    ("ERR_STORE_DENIED", format!("access denied: {text}"))
                }
            }
            _ if text.contains("NoSuchBucket") => ("ERR_STORE_NO_BUCKET", "the bucket does not exist".to_string()),
            _ if text.contains("SlowDown") || text.contains("503") || text.contains("429") => {
                ("ERR_STORE_THROTTLED", format!("the server kept throttling requests: {text}"))
            }
            _ if is_unreachable(&e) => ("ERR_STORE_UNREACHABLE", format!("the endpoint cannot be reached: {text}")),
            _ => ("ERR_STORE", text),
        };
        CoreError::new(code, format!("{what} {key} in {} (endpoint {}): {why}", self.location, self.endpoint))
    }

    fn block_on<T>(&self, work: impl std::future::Future<Output = T>) -> T {
        RUNTIME.block_on(work)
    }
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

/// Strips anything that looks like a credential from a message.
fn scrub(text: &str) -> String {
    let mut out = text.to_string();
    for var in ["AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID"] {
        if let Ok(secret) = std::env::var(var) {
            if secret.len() >= 4 {
                out = out.replace(&secret, "<redacted>");
            }
        }
    }
    out
}

impl Storage for ObjectStoreDir {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn put_new(&self, key: &str, data: &[u8]) -> CoreResult<()> {
        let path = self.path(key)?;
        let payload = PutPayload::from(bytes_of(data));
        self.block_on(async {
            if self.conditional_writes() {
                let opts = PutOptions { mode: PutMode::Create, ..PutOptions::default() };
                return self.store.put_opts(&path, payload, opts).await.map(|_| ());
            }
            match self.store.head(&path).await {
                Ok(_) => Err(object_store::Error::AlreadyExists {
                    path: path.to_string(),
                    source: "exists (checked before writing)".into(),
                }),
                Err(object_store::Error::NotFound { .. }) => self.store.put(&path, payload).await.map(|_| ()),
                Err(e) => Err(e),
            }
        })
        .map_err(|e| self.error("cannot write", key, e))
    }

    fn get(&self, key: &str) -> CoreResult<Vec<u8>> {
        let path = self.path(key)?;
        self.block_on(async { self.store.get(&path).await?.bytes().await })
            .map(|b| b.to_vec())
            .map_err(|e| self.error("cannot read", key, e))
    }

    fn get_range(&self, key: &str, offset: u64, len: usize) -> CoreResult<Vec<u8>> {
        let path = self.path(key)?;
        let bytes = self
            .block_on(self.store.get_range(&path, offset..offset + len as u64))
            .map_err(|e| self.error("cannot read", key, e))?;
        if bytes.len() != len {
            return Err(CoreError::new("ERR_INTEGRITY", format!("repository object {key} is truncated")));
        }
        Ok(bytes.to_vec())
    }

    fn list(&self, prefix: &str) -> CoreResult<Vec<ObjectInfo>> {
        use futures_util::TryStreamExt;
        let dir = prefix.trim_end_matches('/');
        let root = format!("{}{dir}", self.prefix);
        let root = root.trim_end_matches('/');
        let at = (!root.is_empty()).then(|| StorePath::from(root));
        let metas: Vec<object_store::ObjectMeta> = self
            .block_on(self.store.list(at.as_ref()).try_collect())
            .map_err(|e| self.error("cannot list", prefix, e))?;
        let mut out: Vec<ObjectInfo> = metas
            .into_iter()
            .filter_map(|m| {
                let key = m.location.as_ref().strip_prefix(&self.prefix)?.to_string();
                let name = key.rsplit('/').next().unwrap_or("");
                (!name.starts_with('.')).then_some(ObjectInfo { key, size: m.size })
            })
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    fn delete(&self, key: &str) -> CoreResult<()> {
        let path = self.path(key)?;
        match self.block_on(self.store.delete(&path)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error("cannot delete", key, e)),
        }
    }

    fn put_replace(&self, key: &str, data: &[u8]) -> CoreResult<()> {
        let path = self.path(key)?;
        self.block_on(self.store.put(&path, PutPayload::from(bytes_of(data))))
            .map(|_| ())
            .map_err(|e| self.error("cannot write", key, e))
    }

    fn conditional_writes(&self) -> bool {
        self.conditional.load(Ordering::Relaxed)
    }

    fn clean_partial(&self) -> CoreResult<usize> {
        // Objects are written by single PUTs: an interrupted one never appears.
        Ok(0)
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
