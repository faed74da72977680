//! The command line (clap): one subcommand, its positional paths, a few flags.
//! Flags may come in any order after the subcommand, `--gen` included.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Which reference release handles the command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Gen {
    /// powdb-backup / powdb-storage 0.4.7
    Old,
    /// powdb-backup / powdb-storage 0.29.0
    New,
}

/// What a restore does with the source's sync identity (`RestoreSyncMode`
/// of powdb-backup 0.29.0; 0.4.7 knows only `strip`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SyncMode {
    /// StripSyncIdentity: no `.powdb-sync/` in the restored directory.
    Strip,
    /// PreserveSyncIdentity: the source's `identity.json` (needs a `sync`
    /// block in the manifest).
    Preserve,
    /// ForkWithNewSyncIdentity: a new identity, generation 1.
    Fork,
}

/// Runs the reference `powdb-backup` crate. Success prints one JSON line.
#[derive(Debug, Parser)]
#[command(name = "powdb-reference", args_override_self = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Reference generation that runs the command.
    #[arg(long, value_enum, default_value = "new", global = true)]
    pub gen: Gen,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Full backup of a data directory.
    Full {
        #[arg(value_name = "dataDir")]
        data_dir: PathBuf,
        dest: PathBuf,
    },
    /// Incremental backup on top of a full backup and its increments so far.
    Incr {
        #[arg(value_name = "dataDir")]
        data_dir: PathBuf,
        dest: PathBuf,
        #[arg(long, value_name = "fullDir")]
        base: PathBuf,
        /// Increments already taken on --base, in chain order (repeatable).
        #[arg(long, value_name = "incDir")]
        apply: Vec<PathBuf>,
    },
    /// Restore a full backup, then any increments, into dest.
    Restore {
        #[arg(value_name = "backupDir")]
        backup_dir: PathBuf,
        dest: PathBuf,
        /// Increments to apply, in chain order (repeatable).
        #[arg(long, value_name = "incDir")]
        apply: Vec<PathBuf>,
        /// Sync identity handling (new generation; old accepts only strip).
        #[arg(long, value_enum, default_value = "strip")]
        sync_mode: SyncMode,
    },
    /// Check a backup without restoring it (new generation only).
    Verify {
        #[arg(value_name = "backupDir")]
        backup_dir: PathBuf,
    },
}
