//! Dumps of tables the linked engine wrote: every type, NULLs, an overflow
//! value; the engine's own scan as the reference for the rows.
use super::*;
use crate::core::test_support::TempDir;
use powdb_storage::catalog::Catalog;
use powdb_storage::pj1::parse_json_text;
use powdb_storage::types::Value;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::PathBuf;

fn col(name: &str, type_id: TypeId, required: bool, position: u16) -> ColumnDef {
    ColumnDef { name: name.into(), type_id, required, position }
}

/// Table `Mixed` with a column of each type and three rows: full, all
/// NULLs, and one whose string is an overflow value (9 KB); table `Other`.
fn database(tmp: &TempDir) -> (PathBuf, Vec<Row>) {
    let dir = tmp.path("data");
    let mut cat = Catalog::create(&dir).unwrap();
    let columns = vec![
        col("id", TypeId::Int, true, 0),
        col("f", TypeId::Float, false, 1),
        col("ok", TypeId::Bool, false, 2),
        col("s", TypeId::Str, false, 3),
        col("at", TypeId::DateTime, false, 4),
        col("u", TypeId::Uuid, false, 5),
        col("b", TypeId::Bytes, false, 6),
        col("j", TypeId::Json, false, 7),
    ];
    cat.create_table(Schema { table_name: "Mixed".into(), columns }).unwrap();
    cat.create_table(Schema { table_name: "Other".into(), columns: vec![col("id", TypeId::Int, true, 0)] }).unwrap();
    let doc = parse_json_text(r#"{"k":[1,"a,b"]}"#).unwrap();
    let rows = vec![
        vec![
            Value::Int(i64::MAX),
            Value::Float(-0.5),
            Value::Bool(true),
            Value::Str("x,\"y\"\nz".into()),
            Value::DateTime(86_400_000_001),
            Value::Uuid([1; 16]),
            Value::Bytes(vec![0, 255]),
            Value::Json(doc.into_boxed_slice()),
        ],
        [vec![Value::Int(-1)], vec![Value::Empty; 7]].concat(),
        [vec![Value::Int(2), Value::Empty, Value::Empty, Value::Str("o".repeat(9000))], vec![Value::Empty; 4]].concat(),
    ];
    for row in &rows {
        cat.insert("Mixed", row).unwrap();
        cat.commit_autocommit().unwrap();
    }
    cat.insert("Other", &vec![Value::Int(7)]).unwrap();
    cat.commit_autocommit().unwrap();
    cat.checkpoint().unwrap();
    drop(cat);
    (dir, rows)
}

fn dump_to_file(dir: &Path, tmp: &TempDir, name: &str, table: &str, format: Format) -> CoreResult<(Dumped, String)> {
    let out = tmp.path(name);
    let dumped = dump_table(dir, table, format, &Output::NewFile(out.clone()))?;
    Ok((dumped, std::fs::read_to_string(out).unwrap()))
}

#[test]
fn dumps_every_type_null_and_overflow_value_as_the_engine_reads_them() {
    let tmp = TempDir::new();
    let (dir, rows) = database(&tmp);
    let (dumped, jsonl) = dump_to_file(&dir, &tmp, "mixed.jsonl", "Mixed", Format::Jsonl).unwrap();
    let lines: Vec<&str> = jsonl.lines().collect();
    assert_eq!(dumped, Dumped { rows: 3, bytes: jsonl.len() as u64 });
    assert_eq!(
        lines[0],
        r#"{"id":9223372036854775807,"f":-0.5,"ok":true,"s":"x,\"y\"\nz","at":"1970-01-02T00:00:00.000001Z","u":"01010101-0101-0101-0101-010101010101","b":"AP8=","j":{"k":[1,"a,b"]}}"#
    );
    assert_eq!(lines[1], r#"{"id":-1,"f":null,"ok":null,"s":null,"at":null,"u":null,"b":null,"j":null}"#);
    assert_eq!(
        lines[2],
        format!(r#"{{"id":2,"f":null,"ok":null,"s":"{}","at":null,"u":null,"b":null,"j":null}}"#, "o".repeat(9000))
    );

    // The same rows, encoded from the engine's own scan (`Table::scan`).
    let cat = Catalog::open(&dir).unwrap();
    let names = ["id", "f", "ok", "s", "at", "u", "b", "j"];
    let encoder = Encoder::new(Format::Csv, &names);
    let mut expected = Vec::new();
    encoder.header(&mut expected);
    let engine: Vec<Row> = cat.get_table("Mixed").unwrap().scan().map(|r| r.unwrap().1).collect();
    assert_eq!(engine, rows);
    for row in &engine {
        encoder.row(row, &mut expected).unwrap();
    }
    drop(cat);
    let (_, csv) = dump_to_file(&dir, &tmp, "mixed.csv", "Mixed", Format::Csv).unwrap();
    assert_eq!(csv.as_bytes(), expected);
    assert!(csv.starts_with("id,f,ok,s,at,u,b,j\r\n9223372036854775807,-0.5,true,\"x,\"\"y\"\"\nz\","));
    assert!(csv.contains("\r\n-1,,,,,,,\r\n"));
}

#[test]
fn refuses_a_table_the_catalog_lacks_and_an_output_that_exists() {
    let tmp = TempDir::new();
    let (dir, _) = database(&tmp);
    let e = dump_to_file(&dir, &tmp, "x", "Nope", Format::Jsonl).unwrap_err();
    assert_eq!(
        (e.code.as_str(), e.message.as_str()),
        ("ERR_NO_TABLE", "the backup has no table Nope; it has: Mixed, Other")
    );
    let taken = tmp.write("taken", b"keep");
    let e = dump_table(&dir, "Other", Format::Jsonl, &Output::NewFile(taken.clone())).unwrap_err();
    assert_eq!(e.code, "EEXIST");
    assert_eq!(std::fs::read(taken).unwrap(), b"keep");
}

#[test]
fn a_damaged_heap_is_an_error_not_rows() {
    let tmp = TempDir::new();
    let (dir, _) = database(&tmp);
    let heap = dir.join("Mixed.heap");
    let mut bytes = std::fs::read(&heap).unwrap();
    bytes[4096 + 100] ^= 0xff; // a data page's body: its CRC no longer matches
    std::fs::write(&heap, bytes).unwrap();
    let e = dump_to_file(&dir, &tmp, "x", "Mixed", Format::Csv).unwrap_err();
    assert_eq!(e.code, "ERR_PAGE_FORMAT", "{e}");
    assert!(e.message.starts_with("table Mixed: Mixed.heap does not read"), "{e}");
}

#[test]
fn writes_to_a_descriptor_it_does_not_close() {
    let tmp = TempDir::new();
    let (dir, _) = database(&tmp);
    let (mut reader, writer) = std::io::pipe().unwrap();
    let dumped = dump_table(&dir, "Other", Format::Csv, &Output::Fd(writer.as_raw_fd())).unwrap();
    drop(writer);
    let mut text = String::new();
    reader.read_to_string(&mut text).unwrap();
    assert_eq!(text, "id\r\n7\r\n");
    assert_eq!(dumped, Dumped { rows: 1, bytes: 7 });
}
