//! Merging restored tables into another database, for every pair of
//! catalog versions 0.29.0 writes: the merged catalog parses, keeps the
//! target's version and entries, re-encodes the incoming ones; the engine
//! opens and verifies the result, which holds the source's rows. What the
//! target's version cannot hold is refused.
use super::test_db::{build, contents, restore, Shape};
use super::{CatalogFile, TableChoice, Views, ERR_CATALOG_VERSION, ERR_TABLE_EXISTS};
use crate::core::engine::finalize;
use crate::core::test_support::TempDir;
use std::fs;
use std::path::Path;

const SHAPES: [(Shape, u16); 3] = [(Shape::V5, 5), (Shape::V6, 6), (Shape::V7, 7)];

fn catalog(dir: &Path) -> CatalogFile {
    CatalogFile::parse(&fs::read(dir.join("catalog.bin")).unwrap()).unwrap()
}

/// A finalized table restore of `choices` from `source`, as the merge gets it.
fn stage(tmp: &TempDir, source: &Path, choices: &[TableChoice], label: &str) -> std::path::PathBuf {
    let dir = tmp.path(label);
    restore(source, &dir, choices, true);
    finalize(&dir).unwrap();
    dir
}

/// What the caller does with a merge: the files moved in, the catalog last.
fn publish(stage: &Path, target: &Path) -> super::Merge {
    let merged = catalog(target).merge(&catalog(stage)).unwrap();
    for f in &merged.files {
        if stage.join(&f.from).exists() {
            fs::rename(stage.join(&f.from), target.join(&f.to)).unwrap();
        }
    }
    fs::write(target.join("catalog.bin"), &merged.catalog).unwrap();
    merged
}

#[test]
fn a_table_without_expression_indexes_merges_into_every_version() {
    for (source_shape, source_version) in SHAPES {
        for (target_shape, target_version) in SHAPES {
            let what = format!("v{source_version} into v{target_version}");
            let tmp = TempDir::new();
            let (source, target) = (tmp.path("source"), tmp.path("target"));
            drop(build(&source, source_shape, &mut Vec::new()));
            drop(build(&target, target_shape, &mut Vec::new()));
            let before = contents(&target);
            let staged = stage(&tmp, &source, &[TableChoice::renamed("Note", "NoteIn")], "stage");
            let merged = publish(&staged, &target);
            assert_eq!(merged.version, target_version, "{what}");
            let after = catalog(&target);
            assert_eq!(after.version, target_version, "{what}");
            assert_eq!(after.table_names().last(), Some(&"NoteIn"), "{what}");
            let old = catalog(&tmp.path("source"));
            let (note, note_in) = (old.table("Note").unwrap(), after.table("NoteIn").unwrap());
            assert_eq!((&note_in.columns, &note_in.indexes), (&note.columns, &note.indexes), "{what}");
            finalize(&target).unwrap_or_else(|e| panic!("{what}: {e}"));
            let mut expected = before;
            expected.insert("NoteIn".into(), contents(&source).remove("Note").unwrap());
            assert_eq!(contents(&target), expected, "{what}");
        }
    }
}

#[test]
fn expression_indexes_are_renumbered_above_the_targets_and_their_files_follow() {
    for (source_shape, target_shape, target_version) in
        [(Shape::V6, Shape::V6, 6), (Shape::V7, Shape::V6, 6), (Shape::V6, Shape::V7, 7), (Shape::V7, Shape::V7, 7)]
    {
        let what = format!("{source_shape:?} into {target_shape:?}");
        let tmp = TempDir::new();
        let (source, target) = (tmp.path("source"), tmp.path("target"));
        drop(build(&source, source_shape, &mut Vec::new()));
        drop(build(&target, target_shape, &mut Vec::new()));
        let next = catalog(&target).next_index_id.unwrap();
        let staged = stage(&tmp, &source, &[TableChoice::renamed("Ord", "OrdIn")], "stage");
        let merged = publish(&staged, &target);
        let eidx: Vec<_> = merged.files.iter().filter(|f| f.to.ends_with(".eidx")).collect();
        assert_eq!(eidx.len(), 1, "{what}");
        assert_eq!((eidx[0].from.as_str(), eidx[0].to.clone()), ("OrdIn_1.eidx", format!("OrdIn_{next}.eidx")));
        let after = catalog(&target);
        assert_eq!(after.version, target_version, "{what}");
        assert_eq!(after.next_index_id, Some(next + 1), "{what}");
        let index = &after.table("OrdIn").unwrap().expression_indexes[0];
        assert_eq!((index.id, index.canonical_text.as_str()), (next, "v1:.doc->\"kind\""), "{what}");
        assert_eq!(after.table("Ord").unwrap().expression_indexes[0].id, 1, "{what}: the target's own");
        assert!(target.join(format!("OrdIn_{next}.eidx")).exists(), "{what}");
        let before = contents(&target);
        finalize(&target).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(contents(&target), before, "{what}");
        assert_eq!(contents(&target)["OrdIn"], contents(&source)["Ord"], "{what}");
    }
}

#[test]
fn a_v5_entry_gains_an_empty_expression_index_section_and_a_v6_one_loses_it() {
    let tmp = TempDir::new();
    let (v5, v7) = (tmp.path("v5"), tmp.path("v7"));
    drop(build(&v5, Shape::V5, &mut Vec::new()));
    drop(build(&v7, Shape::V7, &mut Vec::new()));
    let (five, seven) = (catalog(&v5), catalog(&v7));
    let only = |c: &CatalogFile, name: &str| {
        let s = c.select(&[TableChoice::renamed(name, "X")]).unwrap();
        CatalogFile::parse(&s.catalog).unwrap()
    };
    let up = seven.merge(&only(&five, "Prod")).unwrap();
    let down = five.merge(&only(&seven, "Prod")).unwrap();
    let (up, down) = (CatalogFile::parse(&up.catalog).unwrap(), CatalogFile::parse(&down.catalog).unwrap());
    assert_eq!(up.table("X").unwrap().body.len(), five.table("Prod").unwrap().body.len() + 2);
    assert_eq!(down.table("X").unwrap().body.len(), seven.table("Prod").unwrap().body.len() - 2);
    // The target's own entries and links are its bytes.
    assert_eq!(up.tables[..seven.tables.len()], seven.tables[..]);
    assert_eq!(up.links, seven.links);
    assert_eq!(down.tables[..five.tables.len()], five.tables[..]);
}

#[test]
fn what_the_targets_version_cannot_hold_is_refused() {
    let tmp = TempDir::new();
    let (v5, v6, v7) = (tmp.path("v5"), tmp.path("v6"), tmp.path("v7"));
    drop(build(&v5, Shape::V5, &mut Vec::new()));
    drop(build(&v6, Shape::V6, &mut Vec::new()));
    drop(build(&v7, Shape::V7, &mut Vec::new()));
    let subset = |dir: &Path, choices: &[TableChoice]| {
        CatalogFile::parse(&catalog(dir).select(choices).unwrap().catalog).unwrap()
    };
    let ord = subset(&v7, &[TableChoice::renamed("Ord", "O2")]);
    let err = catalog(&v5).merge(&ord).unwrap_err();
    assert_eq!(err.code, ERR_CATALOG_VERSION);
    assert!(err.message.contains("expression index on doc.kind") && err.message.contains("version 5"), "{err}");
    let linked = subset(&v7, &[TableChoice::renamed("Ord", "O2"), TableChoice::renamed("Cust", "C2")]);
    assert_eq!(linked.links.len(), 1);
    let err = catalog(&v6).merge(&linked).unwrap_err();
    assert_eq!(err.code, ERR_CATALOG_VERSION);
    assert!(err.message.contains("link customer to C2") && err.message.contains("version 6"), "{err}");
    let ok = catalog(&v7).merge(&linked).unwrap();
    assert_eq!(CatalogFile::parse(&ok.catalog).unwrap().links.len(), 2);
}

#[test]
fn a_name_the_target_has_is_refused() {
    let tmp = TempDir::new();
    let (source, target) = (tmp.path("source"), tmp.path("target"));
    drop(build(&source, Shape::V5, &mut Vec::new()));
    drop(build(&target, Shape::V5, &mut Vec::new()));
    let same = CatalogFile::parse(&catalog(&source).select(&[TableChoice::keep("Note")]).unwrap().catalog).unwrap();
    let err = catalog(&target).merge(&same).unwrap_err();
    assert_eq!(err.code, ERR_TABLE_EXISTS);
    assert!(err.message.contains("--rename Note=<new name>"), "{err}");
}

#[test]
fn a_file_a_table_of_the_target_owns_is_refused() {
    let tmp = TempDir::new();
    let dir = tmp.path("db");
    drop(build(&dir, Shape::V5, &mut Vec::new()));
    // The engine names an index file `<table>_<column>.idx`: a target table
    // `Prod` indexed on `x_y` and an incoming `Prod_x` indexed on `y` share one.
    let mut target = catalog(&dir);
    target.tables.iter_mut().find(|t| t.name == "Prod").unwrap().indexes[0].column = "x_y".into();
    let mut incoming =
        CatalogFile::parse(&catalog(&dir).select(&[TableChoice::keep("Note")]).unwrap().catalog).unwrap();
    incoming.tables[0].name = "Prod_x".into();
    incoming.tables[0].indexes[0].column = "y".into();
    let err = target.merge(&incoming).unwrap_err();
    assert_eq!(err.code, ERR_TABLE_EXISTS);
    assert!(err.message.contains("owns the file Prod_x_y.idx"), "{err}");
}

#[test]
fn unknown_target_versions_are_refused() {
    let tmp = TempDir::new();
    let source = tmp.path("source");
    drop(build(&source, Shape::V5, &mut Vec::new()));
    let incoming =
        CatalogFile::parse(&catalog(&source).select(&[TableChoice::renamed("Note", "N")]).unwrap().catalog).unwrap();
    for version in [3, 4] {
        let mut target = catalog(&source);
        target.version = version;
        assert_eq!(target.merge(&incoming).unwrap_err().code, "ERR_UNSUPPORTED_FORMAT", "v{version}");
    }
    let mut old = incoming.clone();
    old.version = 3;
    assert_eq!(catalog(&source).merge(&old).unwrap_err().code, "ERR_UNSUPPORTED_FORMAT");
}

#[test]
fn views_are_appended_and_a_name_taken_is_refused() {
    let tmp = TempDir::new();
    let (source, target) = (tmp.path("source"), tmp.path("target"));
    drop(build(&source, Shape::V6, &mut Vec::new()));
    drop(build(&target, Shape::V5, &mut Vec::new()));
    let views = Views::parse(&fs::read(source.join("views.bin")).unwrap()).unwrap();
    assert_eq!(Views::merged(None, &Views { views: Vec::new() }).unwrap(), None);
    let added = Views::parse(&Views::merged(None, &views).unwrap().unwrap()).unwrap();
    assert_eq!(added, views);
    let err = Views::merged(Some(&views), &views).unwrap_err();
    assert_eq!(err.code, ERR_TABLE_EXISTS);
}
