//! powdb-fixture: dev-only tool that creates, changes and inspects PowDB data
//! directories with the real storage engine (0.4.7 or 0.29.0, `--gen`), for
//! the backup tool's tests and benchmarks. Every command prints one JSON line.

mod args;
mod commands;
mod db;
mod dump;
mod extras;
mod heapfile;
mod ops;
mod prng;
mod rows;
mod sync;
mod typed;
mod value;
mod workload;

use std::process::ExitCode;

use clap::Parser;

use args::{Cli, Gen};

fn main() -> ExitCode {
    // Usage errors: clap prints them and exits 2.
    let cli = Cli::parse();
    let result = match cli.gen {
        Gen::Old => commands::run::<db::old::Db>(&cli.command),
        Gen::New => commands::run::<db::new::Db>(&cli.command),
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
