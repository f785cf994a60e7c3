//! Datasets.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{0}")]
    Invalid(String),
    /// Reading or writing a file failed.
    #[error(transparent)]
    Io(#[from] crate::error::IoError),
    /// A CSV file is neither UTF-8 (with or without BOM) nor GB18030/GBK.
    #[error(
        "{}: text is neither UTF-8 nor GB18030/GBK (invalid UTF-8 at byte {utf8_offset}, and GB18030 decoding fails too)",
        path.display()
    )]
    Encoding { path: PathBuf, utf8_offset: usize },
    /// A CSV file has no header line.
    #[error("{}: no header line (the file is empty or blank)", path.display())]
    NoHeader { path: PathBuf },
    /// A column asked for is not in the header.
    #[error("{}, line {line}: missing column `{column}` (header has: {found})", path.display())]
    MissingColumn {
        path: PathBuf,
        line: u64,
        column: String,
        found: String,
    },
    /// A column asked for appears more than once in the header.
    #[error("{}, line {line}: column `{column}` appears more than once in the header", path.display())]
    DuplicateColumn {
        path: PathBuf,
        line: u64,
        column: String,
    },
    /// A row has a different number of fields than the header.
    #[error(
        "{}, line {line}: row has {got} fields, header has {expected} (unquoted comma in a caption?): {row:?}",
        path.display()
    )]
    FieldCount {
        path: PathBuf,
        line: u64,
        expected: usize,
        got: usize,
        row: String,
    },
    /// A quoted field is still open at the end of the file.
    #[error("{}, line {line}: quoted field opened here is never closed (stray `\"`?)", path.display())]
    UnterminatedQuote { path: PathBuf, line: u64 },
    /// The CSV parser failed.
    #[error("{}, line {line}: malformed CSV: {source}", path.display())]
    Csv {
        path: PathBuf,
        line: u64,
        #[source]
        source: ::csv::Error,
    },
    /// An id field is empty.
    #[error("{}, line {line}: empty `{column}`", path.display())]
    EmptyId {
        path: PathBuf,
        line: u64,
        column: String,
    },
    /// An id appears twice; ids must be unique.
    #[error("{}, line {line}: duplicate `{column}` {id:?} (first seen on line {first_line})", path.display())]
    DuplicateId {
        path: PathBuf,
        line: u64,
        first_line: u64,
        column: String,
        id: String,
    },
    /// A parameter is out of range.
    #[error("parameter `{name}` {message}, got {value}")]
    Param {
        name: &'static str,
        value: String,
        message: &'static str,
    },
    /// Encoding an image failed.
    #[error("encoding image {}: {source}", path.display())]
    ImageEncode {
        path: PathBuf,
        #[source]
        source: ::image::ImageError,
    },
    /// Writing CSV records failed.
    #[error("writing CSV {}: {source}", path.display())]
    CsvWrite {
        path: PathBuf,
        #[source]
        source: ::csv::Error,
    },
    /// Text cannot be written in the requested encoding.
    #[error("caption {text:?} cannot be encoded in {encoding}")]
    Unencodable {
        encoding: &'static str,
        text: String,
    },
}

pub mod csv;
pub mod synthetic;
