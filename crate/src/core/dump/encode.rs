//! One row of a table as a line of JSON Lines or CSV. How each PowDB type is
//! written (docs/cli.md, `dump`):
//!
//! | type     | jsonl                                   | csv                      |
//! |----------|-----------------------------------------|--------------------------|
//! | int      | number, exact decimal (any i64)         | decimal                  |
//! | float    | number, shortest text that reads back to the same f64 (`1.0`, `1e300`); NaN and ±infinity as the strings `"NaN"`, `"Infinity"`, `"-Infinity"` | same text, unquoted |
//! | bool     | `true` / `false`                        | `true` / `false`         |
//! | str      | string                                  | text                     |
//! | datetime | string, ISO 8601 UTC, 6 fraction digits | same                     |
//! | uuid     | string, hyphenated lowercase            | same                     |
//! | bytes    | string, base64 (RFC 4648, padded)       | same                     |
//! | json     | the document itself (canonical text)    | its canonical text       |
//! | empty    | `null`                                  | empty unquoted field     |
//!
//! CSV follows RFC 4180: a header row of the column names, CRLF line ends,
//! a field quoted (`"`, with `""` inside) when it holds a comma, a quote, CR
//! or LF, and an empty string always quoted (`""`), so it differs from an
//! empty value (nothing between the commas).
use super::text;
use crate::core::error::{CoreError, CoreResult};
use powdb_storage::pj1::pj1_to_text;
use powdb_storage::types::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jsonl,
    Csv,
}

impl Format {
    pub fn parse(name: &str) -> CoreResult<Format> {
        match name {
            "jsonl" => Ok(Format::Jsonl),
            "csv" => Ok(Format::Csv),
            other => Err(CoreError::new("ERR_INVALID_ARG", format!("unknown dump format {other:?}: jsonl or csv"))),
        }
    }
}

/// Writes rows of one table's columns in one format.
pub struct Encoder {
    format: Format,
    /// Each column's name, already as a JSON key (`"name":`) or CSV field.
    keys: Vec<Vec<u8>>,
}

impl Encoder {
    pub fn new(format: Format, columns: &[&str]) -> Encoder {
        let keys = columns
            .iter()
            .map(|name| {
                let mut key = Vec::new();
                match format {
                    Format::Jsonl => {
                        json_string(name, &mut key);
                        key.push(b':');
                    }
                    Format::Csv => csv_text(name.as_bytes(), &mut key),
                }
                key
            })
            .collect();
        Encoder { format, keys }
    }

    /// What comes before the rows: the CSV header row (nothing for JSON Lines).
    pub fn header(&self, out: &mut Vec<u8>) {
        if self.format == Format::Csv {
            for (i, key) in self.keys.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(key);
            }
            out.extend_from_slice(b"\r\n");
        }
    }

    /// Appends one row (`values` in column order) with its line end.
    pub fn row(&self, values: &[Value], out: &mut Vec<u8>) -> CoreResult<()> {
        match self.format {
            Format::Jsonl => {
                out.push(b'{');
                for (i, (key, value)) in self.keys.iter().zip(values).enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(key);
                    json_value(value, out)?;
                }
                out.extend_from_slice(b"}\n");
            }
            Format::Csv => {
                for (i, value) in values.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    csv_value(value, out)?;
                }
                out.extend_from_slice(b"\r\n");
            }
        }
        Ok(())
    }
}

fn json_value(value: &Value, out: &mut Vec<u8>) -> CoreResult<()> {
    match value {
        Value::Empty => out.extend_from_slice(b"null"),
        Value::Float(f) if !f.is_finite() => json_string(&float_text(*f), out),
        Value::Str(s) => json_string(s, out),
        Value::DateTime(_) | Value::Uuid(_) | Value::Bytes(_) => {
            out.push(b'"');
            plain(value, out)?;
            out.push(b'"');
        }
        _ => plain(value, out)?,
    }
    Ok(())
}

fn csv_value(value: &Value, out: &mut Vec<u8>) -> CoreResult<()> {
    match value {
        Value::Empty => {}
        Value::Str(s) => csv_text(s.as_bytes(), out),
        // Through csv_text: an empty byte string is `""`, and a document may hold anything.
        Value::Bytes(_) | Value::Json(_) => {
            let mut field = Vec::new();
            plain(value, &mut field)?;
            csv_text(&field, out);
        }
        // Numbers, booleans, timestamps, UUIDs and base64 never need quoting.
        _ => plain(value, out)?,
    }
    Ok(())
}

/// The value's text without any quoting.
fn plain(value: &Value, out: &mut Vec<u8>) -> CoreResult<()> {
    match value {
        Value::Int(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Value::Float(f) => out.extend_from_slice(float_text(*f).as_bytes()),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Str(s) => out.extend_from_slice(s.as_bytes()),
        Value::DateTime(t) => text::datetime(*t, out),
        Value::Uuid(u) => text::uuid(u, out),
        Value::Bytes(b) => text::base64(b, out),
        Value::Json(doc) => {
            let text = pj1_to_text(doc)
                .map_err(|e| CoreError::new("ERR_PAGE_FORMAT", format!("a JSON value does not decode: {e:?}")))?;
            out.extend_from_slice(text.as_bytes());
        }
        Value::Empty => {}
    }
    Ok(())
}

/// Rust's shortest round-trip form, which always marks a float (`1.0`,
/// `1e300`, `-0.0`); the names JSON lacks for the others.
fn float_text(f: f64) -> String {
    if f.is_nan() {
        "NaN".to_string()
    } else if f.is_infinite() {
        if f > 0.0 { "Infinity" } else { "-Infinity" }.to_string()
    } else {
        format!("{f:?}")
    }
}

/// A JSON string literal: `"`, `\` and control characters escaped, the rest
/// as UTF-8. Runs that need no escape are copied whole (every byte of a
/// multi-byte character is 0x80 or above, so a byte scan is exact).
fn json_string(s: &str, out: &mut Vec<u8>) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escaped: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => &[],
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if escaped.is_empty() {
            out.extend_from_slice(format!("\\u{:04x}", b).as_bytes());
        } else {
            out.extend_from_slice(escaped);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// A CSV field of text: quoted when it is empty or holds `,` `"` CR or LF.
fn csv_text(text: &[u8], out: &mut Vec<u8>) {
    if !text.is_empty() && !text.iter().any(|b| matches!(b, b',' | b'"' | b'\r' | b'\n')) {
        out.extend_from_slice(text);
        return;
    }
    out.push(b'"');
    for &b in text {
        if b == b'"' {
            out.push(b'"');
        }
        out.push(b);
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use powdb_storage::pj1::parse_json_text;

    fn every_type() -> (Vec<&'static str>, Vec<Vec<Value>>) {
        let columns = vec!["i", "f", "b", "s", "t", "u", "y", "j"];
        let json = parse_json_text(r#"{"b":[1,2.5,"x,\"y\"\n"],"a":null}"#).unwrap();
        let full = vec![
            Value::Int(i64::MIN),
            Value::Float(0.1),
            Value::Bool(true),
            Value::Str("a,\"b\"\r\nç\u{1}".into()),
            Value::DateTime(1),
            Value::Uuid([0xab; 16]),
            Value::Bytes(vec![0xff, 0, 1]),
            Value::Json(json.into_boxed_slice()),
        ];
        let empty = vec![
            Value::Int(9_007_199_254_740_993),
            Value::Float(f64::NAN),
            Value::Bool(false),
            Value::Str(String::new()),
            Value::Empty,
            Value::Empty,
            Value::Bytes(Vec::new()),
            Value::Empty,
        ];
        (columns, vec![full, empty])
    }

    fn encode(format: Format) -> String {
        let (columns, rows) = every_type();
        let encoder = Encoder::new(format, &columns);
        let mut out = Vec::new();
        encoder.header(&mut out);
        for row in &rows {
            encoder.row(row, &mut out).unwrap();
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn jsonl_writes_one_object_per_row_in_column_order() {
        assert_eq!(
            encode(Format::Jsonl),
            concat!(
                r#"{"i":-9223372036854775808,"f":0.1,"b":true,"s":"a,\"b\"\r\nç\u0001","t":"1970-01-01T00:00:00.000001Z","#,
                r#""u":"abababab-abab-abab-abab-abababababab","y":"/wAB","j":{"a":null,"b":[1,2.5,"x,\"y\"\n"]}}"#,
                "\n",
                r#"{"i":9007199254740993,"f":"NaN","b":false,"s":"","t":null,"u":null,"y":"","j":null}"#,
                "\n"
            )
        );
    }

    #[test]
    fn csv_quotes_only_what_needs_it_and_tells_empty_from_empty_string() {
        assert_eq!(
            encode(Format::Csv),
            concat!(
                "i,f,b,s,t,u,y,j\r\n",
                "-9223372036854775808,0.1,true,\"a,\"\"b\"\"\r\nç\u{1}\",1970-01-01T00:00:00.000001Z,",
                "abababab-abab-abab-abab-abababababab,/wAB,\"{\"\"a\"\":null,\"\"b\"\":[1,2.5,\"\"x,\\\"\"y\\\"\"\\n\"\"]}\"\r\n",
                "9007199254740993,NaN,false,\"\",,,\"\",\r\n"
            )
        );
    }

    #[test]
    fn floats_read_back_to_the_same_bits() {
        for f in [0.1, -0.0, 1.0, 1e300, 5e-324, f64::MAX, -1.5e-7, 123456789.125] {
            let text = float_text(f);
            assert!(text.contains(['.', 'e']), "{text} reads as a float");
            assert_eq!(text.parse::<f64>().unwrap().to_bits(), f.to_bits(), "{text}");
        }
        assert_eq!([float_text(f64::INFINITY), float_text(f64::NEG_INFINITY)], ["Infinity", "-Infinity"]);
    }

    #[test]
    fn a_header_name_needing_quotes_is_quoted() {
        let mut out = Vec::new();
        Encoder::new(Format::Csv, &["a", "b,c"]).header(&mut out);
        assert_eq!(out, b"a,\"b,c\"\r\n");
        assert_eq!(Format::parse("xml").unwrap_err().code, "ERR_INVALID_ARG");
    }
}
