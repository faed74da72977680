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
    /// Run --ops random changes chosen from --seed (same seed, same
    /// directory: same changes).
    Workload {
        dir: PathBuf,
        #[arg(long, value_name = "S")]
        seed: u64,
        #[arg(long, value_name = "N", default_value_t = 12)]
        ops: u64,
        /// Never pick these kinds of op (comma-separated). Same seed, same
        /// directory and same list: same changes.
        #[arg(long, value_name = "KINDS", value_delimiter = ',')]
        skip: Vec<OpKind>,
    },
    /// Print each table's rows hash, schema, indexes and index check.
    Dump { dir: PathBuf },
    /// Delete every K-th row in scan order.
    Delete {
        dir: PathBuf,
        #[arg(long, default_value = "T")]
        table: String,
        #[arg(long, value_name = "K")]
        every: u64,
    },
    /// Make the name of every K-th row B bytes long (relocates it).
    Grow {
        dir: PathBuf,
        #[arg(long, default_value = "T")]
        table: String,
        #[arg(long, value_name = "K")]
        every: u64,
        #[arg(long, value_name = "B")]
        bytes: usize,
    },
    /// Insert one row whose name is B bytes (overflow pages on 0.29).
    Big {
        dir: PathBuf,
        #[arg(long, default_value = "T")]
        table: String,
        #[arg(long, value_name = "I", allow_negative_numbers = true)]
        id: i64,
        #[arg(long, value_name = "B")]
        bytes: usize,
    },
    /// Index a column of an existing table.
    CreateIndex {
        dir: PathBuf,
        #[arg(long, default_value = "T")]
        table: String,
        #[arg(long, value_name = "C")]
        column: String,
    },
    /// Alter table: add an optional column (existing rows get Empty).
    AddColumn {
        dir: PathBuf,
        #[arg(long, default_value = "T")]
        table: String,
        #[arg(long, value_name = "C")]
        column: String,
        #[arg(long = "type", value_enum, default_value = "str")]
        ty: NewColumnType,
    },
    /// Alter table: drop a column.
    DropColumn {
        dir: PathBuf,
        #[arg(long, default_value = "T")]
        table: String,
        #[arg(long, value_name = "C")]
        column: String,
    },
    /// Drop a table and create it again (same columns and indexes) with ids
    /// 0..rows.
    Recreate {
        dir: PathBuf,
        #[arg(long, default_value = "T")]
        table: String,
        #[arg(long, value_name = "N")]
        rows: u64,
        #[arg(long, value_name = "P", default_value_t = 40)]
        pad: usize,
    },
    /// Add (0.29 only) a table `Doc` with a unique index, an expression
    /// index, a JSON column, overflow values and a link to `--target`'s id,
    /// and a materialized view `Big` over `--target`.
    Extras {
        dir: PathBuf,
        #[arg(long, default_value = "T")]
        target: String,
        #[arg(long, value_name = "N", default_value_t = 40)]
        rows: u64,
        /// Make no link: the catalog stays at version 6.
        #[arg(long)]
        no_link: bool,
    },
    /// Add (0.29 only) a table `Typed` with a column of every type and
    /// values that need care in text: extremes, NaN, quotes, newlines,
    /// non-ASCII, Empty cells, overflow values.
    Typed {
        dir: PathBuf,
        #[arg(long, value_name = "N", default_value_t = 60)]
        rows: u64,
    },
    /// Print every row of a table as the engine reads it, values exact.
    Rows {
        dir: PathBuf,
        #[arg(long, default_value = "T")]
        table: String,
    },
    /// Sweep unreferenced overflow pages of every table (0.29 only).
    Sweep { dir: PathBuf },
    /// Enable sync like `powdb-cli sync-enable` (0.29 only): create
    /// `.powdb-sync/identity.json` if missing and checkpoint through the
    /// archive hook. From then on every WAL truncation first writes a
    /// retained segment.
    SyncEnable { dir: PathBuf },
    /// List the retained WAL segments of `.powdb-sync/retained/` (read with
    /// powdb-sync's segment reader; the catalog is not opened).
    Segments {
        dir: PathBuf,
        /// Also list every unit (LSN, transaction id, record type).
        #[arg(long)]
        units: bool,
    },
    /// One explicit transaction (0.29 only): BEGIN, then updates, deletes
    /// and inserts on a fixture-shaped table, then COMMIT (default),
    /// ROLLBACK or a crash.
    Tx {
        dir: PathBuf,
        #[arg(long, default_value = "T")]
        table: String,
        /// Insert ids from..from+count.
        #[arg(long, value_name = "A", default_value_t = 0)]
        from: u64,
        #[arg(long, value_name = "N", default_value_t = 0)]
        count: u64,
        #[arg(long, value_name = "P", default_value_t = 40)]
        pad: usize,
        /// Before the inserts, add 1 to the score of every K-th row (scan
        /// order as of BEGIN).
        #[arg(long, value_name = "K")]
        update_every: Option<u64>,
        /// Before the inserts, delete every K-th row (same scan).
        #[arg(long, value_name = "K")]
        delete_every: Option<u64>,
        /// End with ROLLBACK instead of COMMIT.
        #[arg(long, conflicts_with = "crash")]
        rollback: bool,
        /// End with neither: fsync the WAL, then leave the directory as a
        /// crashed server would (no checkpoint, `LOCK` left behind).
        #[arg(long)]
        crash: bool,
    },
}

/// The kinds of op `workload` picks from, for `--skip`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OpKind {
    Insert,
    UpdateInPlace,
    Grow,
    Delete,
    Big,
    CreateTable,
    DropTable,
    Recreate,
    CreateIndex,
    /// `alter table add column`, either type.
    AddColumn,
    /// `alter table add column` of an Int column only.
    AddIntColumn,
    /// `alter table add column` of a Str column only.
    AddStrColumn,
    DropColumn,
    Sweep,
}

/// Column types `add-column` offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum NewColumnType {
    Int,
    Str,
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
