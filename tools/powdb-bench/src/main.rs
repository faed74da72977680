//! Measures the ceilings a backup of some files cannot beat on this machine:
//! reading them (1 MiB reads, as `cat` does) and hashing them with BLAKE3 on
//! one core or on all cores. Prints `{"bytes":N,"secs":S}`.
use clap::{Parser, Subcommand};
use std::fs::File;
use std::io::Read;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Read every file sequentially.
    Read { files: Vec<PathBuf> },
    /// BLAKE3 of every file; `--all-cores` hashes each file with rayon.
    Hash {
        files: Vec<PathBuf>,
        #[arg(long)]
        all_cores: bool,
    },
}

fn read_all(path: &PathBuf, mut each: impl FnMut(&[u8])) -> std::io::Result<u64> {
    let mut file = File::open(path)?;
    // Page-aligned, as in the addon: the kernel copies into a misaligned buffer
    // (where glibc puts a plain Vec of this size) about five times slower.
    let layout = std::alloc::Layout::from_size_align(1 << 20, 4096).unwrap();
    // SAFETY: non-zero size; the buffer lives until the end of this function.
    let buf = unsafe { std::slice::from_raw_parts_mut(std::alloc::alloc_zeroed(layout), 1 << 20) };
    let mut total = 0;
    loop {
        let n = file.read(buf)?;
        if n == 0 {
            return Ok(total);
        }
        total += n as u64;
        each(&buf[..n]);
    }
}

fn main() -> std::io::Result<()> {
    let started = Instant::now();
    let mut bytes = 0u64;
    match Cli::parse().command {
        Command::Read { files } => {
            for f in &files {
                bytes += read_all(f, |_| {})?;
            }
        }
        Command::Hash { files, all_cores } => {
            for f in &files {
                let mut hasher = blake3::Hasher::new();
                if all_cores {
                    hasher.update_mmap_rayon(f)?;
                    bytes += hasher.count();
                } else {
                    bytes += read_all(f, |chunk| {
                        hasher.update(chunk);
                    })?;
                }
                std::hint::black_box(hasher.finalize());
            }
        }
    }
    println!("{{\"bytes\":{bytes},\"secs\":{}}}", started.elapsed().as_secs_f64());
    Ok(())
}
