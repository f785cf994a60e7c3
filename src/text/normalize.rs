//! Caption normalisation before segmentation and n-gram counting.
//!
//! Web captions (Teddy Cup 2024 B) mix full-width and half-width forms, Latin in both cases,
//! numbers, the dataset's `<人名>` (person name) placeholder, and mojibake left by a wrong
//! GBK/UTF-8 decoding (Cyrillic letters, box drawing, enclosed numbers, private-use characters
//! inside Chinese text). This module maps a caption to a canonical string:
//!
//! 1. mojibake characters are dropped (before NFKC, which would turn `⒃` into `(16)`);
//! 2. Unicode NFKC (full-width → half-width, compatibility forms folded);
//! 3. `<人名>` becomes one private sentinel character, [`PERSON`], so that jieba cannot split
//!    it and character n-grams see it as one unit; numbers optionally become [`NUMBER`];
//! 4. Latin is lower-cased; Han, Kana, Latin letters and digits are kept; every other character
//!    (Chinese and ASCII punctuation, symbols, spaces) becomes a piece separator (one space);
//!    letters of any other script are dropped as mojibake.
//!
//! The sentinels are private-use characters, which step 1 removes from the input, so they can
//! only come from the placeholders. [`token_of`] gives the token text a sentinel stands for.

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;

/// Sentinel for the dataset's `<人名>` placeholder.
pub const PERSON: char = '\u{F8F0}';
/// Sentinel for a number (a run of digits, with `.` or `,` between digits), when enabled.
pub const NUMBER: char = '\u{F8F1}';
/// The token the [`PERSON`] sentinel stands for.
pub const PERSON_TOKEN: &str = "<人名>";
/// The token the [`NUMBER`] sentinel stands for.
pub const NUMBER_TOKEN: &str = "<数字>";

/// Options of [`normalize`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NormalizeParams {
    /// Replace every number (`1500`, `3.5`, `2,000`) by the class token `<数字>`.
    pub numbers_to_token: bool,
    /// Lower-case Latin letters.
    pub lowercase: bool,
}

impl Default for NormalizeParams {
    fn default() -> Self {
        Self {
            numbers_to_token: true,
            lowercase: true,
        }
    }
}

/// Whether `c` is a character that only appears in these captions as mojibake (or is
/// otherwise unusable): private use, replacement character, controls, Cyrillic, Greek,
/// Hangul, Bopomofo, box drawing, block elements, geometric shapes, mathematical operators,
/// enclosed alphanumerics.
pub fn is_mojibake(c: char) -> bool {
    let u = c as u32;
    matches!(u,
        0xE000..=0xF8FF | 0xF0000..=0x10FFFF | 0xFFFD | 0xFFFE | 0xFFFF
        | 0x0370..=0x03FF | 0x0400..=0x052F
        | 0x1100..=0x11FF | 0x3130..=0x318F | 0xAC00..=0xD7AF
        | 0x3100..=0x312F
        | 0x2200..=0x22FF | 0x2460..=0x24FF | 0x2500..=0x25FF)
        || (c.is_control() && !c.is_whitespace())
}

/// Whether `c` is a letter or digit of a script the captions are written in (Han, Kana, Latin).
fn is_kept_alnum(c: char) -> bool {
    let u = c as u32;
    c.is_ascii_alphanumeric()
        || (matches!(u,
            0x00C0..=0x024F               // Latin-1 letters, Latin Extended-A/B
            | 0x3005 | 0x3007             // 々 〇
            | 0x3040..=0x30FF             // Hiragana, Katakana
            | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF
            | 0x20000..=0x2FA1F)
            && c.is_alphanumeric())
}

/// The token text a sentinel stands for, or `None` for an ordinary character.
pub fn token_of(c: char) -> Option<&'static str> {
    match c {
        PERSON => Some(PERSON_TOKEN),
        NUMBER => Some(NUMBER_TOKEN),
        _ => None,
    }
}

/// Normalises one caption (see the module documentation). The result holds pieces separated by
/// single spaces, no leading or trailing space, and sentinels in place of placeholders.
pub fn normalize(text: &str, params: &NormalizeParams) -> String {
    let cleaned: String = text.chars().filter(|&c| !is_mojibake(c)).collect();
    let folded: String = cleaned.nfkc().collect();
    let with_person = folded.replace(PERSON_TOKEN, &PERSON.to_string());
    let chars: Vec<char> = with_person.chars().collect();
    let mut out = String::with_capacity(with_person.len());
    let mut pending_space = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let kept: Option<char> = if c == PERSON {
            Some(PERSON)
        } else if params.numbers_to_token && c.is_ascii_digit() {
            // Consume the whole number: digits with single '.' or ',' between digits.
            let mut j = i + 1;
            while j < chars.len() {
                if chars[j].is_ascii_digit() {
                    j += 1;
                } else if (chars[j] == '.' || chars[j] == ',')
                    && j + 1 < chars.len()
                    && chars[j + 1].is_ascii_digit()
                {
                    j += 2;
                } else {
                    break;
                }
            }
            i = j - 1;
            Some(NUMBER)
        } else if is_kept_alnum(c) {
            Some(c)
        } else if c.is_alphanumeric() {
            None // a letter of another script: mojibake, dropped without a separator
        } else {
            pending_space = true;
            None
        };
        if let Some(k) = kept {
            if pending_space && !out.is_empty() {
                out.push(' ');
            }
            pending_space = false;
            if params.lowercase && k.is_uppercase() {
                out.extend(k.to_lowercase());
            } else {
                out.push(k);
            }
        }
        i += 1;
    }
    out
}

/// Replaces sentinels by the tokens they stand for, for display.
pub fn display(normalized: &str) -> String {
    let mut out = String::with_capacity(normalized.len());
    for c in normalized.chars() {
        match token_of(c) {
            Some(t) => out.push_str(t),
            None => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        display(&normalize(s, &NormalizeParams::default()))
    }

    #[test]
    fn full_width_is_folded_and_latin_lowered() {
        assert_eq!(norm("ＡＢＣ１２３ｘｙ"), "abc<数字>xy");
        assert_eq!(
            normalize("ＡＢｃ", &NormalizeParams::default()),
            "abc".to_string()
        );
        // Ideographic space and full-width punctuation separate pieces.
        assert_eq!(norm("一只狗　在跑，很快！"), "一只狗 在跑 很快");
    }

    #[test]
    fn person_placeholder_is_one_sentinel() {
        let n = normalize("赵薇,<人名>也在", &NormalizeParams::default());
        assert_eq!(n, format!("赵薇 {PERSON}也在"));
        // Full-width brackets fold to the same placeholder.
        let n = normalize("胡子＜人名＞作品", &NormalizeParams::default());
        assert_eq!(n, format!("胡子{PERSON}作品"));
    }

    #[test]
    fn mojibake_is_dropped() {
        // The Teddy caption `本文由极果没ъ教逶`: the Cyrillic letter goes, the Han stays.
        assert_eq!(norm("本文由极果没ъ教逶"), "本文由极果没教逶");
        // Enclosed numbers, math operators, box drawing, private use: dropped, not folded.
        assert_eq!(norm("中椿蛴∷⒃诒昵┥系"), "中椿蛴诒昵系");
        assert_eq!(norm("a\u{E123}b"), "ab");
        // A private-use character in the input can never pose as a sentinel.
        assert_eq!(normalize("\u{F8F0}狗", &NormalizeParams::default()), "狗");
    }

    #[test]
    fn numbers_become_a_class_token_only_when_asked() {
        assert_eq!(
            norm("现有教职工1500余人,3.5米"),
            "现有教职工<数字>余人 <数字>米"
        );
        let keep = NormalizeParams {
            numbers_to_token: false,
            ..Default::default()
        };
        assert_eq!(normalize("1500余人.", &keep), "1500余人");
    }

    #[test]
    fn punctuation_collapses_to_one_space() {
        assert_eq!(norm("《绿色北京》摄影大赛"), "绿色北京 摄影大赛");
        assert_eq!(norm("  ...  "), "");
        assert_eq!(norm("网易首页>网易号>正文"), "网易首页 网易号 正文");
    }
}
