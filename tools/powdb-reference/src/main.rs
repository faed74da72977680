//! powdb-reference: dev-only tool that runs the reference `powdb-backup`
//! crate (0.4.7 or 0.29.0, `--gen`) so our npm backup tool can be checked
//! against it: interop both ways, golden manifests and benchmarks.
//! Success prints one JSON line on stdout; failure prints `error: ...` on
//! stderr and exits 1 (3 when the generation lacks the command).

mod args;
mod reference;

use std::process::ExitCode;

use args::{Args, Gen, USAGE};

fn main() -> ExitCode {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("error: {message}\n{USAGE}");
            return ExitCode::from(1);
        }
    };
    match run(&args) {
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
fn run(a: &Args) -> Result<serde_json::Value, (u8, String)> {
    use reference::{new, old};
    let p = &a.paths;
    let result = match (a.command.as_str(), a.gen) {
        ("full", Gen::Old) => old::full(&p[0], &p[1]),
        ("full", Gen::New) => new::full(&p[0], &p[1]),
        ("incr", g) => {
            let base = a.base.as_deref().expect("parser requires --base");
            match g {
                Gen::Old => old::incr(&p[0], &p[1], base, &a.apply),
                Gen::New => new::incr(&p[0], &p[1], base, &a.apply),
            }
        }
        ("restore", Gen::Old) => old::restore(&p[0], &p[1], &a.apply),
        ("restore", Gen::New) => new::restore(&p[0], &p[1], &a.apply),
        ("verify", Gen::Old) => return Err((3, "not supported by this generation".into())),
        ("verify", Gen::New) => reference::verify_new(&p[0]),
        _ => unreachable!("parser accepts only known commands"),
    };
    result.map_err(|e| (1, e.to_string()))
}
