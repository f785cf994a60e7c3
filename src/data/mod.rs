//! Datasets: what the pipeline reads before any feature is computed.
//!
//! A [`Dataset`] is a list of images (id → file), a list of texts (id → caption) and the pairs
//! between them (an image may have several captions: Flickr8k-CN has 5). Two layouts are read:
//! the Teddy Cup 2024 problem B attachments ([`teddy`]) and Flickr8k-CN ([`flickr8k`]).
//! [`split`] assigns images (and with them their captions) to train / validation / test or to
//! k folds, deterministically from a seed, so that every later stage sees the same split.

pub mod contest;
pub mod csv;
pub mod flickr8k;
pub mod split;
pub mod synthetic;
pub mod teddy;

use std::path::PathBuf;

/// Errors raised while reading a dataset. Each names the file, line or value at fault.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The data directory given to a loader is not an existing directory.
    #[error("data directory {} {problem}", path.display())]
    MissingRoot {
        /// The directory, as given.
        path: PathBuf,
        /// `does not exist`, or `is not a directory` when something else has its name.
        problem: &'static str,
    },
    /// A file the layout needs is in none of the places tried.
    #[error("no {what} found in {}: tried {tried}", dir.display())]
    NotFound {
        /// What was looked for, e.g. `"caption file"`.
        what: &'static str,
        /// The directory searched.
        dir: PathBuf,
        /// The file name, or comma-separated paths relative to `dir`, reported as tried.
        tried: String,
    },
    /// A line of a Flickr8k-CN caption file or split list is malformed or repeats an image.
    #[error("{}:{line}: {message}", path.display())]
    BadLine {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: u64,
        /// What is wrong with the line.
        message: String,
    },
    /// A Flickr8k-CN caption file or split list is not UTF-8.
    #[error("{}: {message}", path.display())]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it, with the offset of the first bad byte.
        message: String,
    },
    /// The validation or test fraction of a split is outside [0, 1), or the two sum to 1 or more.
    #[error(
        "split fractions must be in [0, 1) and sum to less than 1, got validation {validation} and test {test}"
    )]
    SplitFractions {
        /// The validation fraction given.
        validation: f64,
        /// The test fraction given.
        test: f64,
    },
    /// The number of folds of a split is 1 or more than 100.
    #[error("folds must be 0 (no folds) or in [2, 100], got {0}")]
    Folds(usize),
    /// A layout name is none of `teddy`, `flickr8k` and `flickr8k-cn`.
    #[error("unknown dataset layout {0:?}: expected \"teddy\" or \"flickr8k\"")]
    UnknownLayout(String),
    /// A file-system operation on a path failed (reading, writing, creating, linking, ...).
    #[error(transparent)]
    Io(#[from] crate::error::IoError),
    /// A CSV file is neither UTF-8 (with or without BOM) nor GB18030/GBK.
    #[error(
        "{}: text is neither UTF-8 nor GB18030/GBK (invalid UTF-8 at byte {utf8_offset}, and GB18030 decoding fails too)",
        path.display()
    )]
    Encoding {
        /// The file, as given.
        path: PathBuf,
        /// Byte offset of the first invalid UTF-8 sequence.
        utf8_offset: usize,
    },
    /// A text file starts with a UTF-16 byte-order mark, but what follows is not valid UTF-16.
    #[error("{}: starts with a {encoding} byte-order mark but is not valid {encoding}", path.display())]
    BadUtf16 {
        /// The file, as given.
        path: PathBuf,
        /// `UTF-16LE` or `UTF-16BE`, from the mark.
        encoding: &'static str,
    },
    /// A CSV file has no header line.
    #[error("{}: no header line (the file is empty or blank)", path.display())]
    NoHeader {
        /// The file, as given.
        path: PathBuf,
    },
    /// A column asked for is not in the header.
    #[error("{}, line {line}: missing column `{column}` (header has: {found})", path.display())]
    MissingColumn {
        /// The file, as given.
        path: PathBuf,
        /// 1-based line of the header.
        line: u64,
        /// The column, as the caller spelt it.
        column: String,
        /// The header's fields, joined with `, `.
        found: String,
    },
    /// A column asked for appears more than once in the header.
    #[error("{}, line {line}: column `{column}` appears more than once in the header", path.display())]
    DuplicateColumn {
        /// The file, as given.
        path: PathBuf,
        /// 1-based line of the header.
        line: u64,
        /// The column, as the caller spelt it.
        column: String,
    },
    /// A row has fewer fields than the header, or more with any of the extra ones non-empty.
    #[error(
        "{}, line {line}: row has {got} fields, header has {expected} (unquoted comma in a caption?): {row:?}",
        path.display()
    )]
    FieldCount {
        /// The file, as given.
        path: PathBuf,
        /// 1-based line where the row starts.
        line: u64,
        /// Number of fields of the header.
        expected: usize,
        /// Number of fields of the row.
        got: usize,
        /// The row's fields joined with commas, cut to 120 characters.
        row: String,
    },
    /// A quoted field is still open at the end of the file.
    #[error("{}, line {line}: quoted field opened here is never closed (stray `\"`?)", path.display())]
    UnterminatedQuote {
        /// The file, as given.
        path: PathBuf,
        /// 1-based line of the opening quote.
        line: u64,
    },
    /// The CSV parser failed.
    #[error("{}, line {line}: malformed CSV: {cause}", path.display())]
    Csv {
        /// The file, as given.
        path: PathBuf,
        /// 1-based line of the error; 0 when the parser gives no position.
        line: u64,
        /// The parser's error.
        cause: ::csv::Error,
    },
    /// An id field is empty.
    #[error("{}, line {line}: empty `{column}`", path.display())]
    EmptyId {
        /// The file, as given.
        path: PathBuf,
        /// 1-based line where the row starts.
        line: u64,
        /// The id column, as the caller spelt it.
        column: String,
    },
    /// An id appears twice; ids must be unique.
    #[error("{}, line {line}: duplicate `{column}` {id:?} (first seen on line {first_line})", path.display())]
    DuplicateId {
        /// The file, as given.
        path: PathBuf,
        /// 1-based line where the repeating row starts.
        line: u64,
        /// 1-based line where the first row with this id starts.
        first_line: u64,
        /// The id column, as the caller spelt it.
        column: String,
        /// The repeated id, trimmed.
        id: String,
    },
    /// A parameter is out of range.
    #[error("parameter `{name}` {message}, got {value}")]
    Param {
        /// The parameter's name (`width` or `height` for a size range).
        name: &'static str,
        /// The value given, as text.
        value: String,
        /// What the value must satisfy.
        message: &'static str,
    },
    /// Encoding an image failed.
    #[error("encoding image {}: {cause}", path.display())]
    ImageEncode {
        /// The image file that was to be written.
        path: PathBuf,
        /// The encoder's error.
        cause: ::image::ImageError,
    },
    /// Writing CSV records failed.
    #[error("writing CSV {}: {cause}", path.display())]
    CsvWrite {
        /// The CSV file being written.
        path: PathBuf,
        /// The CSV writer's error.
        cause: ::csv::Error,
    },
    /// Text cannot be written in the requested encoding.
    #[error("caption {text:?} cannot be encoded in {encoding}")]
    Unencodable {
        /// The encoding asked for (`GBK`).
        encoding: &'static str,
        /// The first caption holding a character the encoding lacks.
        text: String,
    },
}

/// One image of a dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageEntry {
    /// The id the dataset uses (for Teddy, the file name such as `Image14001001-0000.jpg`).
    pub id: String,
    /// Where the file should be; it may be missing, see [`Dataset::missing_images`].
    pub path: PathBuf,
}

/// One caption of a dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct TextEntry {
    /// The id the dataset uses (Teddy's text id; Flickr8k's `<image>#<tag>#<k>`).
    pub id: String,
    /// The caption's text, as the file gives it (the text features normalise it).
    pub caption: String,
}

/// Which part of the data an image belongs to in a dataset's own, predefined split.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Part {
    /// What the models are fitted on.
    Train,
    /// Held out for choosing settings.
    Validation,
    /// Held out for the reported scores.
    Test,
}

impl Part {
    /// The part's name as files and reports spell it (`train`, `validation`, `test`).
    pub fn as_str(self) -> &'static str {
        match self {
            Part::Train => "train",
            Part::Validation => "validation",
            Part::Test => "test",
        }
    }
}

impl std::str::FromStr for Part {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "train" => Ok(Part::Train),
            "validation" => Ok(Part::Validation),
            "test" => Ok(Part::Test),
            other => Err(format!(
                "unknown part {other:?}: expected train, validation or test"
            )),
        }
    }
}

/// A loaded dataset: images, texts, their pairs, and what was wrong with the input.
#[derive(Debug, Clone, Default)]
pub struct Dataset {
    /// Images whose file exists (missing ones are in `missing_images`). An "image index"
    /// elsewhere is a position in this list.
    pub images: Vec<ImageEntry>,
    /// The captions; a "text index" is a position in this list.
    pub texts: Vec<TextEntry>,
    /// `(image index, text index)` pairs; every text has exactly one image here.
    pub pairs: Vec<(usize, usize)>,
    /// The dataset's own split of images, when it has one (Flickr8k's standard lists): the
    /// part of each image, by image index (as long as `images`).
    pub predefined: Option<Vec<Part>>,
    /// Images listed by the dataset whose file is absent: `(id, expected path)`.
    pub missing_images: Vec<(String, PathBuf)>,
    /// The ids of the texts whose image is listed but missing. Teddy's loader keeps them in
    /// `texts`, without a pair; Flickr8k's leaves them out of `texts`.
    pub orphan_texts: Vec<String>,
    /// Input files that define the dataset (for fingerprints), besides the images.
    pub source_files: Vec<PathBuf>,
    /// Human-readable warnings gathered while reading (file, line, value).
    pub warnings: Vec<String>,
    /// What the caption file was decoded from (`UTF-8`, `UTF-8 with BOM`, `GB18030`).
    pub encoding: String,
}

impl Dataset {
    /// The text indices of each image, in text order.
    pub fn texts_by_image(&self) -> Vec<Vec<usize>> {
        let mut by_image = vec![Vec::new(); self.images.len()];
        for &(image, text) in &self.pairs {
            by_image[image].push(text);
        }
        by_image
    }
}

/// The layouts the loaders understand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// The Teddy Cup attachments (`ImageWordData.csv` + `ImageData/`).
    Teddy,
    /// Flickr8k-CN (`images/`, `flickr8k*.caption.txt`, the split lists).
    Flickr8k,
}

impl std::str::FromStr for Layout {
    type Err = DataError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "teddy" => Ok(Layout::Teddy),
            "flickr8k" | "flickr8k-cn" => Ok(Layout::Flickr8k),
            other => Err(DataError::UnknownLayout(other.to_string())),
        }
    }
}

/// `Err(MissingRoot)` unless `root` is a directory.
pub(crate) fn check_root(root: &std::path::Path) -> Result<(), DataError> {
    if root.is_dir() {
        return Ok(());
    }
    Err(DataError::MissingRoot {
        path: root.to_path_buf(),
        problem: if root.exists() {
            "is not a directory"
        } else {
            "does not exist"
        },
    })
}
