//! Hand-rolled argument parsing: one command, one directory, a few flags.

use std::path::PathBuf;

/// Which `powdb-storage` release handles the directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gen {
    /// powdb-storage 0.4.7
    Old,
    /// powdb-storage 0.29.0
    New,
}

pub const COMMANDS: &[&str] = &[
    "create",
    "insert",
    "add-table",
    "update",
    "drop-table",
    "dirty",
    "report",
    "hold",
    "bulk",
];

pub const USAGE: &str = "usage: powdb-fixture <command> <dir> [--gen old|new] [options]
  create     <dir> [--table T] [--rows N] [--index] [--pad P]
  insert     <dir> [--table T] --from A --count N [--pad P]
  add-table  <dir> --table U [--rows N] [--index] [--pad P]
  update     <dir> [--table T] --every K
  drop-table <dir> --table U
  dirty      <dir> [--table T] --from A --count N [--pad P]
  report     <dir> [--ids]
  hold       <dir>
  bulk       <dir> --mib M [--pad P]";

#[derive(Debug)]
pub struct Args {
    pub command: String,
    pub dir: PathBuf,
    pub gen: Gen,
    /// `None` when `--table` was not given; see [`Args::table`].
    table: Option<String>,
    pub rows: u64,
    pub index: bool,
    pub pad: usize,
    pub from: Option<u64>,
    pub count: Option<u64>,
    pub every: Option<u64>,
    pub ids: bool,
    pub mib: Option<u64>,
}

impl Args {
    pub fn parse(mut argv: impl Iterator<Item = String>) -> Result<Args, String> {
        let command = argv.next().ok_or("missing command")?;
        if !COMMANDS.contains(&command.as_str()) {
            return Err(format!("unknown command '{command}'"));
        }
        let mut args = Args {
            command,
            dir: PathBuf::new(),
            gen: Gen::New,
            table: None,
            rows: 0,
            index: false,
            pad: 40,
            from: None,
            count: None,
            every: None,
            ids: false,
            mib: None,
        };
        let mut dir = None;
        while let Some(arg) = argv.next() {
            // Accept both `--flag value` and `--flag=value`.
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) if arg.starts_with("--") => (f.to_string(), Some(v.to_string())),
                _ => (arg.clone(), None),
            };
            let mut value = || -> Result<String, String> {
                inline
                    .clone()
                    .or_else(|| argv.next())
                    .ok_or_else(|| format!("{flag} needs a value"))
            };
            match flag.as_str() {
                "--gen" => args.gen = parse_gen(&value()?)?,
                "--table" => args.table = Some(value()?),
                "--rows" => args.rows = number(&flag, &value()?)?,
                "--pad" => args.pad = number(&flag, &value()?)? as usize,
                "--from" => args.from = Some(number(&flag, &value()?)?),
                "--count" => args.count = Some(number(&flag, &value()?)?),
                "--every" => args.every = Some(number(&flag, &value()?)?),
                "--mib" => args.mib = Some(number(&flag, &value()?)?),
                "--index" => args.index = true,
                "--ids" => args.ids = true,
                _ if flag.starts_with("--") => return Err(format!("unknown option '{flag}'")),
                _ if dir.is_none() => dir = Some(PathBuf::from(arg)),
                _ => return Err(format!("unexpected argument '{arg}'")),
            }
        }
        args.dir = dir.ok_or("missing <dir>")?;
        Ok(args)
    }

    /// The table to work on; "T" unless `--table` says otherwise.
    pub fn table(&self) -> &str {
        self.table.as_deref().unwrap_or("T")
    }

    /// `--table` for commands where defaulting to "T" would be a trap
    /// (dropping or re-creating the main table by accident).
    pub fn explicit_table(&self) -> Result<&str, String> {
        self.table
            .as_deref()
            .ok_or_else(|| format!("{} needs --table", self.command))
    }
}

/// Unwrap a flag that the current command cannot do without.
pub fn required(value: Option<u64>, flag: &str) -> Result<u64, String> {
    value.ok_or_else(|| format!("missing {flag}"))
}

fn parse_gen(s: &str) -> Result<Gen, String> {
    match s {
        "old" => Ok(Gen::Old),
        "new" => Ok(Gen::New),
        _ => Err(format!("--gen must be 'old' or 'new', not '{s}'")),
    }
}

fn number(flag: &str, s: &str) -> Result<u64, String> {
    s.parse()
        .map_err(|_| format!("{flag} expects a non-negative integer, not '{s}'"))
}
