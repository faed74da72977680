//! The `config` object: what kind of repository this is and how it cuts,
//! compresses and seals content. Written last by `init`, read first by `open`.
use crate::core::error::{CoreError, CoreResult};

/// The format new repositories get: 3 stores data blobs in compression
/// blocks (block.rs), 4 also stores heap pages in them as row deltas
/// (row_delta.rs). Formats 2 (every blob alone) and 3 still read and write
/// as they are; a tool that knows an older format refuses a newer one by its
/// config's number (ERR_UNSUPPORTED_FORMAT) rather than misread its packs.
pub const FORMAT: u32 = 4;
/// The oldest format this tool reads and writes.
pub const MIN_FORMAT: u32 = 2;
pub const CONFIG_KEY: &str = "config";
pub const KIND: &str = "powdb-backup repository";

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Chunking {
    /// Heaps are cut into runs of this many 4096-byte pages: pages never move
    /// inside a heap, so a fixed page-aligned grid keeps unchanged runs identical.
    pub heap_run_pages: u32,
    /// Other files (indexes, catalog) are cut by content (FastCDC 2020).
    pub cdc_min: u32,
    pub cdc_avg: u32,
    pub cdc_max: u32,
}

pub const DEFAULT_CHUNKING: Chunking =
    Chunking { heap_run_pages: 16, cdc_min: 8 << 10, cdc_avg: 32 << 10, cdc_max: 128 << 10 };

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Zstd(i32),
}

impl Compression {
    pub fn parse(text: &str) -> CoreResult<Compression> {
        let bad = || {
            CoreError::new(
                "ERR_INVALID_ARG",
                format!("compression {text:?} is neither none nor zstd[:level] (level 1-19)"),
            )
        };
        match text.split_once(':') {
            None if text == "none" => Ok(Compression::None),
            None if text == "zstd" => Ok(Compression::Zstd(DEFAULT_ZSTD_LEVEL)),
            Some(("zstd", level)) => match level.parse::<i32>() {
                Ok(n) if (1..=19).contains(&n) => Ok(Compression::Zstd(n)),
                _ => Err(bad()),
            },
            _ => Err(bad()),
        }
    }

    pub fn name(self) -> String {
        match self {
            Compression::None => "none".into(),
            Compression::Zstd(level) => format!("zstd:{level}"),
        }
    }
}

/// Blocks of 1 MiB at level 3 store a fifth less than at level 1 (heap of
/// the engine-made 64 MiB database: 3.53 MB against 4.31 MB) and compress
/// only about a sixth slower; decompression is as fast.
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;

pub const ENCRYPTION_NONE: &str = "none";
pub const ENCRYPTION_XCHACHA: &str = "xchacha20-poly1305";

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Config {
    pub format: u32,
    pub kind: String,
    pub id: String,
    pub created_unix_secs: u64,
    pub compression: String,
    pub encryption: String,
    pub chunking: Chunking,
    /// A plain repository's id key (an encrypted one keeps it in the master key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_key_hex: Option<String>,
}

impl Config {
    pub fn parse(bytes: &[u8], location: &str) -> CoreResult<Config> {
        let not_repo = |why: String| {
            CoreError::new("ERR_NOT_A_REPO", format!("{location} is not a powdb-backup repository ({why})"))
        };
        let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| not_repo(format!("config: {e}")))?;
        if value.get("kind").and_then(|k| k.as_str()) != Some(KIND) {
            return Err(not_repo("config is not ours".into()));
        }
        let format = value.get("format").and_then(|f| f.as_u64()).unwrap_or(0);
        if format > FORMAT as u64 {
            return Err(CoreError::new(
                "ERR_UNSUPPORTED_FORMAT",
                format!("repository {location} has format {format}, newer than this powdb-backup reads ({FORMAT}); upgrade powdb-backup"),
            ));
        }
        let config: Config = serde_json::from_value(value).map_err(|e| not_repo(format!("config: {e}")))?;
        if config.format < MIN_FORMAT {
            return Err(not_repo(format!("format {} in config", config.format)));
        }
        Compression::parse(&config.compression).map_err(|e| not_repo(e.message))?;
        let c = config.chunking;
        // FastCDC's own limits (it asserts them).
        let sane = (1..=256).contains(&c.heap_run_pages)
            && (64..=1 << 20).contains(&c.cdc_min)
            && (256..=4 << 20).contains(&c.cdc_avg)
            && (1024..=16 << 20).contains(&c.cdc_max)
            && c.cdc_min <= c.cdc_avg
            && c.cdc_avg <= c.cdc_max;
        if !sane {
            return Err(not_repo("chunking parameters out of range".into()));
        }
        Ok(config)
    }

    pub fn compression(&self) -> Compression {
        Compression::parse(&self.compression).expect("checked when parsed")
    }
}
