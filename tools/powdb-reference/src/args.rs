//! Hand-rolled argument parsing: one command, its positional paths, a few flags.

use std::path::PathBuf;

/// Which reference release handles the command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gen {
    /// powdb-backup / powdb-storage 0.4.7
    Old,
    /// powdb-backup / powdb-storage 0.29.0
    New,
}

pub const USAGE: &str = "usage: powdb-reference <command> <paths...> [--gen old|new] [options]
  full    <dataDir> <dest>
  incr    <dataDir> <dest> --base <fullDir> [--apply <incDir>]...
  restore <backupDir> <dest> [--apply <incDir>]...
  verify  <backupDir>";

#[derive(Debug)]
pub struct Args {
    pub command: String,
    pub paths: Vec<PathBuf>,
    pub gen: Gen,
    pub base: Option<PathBuf>,
    /// Increments in chain order (`--apply` may repeat).
    pub apply: Vec<PathBuf>,
}

impl Args {
    pub fn parse(mut argv: impl Iterator<Item = String>) -> Result<Args, String> {
        let command = argv.next().ok_or("missing command")?;
        // Positional count and which flags each command accepts.
        let (want, base_ok, apply_ok) = match command.as_str() {
            "full" => (2, false, false),
            "incr" => (2, true, true),
            "restore" => (2, false, true),
            "verify" => (1, false, false),
            _ => return Err(format!("unknown command '{command}'")),
        };
        let mut args = Args {
            command,
            paths: Vec::new(),
            gen: Gen::New,
            base: None,
            apply: Vec::new(),
        };
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
                "--gen" => {
                    args.gen = match value()?.as_str() {
                        "old" => Gen::Old,
                        "new" => Gen::New,
                        s => return Err(format!("--gen must be 'old' or 'new', not '{s}'")),
                    }
                }
                "--base" if base_ok => args.base = Some(PathBuf::from(value()?)),
                "--apply" if apply_ok => args.apply.push(PathBuf::from(value()?)),
                _ if flag.starts_with("--") => {
                    return Err(format!("option '{flag}' is not valid for {}", args.command))
                }
                _ if args.paths.len() < want => args.paths.push(PathBuf::from(arg)),
                _ => return Err(format!("unexpected argument '{arg}'")),
            }
        }
        if args.paths.len() != want {
            return Err(format!("{} needs {want} path argument(s)", args.command));
        }
        if base_ok && args.base.is_none() {
            return Err(format!("{} needs --base <fullDir>", args.command));
        }
        Ok(args)
    }
}
