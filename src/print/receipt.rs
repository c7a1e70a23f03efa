//! The receipt (領収書) and the issuance record (交付記録) for one visit.
//!
//! What it is: [`render`], which turns a [`Slip`] into a PDF for the 80 mm roll or A4.
//! Both documents show municipality, counter, date and time (JST), visit kind, amount,
//! case number, operator id and what was issued with its validity end; a reprint carries
//! 再発行 at the top.
//!
//! Names and 代替文字: the receipt is addressed to the resident, so it prints the name as
//! registered (the 住民票's glyph), like the card face. The issuance record also shows the
//! name as written in the certificate when it differs, since that is what was issued. When
//! the font has no glyph for a registered character (a municipal 外字), the substitute is
//! printed and marked, never a blank box. `docs/ledger.md` gives the reasons.
//!
//! What it is not: the printer (see `print::output`), nor the decision whether a receipt
//! needs the name (the caller passes `None` when it does not).

use time::{Date, OffsetDateTime};

use super::pdf::{self, Block, Font, Paper};
use super::PrintError;
use crate::ledger::{kind_label_ja, Method, JST};
use crate::rules::fee::{VisitKind, Yen};

/// Which of the two documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlipKind {
    /// 領収書: proof of payment, handed to the resident.
    Receipt,
    /// 交付記録: what was issued to whom, kept by the counter or handed over.
    IssuanceRecord,
}

impl SlipKind {
    /// The title printed at the top.
    pub fn title(self) -> &'static str {
        match self {
            SlipKind::Receipt => "領収書",
            SlipKind::IssuanceRecord => "交付記録",
        }
    }
}

/// One thing handed over: a certificate or a card, with the end of its validity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedItem {
    /// What, as printed (e.g. `署名用電子証明書`).
    pub what: String,
    /// The last day it is valid, if it has one.
    pub valid_until: Option<Date>,
}

/// The resident's name in its two forms.
#[derive(Clone, PartialEq, Eq)]
pub struct ResidentName {
    /// As registered (住民票), possibly with characters outside JIS X 0208/0212.
    pub registered: String,
    /// As written in the certificate, with 代替文字 in place of those characters.
    pub in_certificate: String,
}

impl std::fmt::Debug for ResidentName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Personal data: never in logs.
        f.write_str("ResidentName(<redacted>)")
    }
}

/// Everything a receipt or issuance record prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slip {
    /// 領収書 or 交付記録.
    pub kind: SlipKind,
    /// The municipality (e.g. `見本市`).
    pub municipality: String,
    /// The counter (e.g. `市民課 3番窓口`).
    pub counter: String,
    /// When the visit was settled.
    pub at: OffsetDateTime,
    /// What the visit was for.
    pub visit_kind: VisitKind,
    /// The fee due.
    pub fee_due: Yen,
    /// The amount received.
    pub amount: Yen,
    /// How it was settled.
    pub method: Method,
    /// The case number (受付番号).
    pub case_number: String,
    /// The cashier's staff id.
    pub operator_id: String,
    /// What was issued.
    pub issued: Vec<IssuedItem>,
    /// The resident's name, only where the document needs it.
    pub name: Option<ResidentName>,
    /// A reprint (再発行) of a slip already printed.
    pub reprint: bool,
}

/// `2026年11月20日 10:05` in JST.
pub fn format_jst(at: OffsetDateTime) -> String {
    let t = at.to_offset(JST);
    format!(
        "{}年{}月{}日 {:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}

/// `2031年3月31日`.
pub fn format_date_ja(d: Date) -> String {
    format!("{}年{}月{}日", d.year(), u8::from(d.month()), d.day())
}

/// `1,200円`: the thousands separator a cashier expects.
pub fn format_yen(amount: i64) -> String {
    let digits = amount.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{}{}円", if amount < 0 { "-" } else { "" }, out)
}

/// The name lines to print, following the 代替文字 rule in the module header.
fn name_lines(kind: SlipKind, name: &ResidentName, font: &Font) -> Vec<(String, String)> {
    let differs = name.registered != name.in_certificate;
    let mut lines = Vec::new();
    if font.covers(&name.registered) {
        lines.push(("氏名".to_owned(), format!("{} 様", name.registered)));
        if kind == SlipKind::IssuanceRecord && differs {
            lines.push(("証明書記載".to_owned(), name.in_certificate.clone()));
        }
    } else {
        // The registered glyph is a municipal 外字 the font lacks: print the substitute
        // and say so, rather than a box the resident cannot read.
        lines.push(("氏名".to_owned(), format!("{} 様", name.in_certificate)));
        lines.push((String::new(), "（代替文字で表記）".to_owned()));
    }
    lines
}

/// Lays the slip out and returns the PDF.
pub fn render(slip: &Slip, paper: Paper, font: &Font) -> Result<Vec<u8>, PrintError> {
    let w = paper.width_mm() - 2.0 * paper.margin_mm();
    let (title, big, body, small) = match paper {
        Paper::Roll80 => (18.0, 14.0, 10.0, 8.0),
        Paper::A4 => (24.0, 16.0, 12.0, 10.0),
    };
    let value_max = |label: &str| (w * 72.0 / 25.4) - font.width_pt(label, body) - body;
    let mut b = Vec::new();
    if slip.reprint {
        b.push(Block::centered(body, w, "【再発行】"));
    }
    b.push(Block::centered(title, w, slip.kind.title()));
    b.push(Block::Gap(2.0));
    b.push(Block::centered(body, w, slip.municipality.clone()));
    b.push(Block::centered(small, w, slip.counter.clone()));
    b.push(Block::Rule);
    if let Some(name) = &slip.name {
        for (label, value) in name_lines(slip.kind, name, font) {
            let v = font.fit(&value, body, value_max(&label));
            b.push(Block::pair(body, w, label, v));
        }
        b.push(Block::Rule);
    }
    b.push(Block::pair(body, w, "日時", format_jst(slip.at)));
    b.push(Block::pair(body, w, "受付番号", slip.case_number.clone()));
    b.push(Block::pair(body, w, "手続", kind_label_ja(slip.visit_kind)));
    if slip.kind == SlipKind::Receipt {
        b.push(Block::Rule);
        b.push(Block::pair(big, w, "金額", format_yen(i64::from(slip.amount.0))));
        b.push(Block::pair(body, w, "支払方法", slip.method.label_ja()));
        if slip.method == Method::Waived {
            b.push(Block::pair(body, w, "免除額", format_yen(i64::from(slip.fee_due.0))));
        }
        b.push(Block::left(small, "上記の金額を手数料として領収しました。"));
    } else {
        b.push(Block::pair(body, w, "手数料", format_yen(i64::from(slip.amount.0))));
    }
    if !slip.issued.is_empty() {
        b.push(Block::Rule);
        b.push(Block::left(body, "交付内容"));
        for item in &slip.issued {
            let until =
                item.valid_until.map_or("—".to_owned(), |d| format!("{}まで", format_date_ja(d)));
            let (what, until) = (format!("・{}", item.what), format!("有効期限 {until}"));
            if font.width_pt(&what, small) + font.width_pt(&until, small) + small > w * 72.0 / 25.4
            {
                // Too long for one line of the roll: the validity goes under the item.
                b.push(Block::left(small, what));
                b.push(Block::pair(small, w, "", until));
            } else {
                b.push(Block::pair(small, w, what, until));
            }
        }
    }
    b.push(Block::Rule);
    b.push(Block::pair(small, w, "取扱者", slip.operator_id.clone()));
    if slip.kind == SlipKind::IssuanceRecord {
        b.push(Block::Gap(4.0));
        b.push(Block::pair(body, w, "受領者署名", "＿＿＿＿＿＿＿＿＿＿"));
    }
    pdf::render(slip.kind.title(), font, paper, &b, &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yen_has_separators() {
        assert_eq!(format_yen(0), "0円");
        assert_eq!(format_yen(200), "200円");
        assert_eq!(format_yen(1200), "1,200円");
        assert_eq!(format_yen(-1234567), "-1,234,567円");
    }

    #[test]
    fn jst_time() {
        let at = time::macros::datetime!(2026-11-20 01:05 UTC);
        assert_eq!(format_jst(at), "2026年11月20日 10:05");
    }

    #[test]
    fn names_follow_the_substitute_rule() {
        let font = Font::load_default().unwrap();
        let name = ResidentName {
            registered: "髙橋 一郎".into(),
            in_certificate: "高橋 一郎".into(),
        };
        let r = name_lines(SlipKind::Receipt, &name, &font);
        assert_eq!(r, vec![("氏名".to_owned(), "髙橋 一郎 様".to_owned())]);
        let i = name_lines(SlipKind::IssuanceRecord, &name, &font);
        assert_eq!(i[1], ("証明書記載".to_owned(), "高橋 一郎".to_owned()));
        let gaiji = ResidentName {
            registered: "\u{F8F0}田 花子".into(),
            in_certificate: "吉田 花子".into(),
        };
        let g = name_lines(SlipKind::Receipt, &gaiji, &font);
        assert_eq!(g[0].1, "吉田 花子 様");
        assert_eq!(g[1].1, "（代替文字で表記）");
        assert_eq!(format!("{name:?}"), "ResidentName(<redacted>)");
    }
}
