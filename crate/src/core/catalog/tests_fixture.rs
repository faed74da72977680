//! Randomized: databases changed by the fixture tool's seeded workload
//! (inserts, updates, overflow values, tables created, dropped and
//! re-created, indexes, columns added and dropped), on powdb-storage 0.29.0
//! and 0.4.7. After each round every catalog re-encodes to its own bytes,
//! and each table restored alone (every other one renamed) holds what the
//! engine's dump of the source shows for it.
use super::test_db::restore;
use super::{CatalogFile, TableChoice};
use crate::core::engine::finalize;
use crate::core::test_support::TempDir;
use serde_json::Value;
use std::fs;
use std::path::Path;

/// Runs tools/powdb-fixture (built by `npm run build:tools`) on `gen`
/// (`new`: 0.29.0, `old`: 0.4.7) and returns its JSON line.
fn fixture(args: &[&str], gen: &str) -> Value {
    let tool = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/powdb-fixture");
    assert!(tool.exists(), "{} is missing: run `npm run build:tools`", tool.display());
    let out = std::process::Command::new(&tool).args(args).args(["--gen", gen]).output().unwrap();
    assert!(out.status.success(), "powdb-fixture {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn dump(dir: &Path, gen: &str) -> serde_json::Map<String, Value> {
    match fixture(&["dump", dir.to_str().unwrap()], gen) {
        Value::Object(mut top) => match top.remove("tables") {
            Some(Value::Object(tables)) => tables,
            other => panic!("dump without tables: {other:?}"),
        },
        other => panic!("dump: {other:?}"),
    }
}

/// One round's checks on `dir`; `what` names generation, seed and round.
/// Returns the catalog version and the number of tables restored.
fn check_round(tmp: &TempDir, dir: &Path, gen: &str, round: u64, what: &str) -> (u16, usize) {
    let bytes = fs::read(dir.join("catalog.bin")).unwrap();
    let parsed = CatalogFile::parse(&bytes).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(parsed.encode(), bytes, "{what}: catalog version {}", parsed.version);
    let source = dump(dir, gen);
    assert_eq!(source.len(), parsed.tables.len(), "{what}");
    for (i, table) in parsed.tables.iter().enumerate() {
        let renamed = format!("{}_r", table.name);
        let choice =
            if i % 2 == 0 { TableChoice::keep(&table.name) } else { TableChoice::renamed(&table.name, &renamed) };
        let dest = tmp.path(&format!("{what}-{i}"));
        let subset = restore(dir, &dest, &[choice], round.is_multiple_of(2));
        if gen == "new" {
            finalize(&dest).unwrap_or_else(|e| panic!("{what}, table {}: {e}", table.name));
        }
        let restored = dump(&dest, gen);
        let name = &subset.tables[0].1;
        assert_eq!(restored.len(), 1, "{what}");
        assert_eq!(restored.get(name), source.get(&table.name), "{what}: table {} as {name}", table.name);
        fs::remove_dir_all(&dest).unwrap();
    }
    (parsed.version, parsed.tables.len())
}

#[test]
fn each_table_of_a_randomized_workload_restores_alone() {
    for (gen, version, seeds) in [("new", 5, [101u64, 202, 303]), ("old", 3, [404, 505, 606])] {
        let mut restored = 0;
        for seed in seeds {
            let tmp = TempDir::new();
            let dir = tmp.path("source");
            let d = dir.to_str().unwrap();
            fixture(&["create", d, "--rows", "40", "--index"], gen);
            for round in 0..3 {
                let what = format!("gen {gen} seed {seed} round {round}");
                fixture(&["workload", d, "--seed", &(seed * 10 + round).to_string(), "--ops", "25"], gen);
                let (found, tables) = check_round(&tmp, &dir, gen, round, &what);
                assert_eq!(found, version, "{what}");
                restored += tables;
            }
        }
        assert!(restored >= 20, "gen {gen}: only {restored} tables restored");
    }
}
