//! Engine-neutral rows and schemas. Generic code (workload ops, dump) works
//! on these so it runs against either generation and survives `alter table`
//! changing the table's shape; `db.rs` converts at the engine boundary.

/// One cell. Mirrors `types::Value` of both generations (`Json` exists only
/// in 0.29).
#[derive(Clone, Debug, PartialEq)]
pub enum Val {
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
    DateTime(i64),
    Uuid([u8; 16]),
    Bytes(Vec<u8>),
    Json(Vec<u8>),
    Empty,
}

/// A column type, named as the engines' `TypeId` variants are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColType {
    Empty,
    Int,
    Float,
    Bool,
    Str,
    DateTime,
    Uuid,
    Bytes,
    Json,
}

impl ColType {
    pub fn name(self) -> &'static str {
        match self {
            ColType::Empty => "Empty",
            ColType::Int => "Int",
            ColType::Float => "Float",
            ColType::Bool => "Bool",
            ColType::Str => "Str",
            ColType::DateTime => "DateTime",
            ColType::Uuid => "Uuid",
            ColType::Bytes => "Bytes",
            ColType::Json => "Json",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub ty: ColType,
    pub required: bool,
}

impl Column {
    pub fn new(name: &str, ty: ColType, required: bool) -> Column {
        Column { name: name.to_string(), ty, required }
    }
}

/// The fixture table shape (`create`, `add-table`, `recreate`).
pub fn fixture_columns() -> Vec<Column> {
    vec![
        Column::new("id", ColType::Int, true),
        Column::new("name", ColType::Str, true),
        Column::new("score", ColType::Int, false),
    ]
}

/// Position of `name` in `columns`.
pub fn position(columns: &[Column], name: &str) -> Option<usize> {
    columns.iter().position(|c| c.name == name)
}

impl Val {
    /// Appends a self-delimiting encoding (type tag, then a fixed-width or
    /// length-prefixed payload) so distinct rows never encode alike. This is
    /// what `dump` hashes: it must never change.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let bytes = |out: &mut Vec<u8>, tag: u8, b: &[u8]| {
            out.push(tag);
            out.extend_from_slice(&(b.len() as u64).to_le_bytes());
            out.extend_from_slice(b);
        };
        match self {
            Val::Empty => out.push(0),
            Val::Int(v) => {
                out.push(1);
                out.extend_from_slice(&v.to_le_bytes());
            }
            Val::Float(v) => {
                out.push(2);
                out.extend_from_slice(&v.to_bits().to_le_bytes());
            }
            Val::Bool(v) => out.extend_from_slice(&[3, u8::from(*v)]),
            Val::Str(s) => bytes(out, 4, s.as_bytes()),
            Val::DateTime(v) => {
                out.push(5);
                out.extend_from_slice(&v.to_le_bytes());
            }
            Val::Uuid(u) => {
                out.push(6);
                out.extend_from_slice(u);
            }
            Val::Bytes(b) => bytes(out, 7, b),
            Val::Json(b) => bytes(out, 8, b),
        }
    }

    /// Short text for messages: long strings are cut.
    pub fn short(&self) -> String {
        match self {
            Val::Str(s) if s.len() > 24 => {
                let cut: String = s.chars().take(20).collect();
                format!("{cut:?}..({} bytes)", s.len())
            }
            Val::Str(s) => format!("{s:?}"),
            Val::Bytes(b) | Val::Json(b) => format!("<{} bytes>", b.len()),
            other => format!("{other:?}"),
        }
    }

    /// Bytes this value adds to a row's variable area (0 for fixed types).
    pub fn var_len(&self) -> usize {
        match self {
            Val::Str(s) => s.len(),
            Val::Bytes(b) | Val::Json(b) => b.len(),
            _ => 0,
        }
    }
}

/// A generous upper bound of a row's encoded size (header, bitmap, fixed
/// region, offset table and variable data, of either generation), used to
/// keep rows inline where a generation cannot spill.
pub fn row_size_bound(row: &[Val]) -> usize {
    32 + row.len() * 20 + row.iter().map(Val::var_len).sum::<usize>()
}
