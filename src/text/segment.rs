//! Chinese word segmentation with jieba (precise mode, HMM for unknown words) and stop words.
//!
//! jieba (Sun Junyi's prefix-dictionary DAG + Viterbi HMM segmenter, here the jieba-rs port)
//! is the usual segmenter for Chinese retrieval baselines. Input is the output of
//! [`super::normalize::normalize`]: pieces separated by spaces, with the `<人名>` / `<数字>`
//! placeholders as sentinel characters. Each piece is cut around the sentinels so that jieba
//! never sees (and never splits or glues) a placeholder; each sentinel becomes one token.
//!
//! The stop-word list is `data/stopwords-zh.txt` of this crate (a short, hand-kept list of
//! function words), or a file the caller names.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use jieba_rs::Jieba;
use serde::{Deserialize, Serialize};

use super::TextError;
use super::normalize::token_of;
use crate::error::IoError;

/// The crate's built-in stop-word list.
pub const BUILTIN_STOPWORDS: &str = include_str!("../../data/stopwords-zh.txt");

/// Options of the [`Segmenter`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SegmentParams {
    /// Use jieba's HMM to join characters of words missing from the dictionary.
    pub hmm: bool,
    /// A jieba user dictionary (`word [freq] [tag]` per line), added to the default one.
    pub user_dict: Option<PathBuf>,
    /// Remove stop words from the word tokens (TF-IDF and sentence vectors).
    pub remove_stopwords: bool,
    /// A stop-word file (one word per line, `#` comments); `None` = the built-in list.
    pub stopwords_file: Option<PathBuf>,
}

impl Default for SegmentParams {
    fn default() -> Self {
        Self {
            hmm: true,
            user_dict: None,
            remove_stopwords: true,
            stopwords_file: None,
        }
    }
}

/// Parses a stop-word list: one word per line, blank lines and `#` comments ignored (and a
/// byte-order mark, which would otherwise stick to the first word).
pub fn parse_stopwords(text: &str) -> HashSet<String> {
    text.trim_start_matches('\u{feff}')
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

/// Adds the words of a user dictionary, `word [freq] [tag]` a line, as Python jieba's
/// `load_userdict` does: a word without a frequency gets the one `suggest_freq` finds high
/// enough for it to be cut out whole (jieba-rs's own `load_dict` gives it 0, which keeps it
/// from ever being cut out, and removes a word of the main dictionary). A byte-order mark on
/// the first line is dropped; blank lines are skipped.
fn add_user_words(jieba: &mut Jieba, text: &str, path: &Path) -> Result<(), TextError> {
    for (i, line) in text.trim_start_matches('\u{feff}').lines().enumerate() {
        let mut fields = line.split_whitespace();
        let Some(word) = fields.next() else {
            continue;
        };
        let freq = match fields.next() {
            None => None,
            Some(f) => Some(f.parse::<usize>().map_err(|_| TextError::UserDict {
                path: path.to_path_buf(),
                message: format!(
                    "line {}: frequency {f:?} of {word:?} is not a whole number",
                    i + 1
                ),
            })?),
        };
        jieba.add_word(word, freq, fields.next());
    }
    Ok(())
}

fn read_text(path: &Path) -> Result<String, TextError> {
    std::fs::read_to_string(path).map_err(|e| IoError::new("reading", path, e).into())
}

/// jieba plus a stop-word set. Build it with [`Segmenter::new`]; it is `Sync` and is shared
/// across rayon threads.
pub struct Segmenter {
    jieba: Jieba,
    hmm: bool,
    remove_stopwords: bool,
    stopwords: HashSet<String>,
    /// Text of the user dictionary (kept so a saved model is self-contained).
    user_dict_text: Option<String>,
}

impl std::fmt::Debug for Segmenter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segmenter")
            .field("hmm", &self.hmm)
            .field("stopwords", &self.stopwords.len())
            .field("user_dict", &self.user_dict_text.is_some())
            .finish()
    }
}

impl Segmenter {
    /// Loads jieba's default dictionary, the user dictionary and the stop words named in
    /// `params`.
    pub fn new(params: &SegmentParams) -> Result<Self, TextError> {
        let user_dict_text = match &params.user_dict {
            Some(path) => Some((read_text(path)?, path.clone())),
            None => None,
        };
        let stop_text = match &params.stopwords_file {
            Some(path) => read_text(path)?,
            None => BUILTIN_STOPWORDS.to_owned(),
        };
        match user_dict_text {
            Some((text, path)) => Self::from_parts(params, Some((&text, &path)), &stop_text),
            None => Self::from_parts(params, None, &stop_text),
        }
    }

    /// Builds a segmenter from in-memory dictionary and stop-word texts (used when loading a
    /// saved model). `user_dict` is `(text, path for error messages)`.
    pub fn from_parts(
        params: &SegmentParams,
        user_dict: Option<(&str, &Path)>,
        stopwords: &str,
    ) -> Result<Self, TextError> {
        let mut jieba = Jieba::new();
        if let Some((text, path)) = user_dict {
            add_user_words(&mut jieba, text, path)?;
        }
        Ok(Self {
            jieba,
            hmm: params.hmm,
            remove_stopwords: params.remove_stopwords,
            stopwords: parse_stopwords(stopwords),
            user_dict_text: user_dict.map(|(t, _)| t.to_owned()),
        })
    }

    /// The stop words in use, sorted.
    pub fn stopwords_sorted(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.stopwords.iter().map(String::as_str).collect();
        v.sort_unstable();
        v
    }

    /// The user dictionary's text, if one was loaded.
    pub fn user_dict_text(&self) -> Option<&str> {
        self.user_dict_text.as_deref()
    }

    /// Whether `token` is a stop word.
    pub fn is_stopword(&self, token: &str) -> bool {
        self.stopwords.contains(token)
    }

    /// All tokens of a normalised caption, in order (stop words included): jieba's words, and
    /// one token per placeholder sentinel.
    pub fn tokens(&self, normalized: &str) -> Vec<String> {
        let mut out = Vec::new();
        for piece in normalized.split(' ').filter(|p| !p.is_empty()) {
            let mut start = 0;
            for (pos, c) in piece.char_indices() {
                if let Some(token) = token_of(c) {
                    self.cut_into(&piece[start..pos], &mut out);
                    out.push(token.to_owned());
                    start = pos + c.len_utf8();
                }
            }
            self.cut_into(&piece[start..], &mut out);
        }
        out
    }

    fn cut_into(&self, text: &str, out: &mut Vec<String>) {
        if text.is_empty() {
            return;
        }
        out.extend(
            self.jieba
                .cut(text, self.hmm)
                .into_iter()
                .filter(|w| !w.trim().is_empty())
                .map(str::to_owned),
        );
    }

    /// The tokens of [`Self::tokens`] without stop words (when removal is on).
    pub fn content_tokens(&self, normalized: &str) -> Vec<String> {
        let mut tokens = self.tokens(normalized);
        if self.remove_stopwords {
            tokens.retain(|t| !self.stopwords.contains(t));
        }
        tokens
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::normalize::{NormalizeParams, normalize};

    fn seg() -> Segmenter {
        Segmenter::new(&SegmentParams::default()).unwrap()
    }

    #[test]
    fn person_placeholder_stays_one_token() {
        let s = seg();
        let n = normalize("赵薇和<人名>在北京拍照", &NormalizeParams::default());
        let tokens = s.tokens(&n);
        assert!(tokens.contains(&"<人名>".to_owned()), "{tokens:?}");
        assert!(
            !tokens.iter().any(|t| t == "人名" || t == "人"),
            "{tokens:?}"
        );
        assert_eq!(tokens.concat(), "赵薇和<人名>在北京拍照");
    }

    #[test]
    fn stop_words_are_removed_from_content_tokens() {
        let s = seg();
        let n = normalize("一只狗在草地上跑着", &NormalizeParams::default());
        let all = s.tokens(&n);
        let content = s.content_tokens(&n);
        assert!(all.contains(&"在".to_owned()));
        assert!(!content.contains(&"在".to_owned()));
        assert!(content.contains(&"草地".to_owned()), "{content:?}");
        assert!(content.contains(&"狗".to_owned()), "{content:?}");
        let words = parse_stopwords("\u{feff}的\n# a comment\n\n 了 \n");
        assert_eq!(words, HashSet::from(["的".to_owned(), "了".to_owned()]));
    }

    #[test]
    fn user_dictionary_joins_a_word() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("user.txt");
        std::fs::write(&path, "极果网 100 n\n").unwrap();
        let n = normalize("本文由极果网提供", &NormalizeParams::default());
        let plain = seg().tokens(&n);
        assert!(!plain.contains(&"极果网".to_owned()), "{plain:?}");
        let params = SegmentParams {
            user_dict: Some(path.clone()),
            ..Default::default()
        };
        let with_dict = Segmenter::new(&params).unwrap().tokens(&n);
        assert!(with_dict.contains(&"极果网".to_owned()), "{with_dict:?}");
        // Without a frequency (and behind a byte-order mark) the word is cut out all the same.
        std::fs::write(&path, "\u{feff}极果网\n\n").unwrap();
        let no_freq = Segmenter::new(&params).unwrap().tokens(&n);
        assert!(no_freq.contains(&"极果网".to_owned()), "{no_freq:?}");
        std::fs::write(&path, "极果网 many\n").unwrap();
        let err = Segmenter::new(&params).unwrap_err().to_string();
        assert!(err.contains("user.txt") && err.contains("line 1"), "{err}");
    }

    #[test]
    fn missing_user_dictionary_names_the_file() {
        let params = SegmentParams {
            user_dict: Some("/nonexistent/dict.txt".into()),
            ..Default::default()
        };
        let err = Segmenter::new(&params).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/dict.txt"), "{err}");
    }
}
