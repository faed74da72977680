//! The command line (clap): one subcommand, its data directory, a few flags.
//! Flags may come in any order after the subcommand, `--gen` included.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Which `powdb-storage` release handles the directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Gen {
    /// powdb-storage 0.4.7
    Old,
    /// powdb-storage 0.29.0
    New,
}

/// Builds, changes and inspects PowDB data directories with the real storage
/// engine. Every command prints one JSON line.
#[derive(Debug, Parser)]
#[command(name = "powdb-fixture", args_override_self = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Engine generation that opens the directory.
    #[arg(long, value_enum, default_value = "new", global = true)]
    pub gen: Gen,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a database whose table holds ids 0..rows.
    Create {
        dir: PathBuf,
        #[arg(long, default_value = "T")]
        table: String,
        #[command(flatten)]
        fill: Fill,
    },
    /// Insert ids from..from+count into a table.
    Insert {
        dir: PathBuf,
        #[arg(long, default_value = "T")]
        table: String,
        #[command(flatten)]
        ids: IdRange,
    },
    /// Add a table holding ids 0..rows.
    AddTable {
        dir: PathBuf,
        #[arg(long)]
        table: String,
        #[command(flatten)]
        fill: Fill,
    },
    /// Rewrite the score of every K-th row.
    Update {
        dir: PathBuf,
        #[arg(long, default_value = "T")]
        table: String,
        #[arg(long, value_name = "K")]
        every: u64,
    },
    /// Drop a table.
    DropTable {
        dir: PathBuf,
        #[arg(long)]
        table: String,
    },
    /// Insert ids, then leave the directory as a crashed server would.
    Dirty {
        dir: PathBuf,
        #[arg(long, default_value = "T")]
        table: String,
        #[command(flatten)]
        ids: IdRange,
    },
    /// Print each table's row count (and ids with --ids).
    Report {
        dir: PathBuf,
        #[arg(long)]
        ids: bool,
    },
    /// Keep the database open until stdin closes.
    Hold { dir: PathBuf },
    /// Create table T with a heap of about --mib MiB, plus an index on id.
    Bulk {
        dir: PathBuf,
        #[arg(long, value_name = "M")]
        mib: u64,
        #[arg(long, value_name = "P", default_value_t = 40)]
        pad: usize,
    },
}

/// The rows of a new table (`create`, `add-table`).
#[derive(Debug, Args)]
pub struct Fill {
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub rows: u64,
    /// Index the table on id after filling it.
    #[arg(long)]
    pub index: bool,
    #[arg(long, value_name = "P", default_value_t = 40)]
    pub pad: usize,
}

/// Rows added to an existing table (`insert`, `dirty`).
#[derive(Debug, Args)]
pub struct IdRange {
    #[arg(long, value_name = "A")]
    pub from: u64,
    #[arg(long, value_name = "N")]
    pub count: u64,
    #[arg(long, value_name = "P", default_value_t = 40)]
    pub pad: usize,
}
