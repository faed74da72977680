//! powdb-fixture: dev-only tool that creates, changes and inspects PowDB data
//! directories with the real storage engine (0.4.7 or 0.29.0, `--gen`), for
//! the backup tool's tests and benchmarks. Every command prints one JSON line.

mod args;
mod commands;
mod db;

use std::process::ExitCode;

use args::{Args, Gen, USAGE};

fn main() -> ExitCode {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("error: {e}\n{USAGE}");
            return ExitCode::FAILURE;
        }
    };
    let result = match args.gen {
        Gen::Old => commands::run::<db::old::Db>(&args),
        Gen::New => commands::run::<db::new::Db>(&args),
    };
    match result {
        Ok(Some(out)) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
