//! TEMPORARY stand-in until the csv branch lands.
use super::DataError;
use std::path::Path;
pub struct Captions {
    pub encoding: &'static str,
    pub ids: Vec<String>,
    pub captions: Vec<String>,
    pub lines: Vec<u64>,
    pub warnings: Vec<String>,
}
pub struct Ids {
    pub encoding: &'static str,
    pub ids: Vec<String>,
    pub lines: Vec<u64>,
    pub warnings: Vec<String>,
}
pub fn read_captions(path: &Path, id_col: &str) -> Result<Captions, DataError> {
    let mut r = ::csv::Reader::from_path(path).map_err(|e| DataError::BadFile {
        path: path.into(),
        message: e.to_string(),
    })?;
    let h = r.headers().unwrap().clone();
    let i = h.iter().position(|c| c == id_col).unwrap();
    let j = h.iter().position(|c| c == "caption").unwrap();
    let mut out = Captions {
        encoding: "UTF-8",
        ids: vec![],
        captions: vec![],
        lines: vec![],
        warnings: vec![],
    };
    for rec in r.records() {
        let rec = rec.unwrap();
        out.ids.push(rec[i].trim().into());
        out.captions.push(rec[j].trim().replace('\n', " "));
        out.lines.push(rec.position().unwrap().line());
    }
    Ok(out)
}
pub fn read_ids(path: &Path, id_col: &str) -> Result<Ids, DataError> {
    let mut r = ::csv::Reader::from_path(path).map_err(|e| DataError::BadFile {
        path: path.into(),
        message: e.to_string(),
    })?;
    let h = r.headers().unwrap().clone();
    let i = h.iter().position(|c| c == id_col).unwrap();
    let mut out = Ids {
        encoding: "UTF-8",
        ids: vec![],
        lines: vec![],
        warnings: vec![],
    };
    for rec in r.records() {
        let rec = rec.unwrap();
        out.ids.push(rec[i].trim().into());
        out.lines.push(rec.position().unwrap().line());
    }
    Ok(out)
}
