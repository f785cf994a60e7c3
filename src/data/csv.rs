//! Robust reading of the contest's CSV files (`ImageWordData.csv`, `word_test.csv`,
//! `word_data.csv`, `image_data.csv`, `image_test.csv`).
//!
//! The 2024 Teddy Cup problem B ships its captions as RFC 4180 CSV (RFC 4180, "Common Format and
//! MIME Type for Comma-Separated Values Files", 2005): quoted fields may hold commas, doubled
//! quotes and newlines (three captions of attachment 1 do), so a real CSV parser (the `csv`
//! crate) is used, never line splitting. Files re-saved by Excel on a Chinese Windows come out in
//! GBK with CRLF line ends, so the encoding is detected: a BOM decides (UTF-8 or UTF-16); else
//! valid UTF-8 is UTF-8; else the bytes are decoded as GB18030 (a superset of GBK and GB2312)
//! with `encoding_rs`, and the encoding used is reported in [`Table::encoding`]. A file that is
//! plainly UTF-8 (8 or more non-ASCII characters before its first invalid byte) but holds a few
//! corrupt bytes stays UTF-8: the bad sequences become U+FFFD and a warning names their lines.
//!
//! Rules, in the order they are applied:
//! - the first non-blank record is the header; columns are matched by name, case-insensitively
//!   and trimmed, in any order; extra columns are ignored. The contest's files use the English
//!   names `image_id`, `text_id`, `caption` (no Chinese header names are known to be used);
//! - every value is trimmed, and each run of whitespace that holds a line break inside a value is
//!   replaced by one space (so a caption is always one line);
//! - the first requested column is the *key* (an id): it must be non-empty and unique (errors);
//! - a row whose fields are all empty (as Excel writes for cleared rows, `,,`) is skipped with one
//!   warning listing the lines;
//! - a row with fewer fields than the header, or more non-empty ones, is an error (trailing empty
//!   fields are tolerated);
//! - an empty value in a non-key column (an empty caption) is a **warning and the row is kept**
//!   with an empty value: a query in `word_test.csv` must still get its rows in the result file,
//!   and an empty training caption merely has no text features; callers that want to drop such
//!   rows can filter on the empty string;
//! - a quoted field still open at the end of the file is an error; a field spanning three or more
//!   lines, or with a continuation line that starts like the row's first field followed by a
//!   comma (`Image14001002-1142.jpg,`), gets a warning: a stray quote may have merged rows.
//!
//! Every error and warning names the file, the 1-based physical line where the record starts,
//! and the offending value.

use std::collections::HashMap;
use std::path::Path;

use encoding_rs::{Encoding, GB18030, UTF_8};

use super::DataError;
use crate::error::IoError;

/// Name of the caption column in the contest's files.
pub const CAPTION_COLUMN: &str = "caption";
/// Name of the image id column in the contest's files.
pub const IMAGE_ID_COLUMN: &str = "image_id";
/// Name of the text id column in the contest's files.
pub const TEXT_ID_COLUMN: &str = "text_id";

/// Encoding names reported in [`Table::encoding`].
pub const ENC_UTF8: &str = "UTF-8";
/// UTF-8 with a byte order mark (as Excel's "CSV UTF-8" saves).
pub const ENC_UTF8_BOM: &str = "UTF-8 with BOM";
/// GB18030, which covers GBK and GB2312 (as Excel's plain "CSV" saves on a Chinese Windows).
pub const ENC_GB18030: &str = "GB18030";
/// UTF-16 little endian with BOM.
pub const ENC_UTF16LE: &str = "UTF-16LE";
/// UTF-16 big endian with BOM.
pub const ENC_UTF16BE: &str = "UTF-16BE";

/// One data row: the requested columns' values, in the order they were requested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// 1-based physical line of the file where the record starts.
    pub line: u64,
    /// Values of the requested columns, trimmed, line breaks turned into spaces.
    pub values: Vec<String>,
}

/// The requested columns of a CSV file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// Encoding the file was decoded from (one of the `ENC_*` constants).
    pub encoding: &'static str,
    /// The requested column names, as given.
    pub columns: Vec<String>,
    /// The data rows, in file order.
    pub rows: Vec<Row>,
    /// Warnings (skipped blank rows, empty values, suspicious multi-line fields), each naming the
    /// file and line.
    pub warnings: Vec<String>,
}

/// An id column and the caption column of a file such as `ImageWordData.csv` or `word_test.csv`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Captions {
    /// Encoding the file was decoded from.
    pub encoding: &'static str,
    /// The ids, unique, in file order.
    pub ids: Vec<String>,
    /// The captions, parallel to `ids`; may be empty strings (then a warning was given).
    pub captions: Vec<String>,
    /// 1-based line where each row starts, parallel to `ids`.
    pub lines: Vec<u64>,
    /// Warnings, each naming the file and line.
    pub warnings: Vec<String>,
}

/// The id column of a file such as `image_data.csv` or `image_test.csv`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ids {
    /// Encoding the file was decoded from.
    pub encoding: &'static str,
    /// The ids, unique, in file order.
    pub ids: Vec<String>,
    /// 1-based line where each row starts, parallel to `ids`.
    pub lines: Vec<u64>,
    /// Warnings, each naming the file and line.
    pub warnings: Vec<String>,
}

/// Reads `columns` of the CSV file at `path`; `columns[0]` is the key (non-empty, unique).
///
/// See the module documentation for the rules.
pub fn read_table(path: &Path, columns: &[&str]) -> Result<Table, DataError> {
    let bytes = std::fs::read(path).map_err(|e| IoError::new("reading", path, e))?;
    parse_table(&bytes, path, columns)
}

/// Reads the id column `id_col` and the `caption` column of the CSV file at `path`.
pub fn read_captions(path: &Path, id_col: &str) -> Result<Captions, DataError> {
    let table = read_table(path, &[id_col, CAPTION_COLUMN])?;
    let n = table.rows.len();
    let (mut ids, mut captions, mut lines) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for row in table.rows {
        let mut values = row.values.into_iter();
        ids.push(values.next().unwrap_or_default());
        captions.push(values.next().unwrap_or_default());
        lines.push(row.line);
    }
    Ok(Captions {
        encoding: table.encoding,
        ids,
        captions,
        lines,
        warnings: table.warnings,
    })
}

/// Reads the id column `id_col` of the CSV file at `path`.
pub fn read_ids(path: &Path, id_col: &str) -> Result<Ids, DataError> {
    let table = read_table(path, &[id_col])?;
    let n = table.rows.len();
    let (mut ids, mut lines) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for row in table.rows {
        ids.push(row.values.into_iter().next().unwrap_or_default());
        lines.push(row.line);
    }
    Ok(Ids {
        encoding: table.encoding,
        ids,
        lines,
        warnings: table.warnings,
    })
}

/// A decoded text file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// The text, without BOM.
    pub text: String,
    /// The encoding used (one of the `ENC_*` constants).
    pub encoding: &'static str,
    /// Byte offsets in `text` of the U+FFFD put in place of invalid UTF-8 sequences (only for a
    /// file that is clearly UTF-8 apart from a few corrupt bytes).
    pub replaced: Vec<usize>,
}

/// How many non-ASCII characters a file must show as valid UTF-8 before its first invalid byte
/// for that byte to count as corruption rather than a sign of GB18030: GBK text almost never
/// forms valid multi-byte UTF-8 for more than a character or two.
const UTF8_EVIDENCE: usize = 8;

/// Decodes the bytes of a text file: by its BOM (UTF-8, UTF-16) if present; else as UTF-8 if
/// valid, or if at least 8 non-ASCII characters decode as UTF-8 before the first invalid byte
/// (then invalid sequences become U+FFFD and are listed in [`Decoded::replaced`]); else as
/// GB18030. `path` is for messages only.
pub fn decode_text(bytes: &[u8], path: &Path) -> Result<Decoded, DataError> {
    let encoding_error = |utf8_offset| DataError::Encoding {
        path: path.to_path_buf(),
        utf8_offset,
    };
    let done = |text: String, encoding| Decoded {
        text,
        encoding,
        replaced: Vec::new(),
    };
    if let Some((encoding, bom_len)) = Encoding::for_bom(bytes) {
        let body = &bytes[bom_len..];
        if encoding == UTF_8 {
            let (text, replaced) = utf8_lossy(body);
            return Ok(Decoded {
                text,
                encoding: ENC_UTF8_BOM,
                replaced,
            });
        }
        let name = if encoding == encoding_rs::UTF_16LE {
            ENC_UTF16LE
        } else {
            ENC_UTF16BE
        };
        return encoding
            .decode_without_bom_handling_and_without_replacement(body)
            .map(|s| done(s.into_owned(), name))
            .ok_or_else(|| DataError::BadUtf16 {
                path: path.to_path_buf(),
                encoding: name,
            });
    }
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(done(s.to_owned(), ENC_UTF8)),
        Err(e) => {
            let prefix = std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or("");
            if prefix.chars().filter(|c| !c.is_ascii()).count() >= UTF8_EVIDENCE {
                let (text, replaced) = utf8_lossy(bytes);
                return Ok(Decoded {
                    text,
                    encoding: ENC_UTF8,
                    replaced,
                });
            }
            GB18030
                .decode_without_bom_handling_and_without_replacement(bytes)
                .map(|s| done(s.into_owned(), ENC_GB18030))
                .ok_or_else(|| encoding_error(e.valid_up_to()))
        }
    }
}

/// UTF-8 decoding with U+FFFD for each invalid sequence, and the offsets of those in the text.
fn utf8_lossy(mut bytes: &[u8]) -> (String, Vec<usize>) {
    let mut text = String::with_capacity(bytes.len());
    let mut replaced = Vec::new();
    loop {
        match std::str::from_utf8(bytes) {
            Ok(rest) => {
                text.push_str(rest);
                return (text, replaced);
            }
            Err(e) => {
                let valid = e.valid_up_to();
                text.push_str(std::str::from_utf8(&bytes[..valid]).unwrap_or(""));
                replaced.push(text.len());
                text.push(char::REPLACEMENT_CHARACTER);
                let skip = e.error_len().unwrap_or(bytes.len() - valid);
                bytes = &bytes[valid + skip..];
            }
        }
    }
}

/// Like [`read_table`], on the bytes of a file already in memory (`path` is for messages only).
pub fn parse_table(bytes: &[u8], path: &Path, columns: &[&str]) -> Result<Table, DataError> {
    if columns.is_empty() {
        return Err(DataError::Param {
            name: "columns",
            value: "[]".to_owned(),
            message: "must name at least one column",
        });
    }
    let Decoded {
        text,
        encoding,
        replaced,
    } = decode_text(bytes, path)?;
    let lines = LineIndex::new(&text);
    let path_buf = path.to_path_buf();
    let mut warnings = Vec::new();
    if !replaced.is_empty() {
        let mut bad_lines: Vec<u64> = replaced.iter().map(|&at| lines.line_of(at)).collect();
        bad_lines.dedup();
        let shown: Vec<String> = bad_lines.iter().take(10).map(u64::to_string).collect();
        warnings.push(format!(
            "{}: {} invalid UTF-8 byte sequence(s) replaced by U+FFFD, on line(s) {}{}",
            path.display(),
            replaced.len(),
            shown.join(", "),
            if bad_lines.len() > 10 { ", ..." } else { "" }
        ));
    }

    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut records = reader.records();

    // Header: the first record that is not all blank.
    let header_line;
    let header = loop {
        match records.next() {
            None => return Err(DataError::NoHeader { path: path_buf }),
            Some(Err(e)) => return Err(csv_error(&path_buf, &lines, &text, e)),
            Some(Ok(rec)) => {
                if rec.iter().all(|f| f.trim().is_empty()) {
                    continue;
                }
                header_line = record_line(&rec, &lines, &text);
                break rec;
            }
        }
    };
    let header_names: Vec<String> = header.iter().map(normalize_name).collect();
    let mut col_index = Vec::with_capacity(columns.len());
    for &column in columns {
        let wanted = normalize_name(column);
        let mut found = header_names
            .iter()
            .enumerate()
            .filter(|(_, h)| **h == wanted);
        match (found.next(), found.next()) {
            (Some((i, _)), None) => col_index.push(i),
            (None, _) => {
                return Err(DataError::MissingColumn {
                    path: path_buf,
                    line: header_line,
                    column: column.to_owned(),
                    found: header.iter().collect::<Vec<_>>().join(", "),
                });
            }
            (Some(_), Some(_)) => {
                return Err(DataError::DuplicateColumn {
                    path: path_buf,
                    line: header_line,
                    column: column.to_owned(),
                });
            }
        }
    }
    let n_fields = header.len();

    let mut rows = Vec::new();
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut blank_lines = Vec::new();
    let mut last_start = None;
    for rec in records {
        let rec = rec.map_err(|e| csv_error(&path_buf, &lines, &text, e))?;
        let line = record_line(&rec, &lines, &text);
        last_start = rec.position().map(|p| p.byte() as usize);
        if rec.iter().all(|f| f.trim().is_empty()) {
            blank_lines.push(line);
            continue;
        }
        let extra_non_empty = rec.iter().skip(n_fields).any(|f| !f.trim().is_empty());
        if rec.len() < n_fields || extra_non_empty {
            let row: String = rec.iter().collect::<Vec<_>>().join(",");
            return Err(DataError::FieldCount {
                path: path_buf,
                line,
                expected: n_fields,
                got: rec.len(),
                row: shorten(&row, 120),
            });
        }
        let first_shape = shape(rec.get(0).unwrap_or("").trim());
        for (i, field) in rec.iter().enumerate() {
            let breaks = count_line_breaks(field);
            if breaks == 0 {
                continue;
            }
            // A continuation line that starts like this row's first field (same pattern of
            // letters and digits, e.g. `Image14001002-1142.jpg,`) is most likely a swallowed row.
            let looks_like_row = field.split(['\n', '\r']).skip(1).any(|l| {
                l.split_once(',').is_some_and(|(head, _)| {
                    !first_shape.is_empty() && shape(head.trim()) == first_shape
                })
            });
            if breaks >= 2 || looks_like_row {
                warnings.push(format!(
                    "{}, line {line}: field {} spans {} lines; check for a stray quote merging rows: {:?}",
                    path.display(),
                    i + 1,
                    breaks + 1,
                    shorten(field, 120)
                ));
            }
        }
        let values: Vec<String> = col_index.iter().map(|&i| clean_value(&rec[i])).collect();
        if values[0].is_empty() {
            return Err(DataError::EmptyId {
                path: path_buf,
                line,
                column: columns[0].to_owned(),
            });
        }
        if let Some(&first_line) = seen.get(&values[0]) {
            return Err(DataError::DuplicateId {
                path: path_buf,
                line,
                first_line,
                column: columns[0].to_owned(),
                id: values[0].clone(),
            });
        }
        seen.insert(values[0].clone(), line);
        for (value, column) in values.iter().zip(columns).skip(1) {
            if value.is_empty() {
                warnings.push(format!(
                    "{}, line {line}: empty `{column}` for {} {:?} (row kept, value empty)",
                    path.display(),
                    columns[0],
                    values[0]
                ));
            }
        }
        rows.push(Row { line, values });
    }
    if let Some(start) = last_start {
        if let Some(open) = quote_open_at_eof(&text, start) {
            return Err(DataError::UnterminatedQuote {
                path: path_buf,
                line: lines.line_of(open),
            });
        }
    }
    if !blank_lines.is_empty() {
        let shown: Vec<String> = blank_lines.iter().take(10).map(u64::to_string).collect();
        warnings.push(format!(
            "{}: skipped {} row(s) with all fields empty, on line(s) {}{}",
            path.display(),
            blank_lines.len(),
            shown.join(", "),
            if blank_lines.len() > 10 { ", ..." } else { "" }
        ));
    }
    Ok(Table {
        encoding,
        columns: columns.iter().map(|c| (*c).to_owned()).collect(),
        rows,
        warnings,
    })
}

/// Trims a value and turns each whitespace run holding a line break into one space.
fn clean_value(raw: &str) -> String {
    let trimmed = raw.trim();
    if !trimmed.contains(['\n', '\r']) {
        return trimmed.to_owned();
    }
    let mut out = String::with_capacity(trimmed.len());
    let mut run = String::new();
    for c in trimmed.chars() {
        if c.is_whitespace() {
            run.push(c);
            continue;
        }
        if !run.is_empty() {
            if run.contains(['\n', '\r']) {
                out.push(' ');
            } else {
                out.push_str(&run);
            }
            run.clear();
        }
        out.push(c);
    }
    out
}

/// Header names compare trimmed, without BOM, lower-cased.
fn normalize_name(name: &str) -> String {
    name.trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}')
        .to_lowercase()
}

/// The pattern of a value: ASCII digits as `9`, ASCII letters as `a`, anything else as is.
fn shape(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '0'..='9' => '9',
            c if c.is_ascii_alphabetic() => 'a',
            c => c,
        })
        .collect()
}

/// Number of line breaks (`\r\n`, `\n` or a lone `\r`) in `s`.
fn count_line_breaks(s: &str) -> usize {
    let b = s.as_bytes();
    b.iter()
        .enumerate()
        .filter(|&(i, &c)| c == b'\n' || (c == b'\r' && b.get(i + 1) != Some(&b'\n')))
        .count()
}

/// At most `max` characters of `s`, with `...` when cut.
fn shorten(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((at, _)) => format!("{}...", &s[..at]),
        None => s.to_owned(),
    }
}

/// 1-based line of the first non-line-break byte of a record (the parser's record position may
/// point at blank lines or at the `\n` of a preceding CRLF).
fn record_line(rec: &::csv::StringRecord, lines: &LineIndex, text: &str) -> u64 {
    let start = rec.position().map_or(0, |p| p.byte() as usize);
    lines.line_of(skip_line_breaks(text, start))
}

fn skip_line_breaks(text: &str, mut at: usize) -> usize {
    let b = text.as_bytes();
    while at < b.len() && (b[at] == b'\n' || b[at] == b'\r') {
        at += 1;
    }
    at
}

fn csv_error(path: &Path, lines: &LineIndex, text: &str, e: ::csv::Error) -> DataError {
    let line = e.position().map_or(0, |p| {
        lines.line_of(skip_line_breaks(text, p.byte() as usize))
    });
    DataError::Csv {
        path: path.to_path_buf(),
        line,
        cause: e,
    }
}

/// Byte offset of a quote opened in the record starting at `start` and never closed, if any.
///
/// Mirrors the lenient rules of `csv-core`: a quote opens a quoted field only at the start of a
/// field; inside, `""` is an escaped quote and a lone `"` closes it.
fn quote_open_at_eof(text: &str, start: usize) -> Option<usize> {
    let b = text.as_bytes();
    let mut i = skip_line_breaks(text, start);
    let mut at_field_start = true;
    let mut open = None;
    while i < b.len() {
        let c = b[i];
        if open.is_some() {
            if c == b'"' {
                if b.get(i + 1) == Some(&b'"') {
                    i += 1;
                } else {
                    open = None;
                }
            }
        } else if c == b'"' && at_field_start {
            open = Some(i);
            at_field_start = false;
        } else {
            at_field_start = matches!(c, b',' | b'\n' | b'\r');
        }
        i += 1;
    }
    open
}

/// Maps byte offsets to 1-based physical line numbers (`\r\n`, `\n` and lone `\r` end lines).
struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    fn new(text: &str) -> Self {
        let b = text.as_bytes();
        let mut starts = vec![0];
        for (i, &c) in b.iter().enumerate() {
            if c == b'\n' || (c == b'\r' && b.get(i + 1) != Some(&b'\n')) {
                starts.push(i + 1);
            }
        }
        Self { starts }
    }

    fn line_of(&self, byte: usize) -> u64 {
        self.starts.partition_point(|&s| s <= byte) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn p() -> &'static Path {
        Path::new("test.csv")
    }

    fn captions(bytes: &[u8]) -> Result<Table, DataError> {
        parse_table(bytes, p(), &["image_id", "caption"])
    }

    #[test]
    fn plain_utf8_lines_and_values() {
        let t = captions(b"image_id,caption\na.jpg,red circle\nb.jpg,  blue square \n").unwrap();
        assert_eq!(t.encoding, ENC_UTF8);
        assert_eq!(t.rows.len(), 2);
        assert_eq!(t.rows[0].line, 2);
        assert_eq!(t.rows[0].values, ["a.jpg", "red circle"]);
        assert_eq!(t.rows[1].line, 3);
        assert_eq!(t.rows[1].values, ["b.jpg", "blue square"]);
        assert!(t.warnings.is_empty(), "{:?}", t.warnings);
    }

    #[test]
    fn bom_is_stripped_and_reported() {
        let mut bytes = vec![0xEF, 0xBB, 0xBF];
        bytes.extend_from_slice("image_id,caption\na.jpg,红色的圆\n".as_bytes());
        let t = captions(&bytes).unwrap();
        assert_eq!(t.encoding, ENC_UTF8_BOM);
        assert_eq!(t.rows[0].values, ["a.jpg", "红色的圆"]);
    }

    #[test]
    fn gbk_is_detected_and_decoded() {
        let src =
            "image_id,caption\r\na.jpg,左上角有一个红色的圆形\r\nb.jpg,\"蓝色背景,两个星星\"\r\n";
        let (bytes, _, unmappable) = encoding_rs::GBK.encode(src);
        assert!(!unmappable);
        assert!(
            std::str::from_utf8(&bytes).is_err(),
            "test input must not be UTF-8"
        );
        let t = captions(&bytes).unwrap();
        assert_eq!(t.encoding, ENC_GB18030);
        assert_eq!(t.rows[0].values, ["a.jpg", "左上角有一个红色的圆形"]);
        assert_eq!(t.rows[1].values, ["b.jpg", "蓝色背景,两个星星"]);
        assert_eq!(t.rows[1].line, 3);
    }

    #[test]
    fn utf16le_with_bom() {
        let src = "image_id,caption\na.jpg,猫\n";
        let mut bytes = vec![0xFF, 0xFE];
        for u in src.encode_utf16() {
            bytes.extend_from_slice(&u.to_le_bytes());
        }
        let t = captions(&bytes).unwrap();
        assert_eq!(t.encoding, ENC_UTF16LE);
        assert_eq!(t.rows[0].values, ["a.jpg", "猫"]);

        // A lone low surrogate after the mark: named as bad UTF-16, not as bad UTF-8 or GBK.
        bytes.extend_from_slice(&0xDC00u16.to_le_bytes());
        let err = captions(&bytes).unwrap_err().to_string();
        assert!(
            err.ends_with("starts with a UTF-16LE byte-order mark but is not valid UTF-16LE"),
            "{err}"
        );
    }

    #[test]
    fn undecodable_bytes_are_an_error() {
        // 0x80 alone is invalid UTF-8 and invalid GB18030; 0xFF is never valid in GB18030.
        let err = captions(b"image_id,caption\na.jpg,\xFF\xFF\n").unwrap_err();
        match err {
            DataError::Encoding { utf8_offset, .. } => assert_eq!(utf8_offset, 23),
            other => panic!("wrong error {other}"),
        }
    }

    #[test]
    fn utf8_with_a_corrupt_byte_stays_utf8() {
        let mut bytes = "image_id,caption\na.jpg,左上角有一个红色的圆形\nb.jpg,蓝色"
            .as_bytes()
            .to_vec();
        bytes.extend_from_slice(b"\xE8\xA2,x\xFF\n");
        let t = captions(&bytes);
        let err = t.unwrap_err();
        assert!(
            matches!(err, DataError::FieldCount { line: 3, .. }),
            "{err}"
        );
        let mut bytes = "image_id,caption\na.jpg,左上角有一个红色的圆形\nb.jpg,蓝色"
            .as_bytes()
            .to_vec();
        bytes.extend_from_slice(b"\xE8\xA2x\xFF\n");
        let t = captions(&bytes).unwrap();
        assert_eq!(t.encoding, ENC_UTF8);
        assert_eq!(t.rows[1].values, ["b.jpg", "蓝色\u{FFFD}x\u{FFFD}"]);
        assert_eq!(t.warnings.len(), 1, "{:?}", t.warnings);
        assert!(t.warnings[0].contains("2 invalid") && t.warnings[0].contains("line(s) 3"));
        // Without enough UTF-8 evidence before the bad byte, GB18030 is tried (and fails here).
        let err = captions(b"image_id,caption\na.jpg,\xE8\xA2x\xFF\n").unwrap_err();
        assert!(
            matches!(
                err,
                DataError::Encoding {
                    utf8_offset: 23,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn crlf_lines_are_counted() {
        let t = captions(b"image_id,caption\r\na.jpg,x\r\n\r\nb.jpg,y\r\nc.jpg,z").unwrap();
        let lines: Vec<u64> = t.rows.iter().map(|r| r.line).collect();
        assert_eq!(lines, [2, 4, 5]);
        assert_eq!(t.rows[2].values, ["c.jpg", "z"]);
        assert!(t.rows.iter().all(|r| !r.values[1].contains('\r')));
    }

    #[test]
    fn embedded_newlines_become_spaces_and_lines_stay_physical() {
        let src = "image_id,caption\n\
                   a.jpg,\"\n97再抽一件\"\n\
                   b.jpg,\"试验了黄衫女子;\n\"\n\
                   c.jpg,\"第一行\r\n  第二行 \"\n\
                   d.jpg,\"说\"\"你好\"\"\"\n";
        let t = captions(src.as_bytes()).unwrap();
        let got: Vec<(u64, &str)> = t
            .rows
            .iter()
            .map(|r| (r.line, r.values[1].as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (2, "97再抽一件"),
                (4, "试验了黄衫女子;"),
                (6, "第一行 第二行"),
                (8, "说\"你好\"")
            ]
        );
        assert!(t.warnings.is_empty(), "{:?}", t.warnings);
    }

    #[test]
    fn columns_in_any_order_case_insensitive_extra_ignored() {
        let src = " Caption ,extra,IMAGE_ID\nhello,zzz,a.jpg\nworld,,b.jpg\n";
        let t = captions(src.as_bytes()).unwrap();
        assert_eq!(t.rows[0].values, ["a.jpg", "hello"]);
        assert_eq!(t.rows[1].values, ["b.jpg", "world"]);
    }

    #[test]
    fn duplicate_id_names_both_lines() {
        let err = captions(b"image_id,caption\na.jpg,x\nb.jpg,y\na.jpg,z\n").unwrap_err();
        match &err {
            DataError::DuplicateId {
                line,
                first_line,
                id,
                ..
            } => assert_eq!((*line, *first_line, id.as_str()), (4, 2, "a.jpg")),
            other => panic!("wrong error {other}"),
        }
        let msg = err.to_string();
        assert!(msg.contains("test.csv") && msg.contains("line 4") && msg.contains("a.jpg"));
    }

    #[test]
    fn ids_are_compared_after_trimming() {
        let err = captions(b"image_id,caption\na.jpg,x\n a.jpg ,z\n").unwrap_err();
        assert!(
            matches!(err, DataError::DuplicateId { line: 3, .. }),
            "{err}"
        );
    }

    #[test]
    fn missing_column_lists_header() {
        let err = captions(b"image_id,text\na.jpg,x\n").unwrap_err();
        match &err {
            DataError::MissingColumn {
                line,
                column,
                found,
                ..
            } => {
                assert_eq!(
                    (*line, column.as_str(), found.as_str()),
                    (1, "caption", "image_id, text")
                )
            }
            other => panic!("wrong error {other}"),
        }
    }

    #[test]
    fn duplicate_requested_column_is_an_error() {
        let err = captions(b"image_id,caption,Caption\na.jpg,x,y\n").unwrap_err();
        assert!(matches!(err, DataError::DuplicateColumn { .. }), "{err}");
    }

    #[test]
    fn empty_caption_warns_and_keeps_row() {
        let t = captions(b"image_id,caption\na.jpg,\nb.jpg,\"  \"\nc.jpg,ok\n").unwrap();
        assert_eq!(t.rows.len(), 3);
        assert_eq!(t.rows[0].values, ["a.jpg", ""]);
        assert_eq!(t.rows[1].values, ["b.jpg", ""]);
        assert_eq!(t.warnings.len(), 2, "{:?}", t.warnings);
        assert!(t.warnings[0].contains("line 2") && t.warnings[0].contains("a.jpg"));
        assert!(t.warnings[1].contains("line 3") && t.warnings[1].contains("b.jpg"));
    }

    #[test]
    fn empty_id_is_an_error() {
        let err = captions(b"image_id,caption\na.jpg,x\n ,y\n").unwrap_err();
        assert!(matches!(err, DataError::EmptyId { line: 3, .. }), "{err}");
    }

    #[test]
    fn wrong_field_count_is_an_error() {
        let err = captions(b"image_id,caption\na.jpg,x\nb.jpg,red, blue\n").unwrap_err();
        match &err {
            DataError::FieldCount {
                line,
                expected,
                got,
                row,
                ..
            } => assert_eq!(
                (*line, *expected, *got, row.as_str()),
                (3, 2, 3, "b.jpg,red, blue")
            ),
            other => panic!("wrong error {other}"),
        }
        let err = captions(b"image_id,caption\na.jpg\n").unwrap_err();
        assert!(
            matches!(
                err,
                DataError::FieldCount {
                    line: 2,
                    got: 1,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn trailing_empty_fields_and_blank_rows_are_tolerated() {
        let t = captions(b"image_id,caption\na.jpg,x,,\n,\n,,\nb.jpg,y\n").unwrap();
        assert_eq!(t.rows.len(), 2);
        assert_eq!(t.rows[1].line, 5);
        assert_eq!(t.warnings.len(), 1, "{:?}", t.warnings);
        assert!(t.warnings[0].contains("2 row(s)") && t.warnings[0].contains("3, 4"));
    }

    #[test]
    fn unterminated_quote_is_an_error() {
        let err =
            captions(b"image_id,caption\na.jpg,x\nb.jpg,\"never closed\nc.jpg,z\n").unwrap_err();
        assert!(
            matches!(err, DataError::UnterminatedQuote { line: 3, .. }),
            "{err}"
        );
    }

    #[test]
    fn stray_quote_merging_rows_warns() {
        let t = captions(b"image_id,caption\na.jpg,\"x\nb.jpg,y\nc.jpg,z\"\nd.jpg,w\n").unwrap();
        assert_eq!(t.rows.len(), 2);
        assert_eq!(t.warnings.len(), 1, "{:?}", t.warnings);
        assert!(t.warnings[0].contains("line 2"));
    }

    #[test]
    fn swallowed_row_warns_but_legit_multiline_does_not() {
        let t = captions(b"image_id,caption\na1.jpg,\"x\nb2.jpg,y\"\n").unwrap();
        assert_eq!(t.rows.len(), 1);
        assert_eq!(t.warnings.len(), 1, "{:?}", t.warnings);
        let t = captions(b"image_id,caption\na1.jpg,\"x,\ny, z\"\nb2.jpg,w\n").unwrap();
        assert_eq!(t.rows.len(), 2);
        assert!(t.warnings.is_empty(), "{:?}", t.warnings);
    }

    #[test]
    fn quotes_inside_unquoted_field_are_literal() {
        let t = captions("image_id,caption\na.jpg,暴雪:\"城市守护者\"来了\n".as_bytes()).unwrap();
        assert_eq!(t.rows[0].values[1], "暴雪:\"城市守护者\"来了");
    }

    #[test]
    fn empty_file_has_no_header() {
        assert!(matches!(captions(b""), Err(DataError::NoHeader { .. })));
        assert!(matches!(
            captions(b"\n\n,\n"),
            Err(DataError::NoHeader { .. })
        ));
    }

    #[test]
    fn header_only_gives_no_rows() {
        let t = captions(b"image_id,caption\n").unwrap();
        assert!(t.rows.is_empty());
    }

    #[test]
    fn typed_helpers_read_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("word_test.csv");
        std::fs::write(&path, "text_id,caption\nWord-1,一只猫\nWord-2,\n").unwrap();
        let c = read_captions(&path, TEXT_ID_COLUMN).unwrap();
        assert_eq!(c.ids, ["Word-1", "Word-2"]);
        assert_eq!(c.captions, ["一只猫", ""]);
        assert_eq!(c.lines, [2, 3]);
        assert_eq!(c.warnings.len(), 1);
        let path = dir.path().join("image_test.csv");
        std::fs::write(&path, "image_id\r\nImage1.jpg\r\nImage2.jpg\r\n").unwrap();
        let ids = read_ids(&path, IMAGE_ID_COLUMN).unwrap();
        assert_eq!(ids.ids, ["Image1.jpg", "Image2.jpg"]);
        assert_eq!(ids.lines, [2, 3]);
        let err = read_ids(&dir.path().join("nope.csv"), IMAGE_ID_COLUMN).unwrap_err();
        assert!(err.to_string().contains("nope.csv"), "{err}");
    }

    #[test]
    fn real_teddy_image_word_data() {
        let path = PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/data/teddy/attachment1/ImageWordData.csv"
        ));
        if !path.exists() {
            eprintln!(
                "SKIPPED real_teddy_image_word_data: {} not found",
                path.display()
            );
            return;
        }
        let c = read_captions(&path, IMAGE_ID_COLUMN).unwrap();
        assert_eq!(c.encoding, ENC_UTF8);
        assert_eq!(c.ids.len(), 1000);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        let find = |id: &str| c.ids.iter().position(|x| x == id).unwrap();
        let i = find("Image14001002-1088.jpg");
        assert_eq!(c.captions[i], "97再抽一件全队签名队服长城限定版!");
        assert_eq!(c.lines[i], 187);
        assert_eq!(c.ids[i + 1], "Image14001002-1142.jpg");
        assert_eq!(c.lines[i + 1], 189);
        assert_eq!(
            c.captions[find("Image14001002-3562.jpg")],
            "试验了黄衫女子;"
        );
        assert_eq!(
            c.captions[find("Image14001002-5817.jpg")],
            "朝日啤酒所倡导的理念——\"激发好奇心去探索\"."
        );
        assert!(
            c.captions
                .iter()
                .all(|s| !s.is_empty() && !s.contains('\n'))
        );
        assert!(c.captions.iter().all(|s| s.trim() == s));
        // Ends at the last physical line of the file (1,004 lines: 1,000 rows, a header, and
        // 3 embedded newlines).
        assert_eq!(*c.lines.last().unwrap(), 1004);
    }
}
