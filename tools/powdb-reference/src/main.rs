//! powdb-reference: dev-only tool that runs the reference `powdb-backup`
//! crate (0.4.7 or 0.29.0, `--gen`) so our npm backup tool can be checked
//! against it: interop both ways, golden manifests and benchmarks.
//! Success prints one JSON line on stdout; failure prints `error: ...` on
//! stderr and exits 1 (3 when the generation lacks the command, 2 on a usage
//! error).

mod args;
mod reference;

use std::process::ExitCode;

use clap::Parser;

use args::{Cli, Command, Gen, SyncMode};

fn main() -> ExitCode {
    // Usage errors: clap prints them and exits 2.
    let cli = Cli::parse();
    match run(&cli.command, cli.gen) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err((code, message)) => {
            eprintln!("error: {message}");
            ExitCode::from(code)
        }
    }
}

/// Dispatch to the chosen generation; the error carries its exit code.
fn run(command: &Command, gen: Gen) -> Result<serde_json::Value, (u8, String)> {
    use reference::{new, old};
    let result = match command {
        Command::Full { data_dir, dest } => match gen {
            Gen::Old => old::full(data_dir, dest),
            Gen::New => new::full(data_dir, dest),
        },
        Command::Incr { data_dir, dest, base, apply } => match gen {
            Gen::Old => old::incr(data_dir, dest, base, apply),
            Gen::New => new::incr(data_dir, dest, base, apply),
        },
        Command::Restore { backup_dir, dest, apply, sync_mode } => match gen {
            Gen::Old if *sync_mode != SyncMode::Strip => {
                return Err((3, "sync modes other than strip need --gen new".into()))
            }
            Gen::Old => reference::restore_old(backup_dir, dest, apply),
            Gen::New => reference::restore_new(backup_dir, dest, apply, *sync_mode),
        },
        Command::Verify { backup_dir } => match gen {
            Gen::Old => return Err((3, "not supported by this generation".into())),
            Gen::New => reference::verify_new(backup_dir),
        },
    };
    result.map_err(|e| (1, e.to_string()))
}
