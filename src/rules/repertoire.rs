//! The certificate's character repertoire (JIS X 0208 + JIS X 0212) and 代替文字.
//!
//! The signing certificate's name and address may hold only characters of JIS X 0208
//! (levels 1 and 2, with the non-kanji rows) and JIS X 0212 (補助漢字). Every other
//! character of the registered name or address (a CP932 IBM/NEC extension such as 髙,
//! a JIS X 0213 character such as 﨑, a Unicode-only one such as 𠮷) is replaced by a
//! designated substitute, and the certificate says where by a position string of one
//! `0`/`1` per character of the certified text.
//!
//! What it does:
//! - builds the repertoire once from `encoding_rs`'s EUC-JP decoder: every two-byte code
//!   of JIS X 0208 rows 1–8 and 16–84, and every three-byte `8F xx yy` code of JIS X 0212.
//!   The WHATWG index behind the decoder also holds NEC row 13 and the IBM/NEC extension
//!   rows 89–92; those are not JIS X 0208 and are left out;
//! - normalises input ([`normalise`]) and finds the positions that need a substitute
//!   ([`propose`]);
//! - applies the chosen substitutes and derives the position string ([`apply`]).
//!
//! What it does not do: it does not choose substitutes for people. The
//! [`SubstituteTable`] only proposes; J-LIS's designations are not public, so the
//! municipality keeps its own table (the default is embedded from `substitutes.tsv`).
//!
//! Code points: where JIS and Microsoft mappings differ (WAVE DASH 〜 U+301C vs FULLWIDTH
//! TILDE ～ U+FF5E, MINUS SIGN − U+2212 vs FULLWIDTH HYPHEN-MINUS － U+FF0D, …), the
//! repertoire holds what the EUC-JP decoder yields (the Microsoft forms), and
//! [`normalise`] maps the JIS forms onto them, so either spelling of the same JIS
//! character is accepted and the certified text always uses one.

use std::collections::{BTreeMap, HashSet};
use std::sync::OnceLock;

/// The JIS character set a repertoire character belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Plane {
    /// JIS X 0208 (levels 1 and 2 and the non-kanji rows 1–8).
    Jis0208,
    /// JIS X 0212 (補助漢字 and its non-kanji rows).
    Jis0212,
}

struct Tables {
    jis0208: HashSet<char>,
    jis0212: HashSet<char>,
}

fn tables() -> &'static Tables {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    TABLES.get_or_init(|| {
        let mut jis0208 = HashSet::new();
        let mut jis0212 = HashSet::new();
        for row in 1u8..=94 {
            for cell in 1u8..=94 {
                let (r, c) = (0xA0 + row, 0xA0 + cell);
                // Rows 9–15 and 85–94 are empty in JIS X 0208 itself; what the WHATWG
                // index puts there (NEC row 13, IBM/NEC rows 89–92) is vendor extension.
                if matches!(row, 1..=8 | 16..=84) {
                    jis0208.extend(decode_one(&[r, c]));
                }
                jis0212.extend(decode_one(&[0x8F, r, c]));
            }
        }
        Tables { jis0208, jis0212 }
    })
}

/// The single character an EUC-JP code decodes to, if it is mapped.
fn decode_one(bytes: &[u8]) -> Option<char> {
    let text = encoding_rs::EUC_JP.decode_without_bom_handling_and_without_replacement(bytes)?;
    let mut chars = text.chars();
    let ch = chars.next()?;
    (chars.next().is_none() && ch != char::REPLACEMENT_CHARACTER).then_some(ch)
}

/// The JIS set a character belongs to; JIS X 0208 wins for the one character both
/// decode to (FULLWIDTH TILDE).
pub fn plane_of(ch: char) -> Option<Plane> {
    let t = tables();
    if t.jis0208.contains(&ch) {
        Some(Plane::Jis0208)
    } else if t.jis0212.contains(&ch) {
        Some(Plane::Jis0212)
    } else {
        None
    }
}

/// Whether the certificate may hold this character as it is.
pub fn in_repertoire(ch: char) -> bool {
    plane_of(ch).is_some()
}

/// Number of characters in JIS X 0208 and in JIS X 0212 as built.
pub fn plane_sizes() -> (usize, usize) {
    let t = tables();
    (t.jis0208.len(), t.jis0212.len())
}

/// Normalises a name or address before it is checked:
/// - half-width ASCII `!`–`~` become their full-width forms (`A` → `Ａ`, `1` → `１`,
///   `-` → `－`) and the ASCII space becomes the ideographic space U+3000, because
///   JIS X 0208 holds only the full-width forms;
/// - JIS-style code points of JIS X 0208 characters become the forms the repertoire
///   holds (〜 → ～, − → －, ‖ → ∥, — → ―, ¢ £ ¬ → ￠ ￡ ￢).
///
/// Nothing else changes: no kana folding, no kanji variant folding (that is what
/// substitutes are for), no trimming.
pub fn normalise(text: &str) -> String {
    text.chars().map(normalise_char).collect()
}

fn normalise_char(ch: char) -> char {
    match ch {
        ' ' => '\u{3000}',
        // Invariant: '!'..='~' maps into U+FF01..=U+FF5E, all valid chars.
        '!'..='~' => char::from_u32(ch as u32 + 0xFEE0).unwrap_or(ch),
        '\u{301C}' => '\u{FF5E}',
        '\u{2212}' => '\u{FF0D}',
        '\u{2016}' => '\u{2225}',
        '\u{2014}' => '\u{2015}',
        '\u{00A2}' => '\u{FFE0}',
        '\u{00A3}' => '\u{FFE1}',
        '\u{00AC}' => '\u{FFE2}',
        _ => ch,
    }
}

/// A character of the (normalised) text that the certificate cannot hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    /// Position in characters of the normalised text, from 0.
    pub index: usize,
    /// The registered character.
    pub original: char,
    /// The municipality's designated substitute, if its table has one.
    pub designated: Option<String>,
}

/// Every position of `text` (after [`normalise`]) that needs a substitute, with the
/// table's designated substitute where there is one.
pub fn propose(text: &str, table: &SubstituteTable) -> Vec<Proposal> {
    normalise(text)
        .chars()
        .enumerate()
        .filter(|(_, ch)| !in_repertoire(*ch))
        .map(|(index, original)| Proposal {
            index,
            original,
            designated: table.get(original).map(str::to_owned),
        })
        .collect()
}

/// One chosen substitute: the character at `index` of the normalised text is replaced by
/// `replacement` in the certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Substitution {
    /// Position in characters of the normalised text, from 0.
    pub index: usize,
    /// The substitute: one or more characters, all inside the repertoire.
    pub replacement: String,
}

/// The text as the certificate carries it, with its substitute-position string.
/// `Debug` shows the position string only: the text is personal data.
#[derive(Clone, PartialEq, Eq)]
pub struct CertifiedText {
    text: String,
    positions: String,
}

impl std::fmt::Debug for CertifiedText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertifiedText")
            .field("positions", &self.positions)
            .finish_non_exhaustive()
    }
}

impl CertifiedText {
    /// A text and position string read back from a certificate; the caller has checked
    /// that they fit each other.
    pub(crate) fn from_parts(text: String, positions: String) -> CertifiedText {
        CertifiedText { text, positions }
    }

    /// The certified text: every character in the repertoire.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// One `0`/`1` per character of [`text`](Self::text); `1` marks a substitute.
    pub fn positions(&self) -> &str {
        &self.positions
    }

    /// Whether any substitute was used (the form's 代替文字 有/無).
    pub fn uses_substitutes(&self) -> bool {
        self.positions.contains('1')
    }
}

/// Why chosen substitutes could not be applied. Positions, never characters, are shown,
/// so the message carries no personal data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubstituteError {
    /// A character outside the repertoire has no substitute chosen.
    #[error("character {index} is outside JIS X 0208/0212 and needs a substitute")]
    Missing {
        /// Its position in the normalised text.
        index: usize,
    },
    /// A substitute was chosen for a character the certificate can hold as it is.
    #[error("character {index} needs no substitute")]
    NotNeeded {
        /// Its position in the normalised text.
        index: usize,
    },
    /// A substitute names a position past the end of the text.
    #[error("substitute for position {index} is past the end of the text")]
    OutOfRange {
        /// The position named.
        index: usize,
    },
    /// Two substitutes were chosen for one position.
    #[error("two substitutes for position {index}")]
    Duplicate {
        /// The position named twice.
        index: usize,
    },
    /// The substitute is empty or itself holds a character outside the repertoire.
    #[error("the substitute for position {index} is empty or outside JIS X 0208/0212")]
    BadReplacement {
        /// The position it was chosen for.
        index: usize,
    },
}

/// Applies the chosen substitutes to `text` (normalised first) and derives the position
/// string: each character a substitute produced is marked `1`, every other `0`. A
/// substitute of several characters (kana, where no kanji fits) marks each of them.
pub fn apply(text: &str, chosen: &[Substitution]) -> Result<CertifiedText, SubstituteError> {
    let chars: Vec<char> = normalise(text).chars().collect();
    let mut by_index: BTreeMap<usize, &str> = BTreeMap::new();
    for s in chosen {
        if s.index >= chars.len() {
            return Err(SubstituteError::OutOfRange { index: s.index });
        }
        if s.replacement.is_empty() || !s.replacement.chars().all(in_repertoire) {
            return Err(SubstituteError::BadReplacement { index: s.index });
        }
        if by_index.insert(s.index, &s.replacement).is_some() {
            return Err(SubstituteError::Duplicate { index: s.index });
        }
    }
    let mut out = CertifiedText {
        text: String::new(),
        positions: String::new(),
    };
    for (index, ch) in chars.into_iter().enumerate() {
        match (in_repertoire(ch), by_index.get(&index)) {
            (true, None) => {
                out.text.push(ch);
                out.positions.push('0');
            }
            (false, Some(replacement)) => {
                for r in replacement.chars() {
                    out.text.push(r);
                    out.positions.push('1');
                }
            }
            (true, Some(_)) => return Err(SubstituteError::NotNeeded { index }),
            (false, None) => return Err(SubstituteError::Missing { index }),
        }
    }
    Ok(out)
}

/// Applies the table's designated substitute at every position that needs one.
pub fn apply_designated(
    text: &str,
    table: &SubstituteTable,
) -> Result<CertifiedText, SubstituteError> {
    let mut chosen = Vec::new();
    for p in propose(text, table) {
        let replacement = p
            .designated
            .ok_or(SubstituteError::Missing { index: p.index })?;
        chosen.push(Substitution {
            index: p.index,
            replacement,
        });
    }
    apply(text, &chosen)
}

/// The municipality's designated substitutes, one per character outside the repertoire.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SubstituteTable {
    map: BTreeMap<char, String>,
}

/// Why a substitute table file was refused; `line` counts from 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubstituteTableError {
    /// The line is not `character<TAB>substitute[<TAB>note]` with a single character.
    #[error("line {line}: expected `character<TAB>substitute[<TAB>note]`")]
    Syntax {
        /// The line number.
        line: usize,
    },
    /// The character is inside the repertoire, so it never needs a substitute.
    #[error("line {line}: the character is inside JIS X 0208/0212 and needs no substitute")]
    NotNeeded {
        /// The line number.
        line: usize,
    },
    /// The substitute holds a character outside the repertoire.
    #[error("line {line}: the substitute is outside JIS X 0208/0212")]
    BadSubstitute {
        /// The line number.
        line: usize,
    },
    /// The character already has a substitute on an earlier line.
    #[error("line {line}: the character is listed twice")]
    Duplicate {
        /// The line number of the second entry.
        line: usize,
    },
}

/// The default table shipped with the kiosk.
const DEFAULT_TABLE: &str = include_str!("substitutes.tsv");

impl SubstituteTable {
    /// The table shipped with the kiosk (`src/rules/substitutes.tsv`).
    pub fn shipped() -> SubstituteTable {
        // Invariant: the embedded file is checked by a unit test.
        SubstituteTable::parse(DEFAULT_TABLE).expect("the shipped substitute table is valid")
    }

    /// Reads a table: `character<TAB>substitute[<TAB>note]` per line, `#` comments.
    pub fn parse(text: &str) -> Result<SubstituteTable, SubstituteTableError> {
        let mut map = BTreeMap::new();
        for (n, raw) in text.lines().enumerate() {
            let line = n + 1;
            let raw = raw.trim_end_matches('\r');
            if raw.trim().is_empty() || raw.starts_with('#') {
                continue;
            }
            let mut fields = raw.split('\t');
            let (Some(original), Some(substitute)) = (fields.next(), fields.next()) else {
                return Err(SubstituteTableError::Syntax { line });
            };
            let mut oc = original.chars();
            let (Some(original), None) = (oc.next(), oc.next()) else {
                return Err(SubstituteTableError::Syntax { line });
            };
            if substitute.is_empty() {
                return Err(SubstituteTableError::Syntax { line });
            }
            if in_repertoire(original) {
                return Err(SubstituteTableError::NotNeeded { line });
            }
            if !substitute.chars().all(in_repertoire) {
                return Err(SubstituteTableError::BadSubstitute { line });
            }
            if map.insert(original, substitute.to_owned()).is_some() {
                return Err(SubstituteTableError::Duplicate { line });
            }
        }
        Ok(SubstituteTable { map })
    }

    /// The designated substitute for a character.
    pub fn get(&self, original: char) -> Option<&str> {
        self.map.get(&original).map(String::as_str)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the table has no entries.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn plane_sizes_match_the_standards() {
        assert_eq!(plane_sizes(), (6879, 6067));
    }

    #[test]
    fn variant_kanji_are_classified() {
        let outside = [
            '髙', '𠮷', '淸', '﨑', '德', '瀨', '栁', '增', '①', 'Ⅰ', '㈱', '﨔',
        ];
        for ch in outside {
            assert_eq!(plane_of(ch), None, "{ch} U+{:04X}", ch as u32);
        }
        assert_eq!(plane_of('桒'), Some(Plane::Jis0212));
        for ch in "邉邊濱齋齊澤眞廣冨槇高吉崎徳瀬柳増堯槇遙瑤凜熙".chars() {
            assert_eq!(plane_of(ch), Some(Plane::Jis0208), "{ch}");
        }
        for ch in "あアー　１Ａａ〒々〆ヶ―～－∥".chars() {
            assert_eq!(
                plane_of(ch),
                Some(Plane::Jis0208),
                "{ch} U+{:04X}",
                ch as u32
            );
        }
        // Half-width forms and ASCII are JIS X 0201, not part of the repertoire.
        for ch in ['A', '1', ' ', 'ｱ', '\u{FFFD}'] {
            assert!(!in_repertoire(ch), "{ch}");
        }
    }

    #[test]
    fn normalises_ascii_and_jis_style_code_points() {
        let table = [
            ("Sato Taro", "Ｓａｔｏ　Ｔａｒｏ"),
            ("1-2-3", "１－２－３"),
            ("本町1丁目2番3号", "本町１丁目２番３号"),
            ("〜−‖—¢£¬", "～－∥―￠￡￢"),
            ("髙橋", "髙橋"),
            ("ｱｲｳ", "ｱｲｳ"),
        ];
        for (input, expected) in table {
            assert_eq!(normalise(input), expected);
        }
    }

    #[test]
    fn proposes_substitutes_at_each_outside_position() {
        let table = SubstituteTable::shipped();
        let p = propose("髙橋 𠮷男", &table);
        assert_eq!(
            p,
            vec![
                Proposal {
                    index: 0,
                    original: '髙',
                    designated: Some("高".into())
                },
                Proposal {
                    index: 3,
                    original: '𠮷',
                    designated: Some("吉".into())
                },
            ]
        );
        assert!(propose("渡邉　桒原", &table).is_empty());
        let unknown = propose("田中①", &table);
        assert_eq!(
            unknown,
            vec![Proposal {
                index: 2,
                original: '①',
                designated: None
            }]
        );
    }

    #[test]
    fn apply_derives_the_position_string() {
        let table = [
            // (text, substitutions, certified text, positions)
            ("山田　𠮷男", vec![(3, "吉")], "山田　吉男", "00010"),
            ("髙橋　一郎", vec![(0, "高")], "高橋　一郎", "10000"),
            ("渡邉　花子", vec![], "渡邉　花子", "00000"),
            (
                "髙﨑　德",
                vec![(0, "高"), (1, "崎"), (3, "徳")],
                "高崎　徳",
                "1101",
            ),
            // A kana substitute marks each character it adds.
            ("田中　①", vec![(3, "まる")], "田中　まる", "00011"),
            ("A町1-2", vec![], "Ａ町１－２", "00000"),
        ];
        for (text, subs, certified, positions) in table {
            let chosen: Vec<_> = subs
                .into_iter()
                .map(|(index, r)| Substitution {
                    index,
                    replacement: r.to_owned(),
                })
                .collect();
            let c = apply(text, &chosen).unwrap();
            assert_eq!((c.text(), c.positions()), (certified, positions), "{text}");
            assert_eq!(c.positions().chars().count(), c.text().chars().count());
            assert_eq!(c.uses_substitutes(), positions.contains('1'));
        }
    }

    #[test]
    fn apply_refuses_wrong_choices() {
        let sub = |index: usize, r: &str| Substitution {
            index,
            replacement: r.to_owned(),
        };
        assert_eq!(
            apply("髙橋", &[]),
            Err(SubstituteError::Missing { index: 0 })
        );
        assert_eq!(
            apply("高橋", &[sub(1, "橋")]),
            Err(SubstituteError::NotNeeded { index: 1 })
        );
        assert_eq!(
            apply("髙橋", &[sub(2, "高")]),
            Err(SubstituteError::OutOfRange { index: 2 })
        );
        assert_eq!(
            apply("髙橋", &[sub(0, "高"), sub(0, "高")]),
            Err(SubstituteError::Duplicate { index: 0 })
        );
        assert_eq!(
            apply("髙橋", &[sub(0, "")]),
            Err(SubstituteError::BadReplacement { index: 0 })
        );
        assert_eq!(
            apply("髙橋", &[sub(0, "﨑")]),
            Err(SubstituteError::BadReplacement { index: 0 })
        );
        // The message names the position only, never the character.
        let msg = SubstituteError::Missing { index: 0 }.to_string();
        assert!(!msg.contains('髙'));
    }

    #[test]
    fn apply_designated_uses_the_table() {
        let table = SubstituteTable::shipped();
        let c = apply_designated("髙橋　𠮷", &table).unwrap();
        assert_eq!((c.text(), c.positions()), ("高橋　吉", "1001"));
        assert_eq!(
            apply_designated("①", &table),
            Err(SubstituteError::Missing { index: 0 })
        );
    }

    #[test]
    fn shipped_table_is_valid_and_covers_the_known_variants() {
        let table = SubstituteTable::shipped();
        let expected = [
            ('髙', "高"),
            ('𠮷', "吉"),
            ('淸', "清"),
            ('﨑', "崎"),
            ('德', "徳"),
            ('瀨', "瀬"),
            ('栁', "柳"),
            ('增', "増"),
        ];
        for (original, substitute) in expected {
            assert_eq!(table.get(original), Some(substitute), "{original}");
        }
        assert!(table.len() >= expected.len());
    }

    #[test]
    fn table_parser_refuses_bad_lines() {
        let ok = SubstituteTable::parse("# comment\n\n髙\t高\tnote\r\n").unwrap();
        assert_eq!(ok.get('髙'), Some("高"));
        let table = [
            ("髙 高", SubstituteTableError::Syntax { line: 1 }),
            ("髙\t", SubstituteTableError::Syntax { line: 1 }),
            ("髙橋\t高", SubstituteTableError::Syntax { line: 1 }),
            ("#\n高\t高", SubstituteTableError::NotNeeded { line: 2 }),
            ("髙\t﨑", SubstituteTableError::BadSubstitute { line: 1 }),
            (
                "髙\t高\n髙\t高",
                SubstituteTableError::Duplicate { line: 2 },
            ),
        ];
        for (text, err) in table {
            assert_eq!(SubstituteTable::parse(text), Err(err), "{text:?}");
        }
    }

    proptest! {
        #[test]
        fn positions_always_match_the_certified_text(text in "[髙𠮷﨑高橋田中 a-z0-9①あア]{0,20}") {
            let table = SubstituteTable::parse("①\tまる\n").unwrap();
            let mut merged = SubstituteTable::shipped();
            merged.map.extend(table.map);
            let c = apply_designated(&text, &merged).unwrap();
            prop_assert_eq!(c.positions().chars().count(), c.text().chars().count());
            prop_assert!(c.text().chars().all(in_repertoire));
            prop_assert!(c.positions().bytes().all(|b| b == b'0' || b == b'1'));
            let outside = normalise(&text).chars().filter(|c| !in_repertoire(*c)).count();
            let circles = text.chars().filter(|c| *c == '①').count();
            // Each outside character becomes one substitute character, ① becomes two.
            prop_assert_eq!(c.positions().matches('1').count(), outside + circles);
        }
    }
}
