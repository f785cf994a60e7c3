//! The text input of the neural dual encoder: a bag of tokens (jieba words, characters and
//! character bigrams) over a vocabulary learned on the training captions.
//!
//! A caption becomes a sparse vector of token counts scaled to unit L2 norm; multiplied by the
//! first weight matrix of the text tower, that is an embedding bag (a weighted sum of token
//! embeddings) — what fastText's classifier and the "bag of n-grams" baselines use.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::text::normalize::{NormalizeParams, normalize};
use crate::text::segment::Segmenter;

/// A sparse bag: `(token index, weight)` pairs, sorted by index.
pub type Bag = Vec<(u32, f32)>;

/// The learned token vocabulary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BagVocabulary {
    /// Tokens in index order.
    pub tokens: Vec<String>,
    #[serde(skip)]
    index: HashMap<String, u32>,
}

/// The tokens of one caption: `w:` words, `c:` characters, `b:` character bigrams.
pub fn caption_tokens(caption: &str, segmenter: &Segmenter) -> Vec<String> {
    let normalized = normalize(caption, &NormalizeParams::default());
    let mut out: Vec<String> = segmenter
        .tokens(&normalized)
        .into_iter()
        .map(|w| format!("w:{w}"))
        .collect();
    for piece in normalized.split(' ').filter(|p| !p.is_empty()) {
        let chars: Vec<char> = piece.chars().collect();
        out.extend(chars.iter().map(|c| format!("c:{c}")));
        out.extend(chars.windows(2).map(|w| format!("b:{}{}", w[0], w[1])));
    }
    out
}

impl BagVocabulary {
    /// Tokens seen in at least `min_count` training captions, the `max_tokens` most frequent
    /// (ties broken by the token, so the result is deterministic).
    pub fn fit(tokenized: &[Vec<String>], min_count: usize, max_tokens: usize) -> Self {
        let mut df: HashMap<&str, usize> = HashMap::new();
        for tokens in tokenized {
            let mut seen: Vec<&str> = tokens.iter().map(String::as_str).collect();
            seen.sort_unstable();
            seen.dedup();
            for t in seen {
                *df.entry(t).or_default() += 1;
            }
        }
        let mut kept: Vec<(&str, usize)> =
            df.into_iter().filter(|&(_, n)| n >= min_count).collect();
        kept.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        kept.truncate(max_tokens);
        Self::from_tokens(kept.into_iter().map(|(t, _)| t.to_owned()).collect())
    }

    /// A vocabulary of exactly these tokens (as saved).
    pub fn from_tokens(tokens: Vec<String>) -> Self {
        let index = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        Self { tokens, index }
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether the vocabulary has no token.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The unit-norm count vector of a tokenised caption (empty when no token is known).
    pub fn bag(&self, tokens: &[String]) -> Bag {
        let mut counts: HashMap<u32, f32> = HashMap::new();
        for t in tokens {
            if let Some(&i) = self.index.get(t) {
                *counts.entry(i).or_default() += 1.0;
            }
        }
        let norm = counts.values().map(|c| c * c).sum::<f32>().sqrt();
        let mut bag: Bag = counts.into_iter().map(|(i, c)| (i, c / norm)).collect();
        bag.sort_unstable_by_key(|&(i, _)| i);
        bag
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::segment::SegmentParams;

    #[test]
    fn tokens_cover_words_characters_and_bigrams() {
        let seg = Segmenter::new(&SegmentParams::default()).unwrap();
        let tokens = caption_tokens("红色的圆", &seg);
        assert!(tokens.contains(&"c:红".to_string()));
        assert!(tokens.contains(&"b:红色".to_string()));
        assert!(tokens.iter().any(|t| t.starts_with("w:")));
    }

    #[test]
    fn vocabulary_keeps_frequent_tokens_and_bags_are_unit_norm() {
        let docs = vec![
            vec!["a".to_string(), "b".to_string()],
            vec!["a".to_string(), "c".to_string(), "a".to_string()],
        ];
        let vocab = BagVocabulary::fit(&docs, 2, 10);
        assert_eq!(vocab.tokens, vec!["a".to_string()]);
        let bag = vocab.bag(&docs[1]);
        assert_eq!(bag, vec![(0, 1.0)]);
        assert!(vocab.bag(&["z".to_string()]).is_empty());
        let vocab = BagVocabulary::fit(&docs, 1, 2);
        assert_eq!(vocab.tokens, vec!["a".to_string(), "b".to_string()]);
        let bag = vocab.bag(&["a".into(), "b".into(), "a".into()]);
        let norm: f32 = bag.iter().map(|(_, w)| w * w).sum();
        assert!((norm - 1.0).abs() < 1e-6);
    }
}
