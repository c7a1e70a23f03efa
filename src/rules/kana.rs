//! The furigana (reading) of a name: checked and written in one script.
//!
//! The application form asks for ふりがな; the registry may hold it in katakana. To compare
//! the two, both are brought to one script with [`normalise_furigana`]. Accepted: hiragana,
//! katakana, the long-vowel mark ー, the middle dot ・ (foreign names), and spaces between
//! family and given name (ASCII or ideographic; runs collapse to one U+3000, ends trimmed).
//!
//! Not accepted: half-width katakana, kanji, Latin letters, and the katakana ヷヸヹヺ,
//! which have no hiragana counterpart. The reading is not part of the certificate.

/// The script the furigana is written in after normalisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Script {
    /// ひらがな.
    Hiragana,
    /// カタカナ.
    Katakana,
}

/// Why a reading was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FuriganaError {
    /// The reading has no kana at all.
    #[error("the reading is empty")]
    Empty,
    /// A character is neither kana, ー, ・ nor a space.
    #[error("character {index} of the reading is not kana")]
    NotKana {
        /// Its position (in characters of the input, from 0).
        index: usize,
    },
}

const HIRAGANA_FIRST: u32 = 0x3041; // ぁ
const HIRAGANA_LAST: u32 = 0x3096; // ゖ
const KATAKANA_OFFSET: u32 = 0x60; // ァ - ぁ

/// Checks a reading and writes it in `script`.
pub fn normalise_furigana(text: &str, script: Script) -> Result<String, FuriganaError> {
    let mut out = String::new();
    let mut pending_space = false;
    for (index, ch) in text.chars().enumerate() {
        let cp = ch as u32;
        let kana = match ch {
            ' ' | '\u{3000}' => {
                pending_space = !out.is_empty();
                continue;
            }
            'ー' | '・' | 'ゝ' | 'ゞ' | 'ヽ' | 'ヾ' => convert_iteration(ch, script),
            _ if (HIRAGANA_FIRST..=HIRAGANA_LAST).contains(&cp) => to_script(cp, script),
            _ if (HIRAGANA_FIRST + KATAKANA_OFFSET..=HIRAGANA_LAST + KATAKANA_OFFSET)
                .contains(&cp) =>
            {
                to_script(cp - KATAKANA_OFFSET, script)
            }
            _ => return Err(FuriganaError::NotKana { index }),
        };
        if pending_space {
            out.push('\u{3000}');
            pending_space = false;
        }
        out.push(kana);
    }
    if out.is_empty() {
        return Err(FuriganaError::Empty);
    }
    Ok(out)
}

/// A hiragana code point written in `script`.
fn to_script(hiragana: u32, script: Script) -> char {
    let cp = match script {
        Script::Hiragana => hiragana,
        Script::Katakana => hiragana + KATAKANA_OFFSET,
    };
    // Invariant: both ranges are assigned kana code points.
    char::from_u32(cp).unwrap_or(char::REPLACEMENT_CHARACTER)
}

/// Iteration marks have a form per script; ー and ・ are shared.
fn convert_iteration(ch: char, script: Script) -> char {
    match (ch, script) {
        ('ゝ' | 'ヽ', Script::Hiragana) => 'ゝ',
        ('ゞ' | 'ヾ', Script::Hiragana) => 'ゞ',
        ('ゝ' | 'ヽ', Script::Katakana) => 'ヽ',
        ('ゞ' | 'ヾ', Script::Katakana) => 'ヾ',
        _ => ch,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn normalises_to_one_script() {
        let table = [
            ("やまだ たろう", Script::Katakana, "ヤマダ　タロウ"),
            ("ヤマダ　タロウ", Script::Hiragana, "やまだ　たろう"),
            ("  ヤマダ   たろう ", Script::Hiragana, "やまだ　たろう"),
            ("ジョン・スミス", Script::Hiragana, "じょん・すみす"),
            ("ゆうこ", Script::Katakana, "ユウコ"),
            ("ヴァーチャル", Script::Hiragana, "ゔぁーちゃる"),
            ("いすゞ", Script::Katakana, "イスヾ"),
            ("ヶ", Script::Hiragana, "ゖ"),
        ];
        for (input, script, expected) in table {
            assert_eq!(
                normalise_furigana(input, script).as_deref(),
                Ok(expected),
                "{input}"
            );
        }
    }

    #[test]
    fn refuses_what_is_not_kana() {
        let table = [
            ("", FuriganaError::Empty),
            ("　 ", FuriganaError::Empty),
            ("山田", FuriganaError::NotKana { index: 0 }),
            ("やまだ tarou", FuriganaError::NotKana { index: 4 }),
            ("ﾔﾏﾀﾞ", FuriganaError::NotKana { index: 0 }),
            ("ヷ", FuriganaError::NotKana { index: 0 }),
        ];
        for (input, err) in table {
            assert_eq!(
                normalise_furigana(input, Script::Hiragana),
                Err(err),
                "{input}"
            );
        }
    }

    proptest! {
        #[test]
        fn script_conversion_round_trips(text in "[ぁ-ゖー・ 　]{0,16}") {
            if let Ok(k) = normalise_furigana(&text, Script::Katakana) {
                let h = normalise_furigana(&k, Script::Hiragana).unwrap();
                prop_assert_eq!(normalise_furigana(&text, Script::Hiragana).unwrap(), h.clone());
                prop_assert_eq!(normalise_furigana(&h, Script::Katakana).unwrap(), k);
            }
        }
    }
}
