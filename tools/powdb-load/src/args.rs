//! The command line (clap).
use clap::{Args, Parser, Subcommand};
use powdb_backup::core::online::Login;
use std::path::PathBuf;
use std::time::Duration;

/// A seeded concurrent workload against a live powdb-server, for the
/// online-backup tests: `setup` makes the schema, `run` loads the server
/// until stopped and writes what it did to a JSON log the tests check a
/// restored copy against.
#[derive(Debug, Parser)]
#[command(name = "powdb-load", args_override_self = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the tables (Log, Acct) and the accounts; prints one JSON line.
    Setup {
        #[command(flatten)]
        server: ServerArgs,
        /// Accounts the transfers move money between (ids 1..=N).
        #[arg(long, default_value_t = 16)]
        accounts: u64,
        /// Each account's opening balance.
        #[arg(long, default_value_t = 1000)]
        balance: i64,
    },
    /// Run the workload until SIGTERM/SIGINT, --seconds, or (with
    /// --watch-stdin) stdin's end; then write the log. Prints a JSON line
    /// with the seed once every worker is connected.
    Run(RunArgs),
    /// Run PowQL statements from stdin (one a line) on one connection,
    /// printing each answer: for trying statements by hand.
    Sh {
        #[command(flatten)]
        server: ServerArgs,
    },
}

#[derive(Debug, Args)]
pub struct ServerArgs {
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    #[arg(long)]
    pub port: u16,
    #[arg(long)]
    pub user: String,
    /// The login's password; default: the POWDB_LOAD_PASSWORD environment variable.
    #[arg(long)]
    pub password: Option<String>,
    /// Bounds every request, from sending it to the whole answer. Longer than
    /// the server's 5 s wait for its gate, so a held gate shows as the server's
    /// answer; a stop never waits for it.
    #[arg(long, default_value_t = 10_000)]
    pub io_timeout_ms: u64,
}

impl ServerArgs {
    pub fn login(&self) -> Login {
        let password = self.password.clone().or_else(|| std::env::var("POWDB_LOAD_PASSWORD").ok()).unwrap_or_default();
        let mut login = Login::new(self.host.clone(), self.port, self.user.clone(), password);
        login.connect_timeout = Duration::from_millis(self.io_timeout_ms).min(Login::DEFAULT_CONNECT_TIMEOUT);
        login.io_timeout = Duration::from_millis(self.io_timeout_ms);
        login
    }
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Where the run's JSON log goes (written when it stops).
    #[arg(long)]
    pub log: PathBuf,
    /// Fixes every choice the workers make (default: from the clock). At most 2^53 - 1,
    /// so JavaScript reads it exactly.
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..(1u64 << 53)))]
    pub seed: Option<u64>,
    /// Autocommit appenders, each with its own sequence.
    #[arg(long, default_value_t = 3)]
    pub writers: u64,
    /// Transfer workers (explicit transactions between accounts).
    #[arg(long, default_value_t = 2)]
    pub transfers: u64,
    /// Make about one append in ten a value over 4 KiB (overflow pages).
    #[arg(long)]
    pub big_values: bool,
    /// Run a DDL worker: create tables, fill them, add columns and indexes, drop them.
    #[arg(long)]
    pub ddl: bool,
    /// An existing table to keep busy too: autocommit updates of rows
    /// picked at random (by --hot-key in 0..--hot-rows), setting the int
    /// column --hot-column. Not in the log's checks.
    #[arg(long)]
    pub hot: Option<String>,
    /// The hot table's indexed int key the updates filter on.
    #[arg(long, default_value = "id", requires = "hot")]
    pub hot_key: String,
    /// The hot table's int column the updates set.
    #[arg(long, default_value = "score", requires = "hot")]
    pub hot_column: String,
    /// Keys 0..N are updated (default: count(TABLE), read at the start).
    #[arg(long, requires = "hot")]
    pub hot_rows: Option<u64>,
    /// Workers updating the hot table.
    #[arg(long, default_value_t = 2, requires = "hot")]
    pub hot_workers: u64,
    /// Stop after this many seconds.
    #[arg(long)]
    pub seconds: Option<f64>,
    /// Stop when stdin reaches its end (the parent holding the pipe is gone).
    #[arg(long)]
    pub watch_stdin: bool,
}
