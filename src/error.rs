//! The crate's error type.
//!
//! Each area (data, image, text, fusion, retrieval, pipeline) has its own `thiserror` enum whose
//! messages name the offending file, row or value, as linfa and tantivy do; this module gathers
//! them into one [`Error`] so that library callers can match on the area and the binary can print
//! the whole chain with `{:#}`.

use std::path::PathBuf;

/// Any error raised by the library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading, checking, splitting or writing a dataset failed ([`crate::data::DataError`]).
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    /// An error of the image area ([`crate::image::ImageError`]).
    #[error(transparent)]
    Image(#[from] crate::image::ImageError),
    /// An error of the text area ([`crate::text::TextError`]).
    #[error(transparent)]
    Text(#[from] crate::text::TextError),
    /// An error of the fusion area ([`crate::fusion::FusionError`]).
    #[error(transparent)]
    Fusion(#[from] crate::fusion::FusionError),
    /// An error of the retrieval area ([`crate::retrieval::RetrievalError`]).
    #[error(transparent)]
    Retrieval(#[from] crate::retrieval::RetrievalError),
    /// An error of the stage engine or of artifacts on disk
    /// ([`crate::pipeline::PipelineError`]).
    #[error(transparent)]
    Pipeline(#[from] crate::pipeline::PipelineError),
    /// An error of the neural baselines ([`crate::neural::NeuralError`]).
    #[error(transparent)]
    Neural(#[from] crate::neural::NeuralError),
    /// A file-system operation on a path failed ([`IoError`]).
    #[error(transparent)]
    Io(#[from] IoError),
}

/// An I/O error together with the path it happened on. The operating system's message is part
/// of this error's own message and deliberately not its `source()`, so that an error chain
/// printed with `{:#}` says it once.
#[derive(Debug, thiserror::Error)]
#[error("{action} {}: {cause}", path.display())]
pub struct IoError {
    /// What was being done, as a verb phrase put before the path (`"reading"`, `"creating"`).
    pub action: &'static str,
    /// The file or folder it was done on, as given.
    pub path: PathBuf,
    /// The operating system's error.
    pub cause: std::io::Error,
}

impl IoError {
    /// Wraps `cause` with what was being done (`"reading"`, `"writing"`, ...) and where.
    pub fn new(action: &'static str, path: impl Into<PathBuf>, cause: std::io::Error) -> Self {
        Self {
            action,
            path: path.into(),
            cause,
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    /// The error and its sources, joined as anyhow's `{:#}` (what the binary prints) joins them.
    fn chain(error: &dyn std::error::Error) -> String {
        let mut text = error.to_string();
        let mut source = error.source();
        while let Some(e) = source {
            text.push_str(&format!(": {e}"));
            source = e.source();
        }
        text
    }

    #[test]
    fn a_printed_chain_says_each_cause_once() {
        let csv_error = ::csv::ReaderBuilder::new()
            .from_reader("a,b\n1\n".as_bytes())
            .records()
            .find_map(Result::err)
            .unwrap();
        let csv_text = csv_error.to_string();
        let cases: Vec<(Error, String)> = vec![
            (
                IoError::new("reading", "x.npy", std::io::Error::other("disk on fire")).into(),
                "disk on fire".into(),
            ),
            (
                crate::image::ImageError::Read {
                    path: "a.jpg".into(),
                    cause: std::io::Error::other("disk on fire"),
                }
                .into(),
                "disk on fire".into(),
            ),
            (
                crate::data::DataError::Csv {
                    path: "t.csv".into(),
                    line: 2,
                    cause: csv_error,
                }
                .into(),
                csv_text,
            ),
            (
                crate::neural::NeuralError::from(candle_core::Error::Msg("shape (2, 3)".into()))
                    .into(),
                "shape (2, 3)".into(),
            ),
        ];
        for (error, cause) in cases {
            let printed = chain(&error);
            assert_eq!(printed.matches(&cause).count(), 1, "{printed}");
        }
    }
}
