//! powdb-load: dev-only tool that runs a seeded concurrent workload against
//! a live powdb-server through the native core's wire client, and logs what
//! it sent and what was acknowledged, for the online-backup tests' checks
//! of a restored copy (__test__/online/workload.ts).
//!
//! The schema (`setup`):
//!   Log  { required unique id: int, required writer: int, required seq: int, pad: str }
//!   Acct { required unique id: int, bal: int }
//! and, with `run --ddl`, tables D1, D2, ... { required unique id: int, v: int }.
//! With `run --hot T`, rows of an existing table T are updated as well.

mod append;
mod args;
mod ddl;
mod hot;
mod prng;
mod record;
mod run;
mod session;
mod stop;
mod transfer;

use clap::Parser;
use powdb_backup::core::online::{Connection, Login};
use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

/// Wall-clock unix milliseconds: what the tests compare with the freeze
/// window they record with `Date.now()` on the same machine.
pub fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn setup(login: &Login, accounts: u64, balance: i64) -> Result<(), String> {
    let mut conn = Connection::connect(login).map_err(|e| e.to_string())?;
    let mut q = |powql: &str| conn.query(powql).map(|_| ()).map_err(|e| e.to_string());
    q("type Log { required unique id: int, required writer: int, required seq: int, pad: str }")?;
    q("type Acct { required unique id: int, bal: int }")?;
    for id in 1..=accounts {
        q(&format!("insert Acct {{ id := {id}, bal := {balance} }}"))?;
    }
    let total = balance * accounts as i64;
    println!("{}", serde_json::json!({ "accounts": accounts, "total": total }));
    Ok(())
}

fn sh(login: &Login) -> Result<(), String> {
    let mut conn = Connection::connect(login).map_err(|e| e.to_string())?;
    let mut out = std::io::stdout().lock();
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| e.to_string())?;
        if line.trim().is_empty() {
            continue;
        }
        let answer = match conn.query(&line) {
            Ok(r) => format!("{r:?}"),
            Err(e) => format!("error {e}"),
        };
        writeln!(out, "{answer}").map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    let result = match &cli.command {
        args::Command::Setup { server, accounts, balance } => setup(&server.login(), *accounts, *balance),
        args::Command::Run(run) => run::run(run),
        args::Command::Sh { server } => sh(&server.login()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("powdb-load: {e}");
            ExitCode::FAILURE
        }
    }
}
