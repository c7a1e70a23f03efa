//! A scripted person at the counter, for the headless demo and the UI tests: finds
//! elements of the real views by their accessible label, types into fields and taps
//! buttons, as a screen reader or a finger would, through Slint's testing backend.
//!
//! What it is not: a shortcut. It never sets a view's adapter property that a person
//! could not set by typing or tapping, and never sends the worker an answer itself; the
//! views' own callbacks do.

use i_slint_backend_testing::{AccessibleRole, ElementHandle, ElementRoot};
use slint::ComponentHandle;
use zeroize::Zeroizing;

use crate::registry::ResidentRecord;
use crate::rules::attributes::Sex;
use crate::rules::wareki;
use crate::ui::{FormAdapter, IdentityAdapter};

/// Why the walker could not do what the script says.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WalkError {
    /// No visible button has this label (or several do).
    #[error("expected one button labelled {label:?}, found {found}")]
    Button {
        /// The label.
        label: String,
        /// How many were found.
        found: usize,
    },
    /// No text field has this label.
    #[error("no text field labelled {0:?}")]
    Field(String),
}

fn visible(e: &ElementHandle) -> bool {
    e.is_valid() && e.size().height > 0.0 && e.size().width > 0.0
}

/// Taps the one visible button labelled `label`.
pub fn tap(root: &impl ElementRoot, label: &str) -> Result<(), WalkError> {
    let found: Vec<_> = ElementHandle::find_by_accessible_label(root, label)
        .filter(|e| e.accessible_role() == Some(AccessibleRole::Button) && visible(e))
        .collect();
    if found.len() != 1 {
        return Err(WalkError::Button { label: label.to_string(), found: found.len() });
    }
    found[0].invoke_accessible_default_action();
    Ok(())
}

/// Types `text` into the field labelled `label` (replacing what it held).
pub fn type_into(root: &impl ElementRoot, label: &str, text: &str) -> Result<(), WalkError> {
    let field = ElementHandle::find_by_accessible_label(root, label)
        .find(|e| e.accessible_role() == Some(AccessibleRole::TextInput))
        .ok_or_else(|| WalkError::Field(label.to_string()))?;
    field.set_accessible_value(text);
    Ok(())
}

/// Every accessible label and value shown in the window (what a screen reader reads).
pub fn shown_text(root: &impl ElementRoot) -> Vec<String> {
    root.root_element()
        .query_descendants()
        .find_all()
        .into_iter()
        .filter(visible)
        .flat_map(|e| [e.accessible_label(), e.accessible_value()])
        .flatten()
        .map(|s| s.to_string())
        .filter(|s| !s.trim().is_empty())
        .collect()
}

/// Fills in the application form from the resident's registry record, as staff copy it
/// from the application: the birth date in 和暦, each 代替文字 confirmed with the
/// resident. Staff then press 「入力内容を確定する」.
pub fn fill_form(window: &crate::ui::StaffWindow, resident: &ResidentRecord, want_sign: bool) -> Result<(), WalkError> {
    type_into(window, "宛名番号", resident.id.as_str())?;
    type_into(window, "氏名", &resident.name)?;
    type_into(window, "ふりがな", resident.furigana.as_deref().unwrap_or_default())?;
    type_into(window, "住所", &resident.address)?;
    let w = wareki::to_wareki(resident.birth_date).map_err(|_| WalkError::Field("生年月日".into()))?;
    tap(window, "和暦")?;
    tap(window, w.era().name())?;
    type_into(window, "年", &w.year().to_string())?;
    type_into(window, "月", &u8::from(resident.birth_date.month()).to_string())?;
    type_into(window, "日", &resident.birth_date.day().to_string())?;
    tap(window, if resident.sex == Sex::Female { "女" } else { "男" })?;
    if !want_sign {
        tap(window, "署名用")?;
    }
    // Typing through the accessibility interface does not raise `edited`; a keyboard does.
    window.global::<FormAdapter>().invoke_edited();
    while tap(window, "本人に確認した").is_ok() {}
    Ok(())
}

/// Fills in the identity documents: the holder with a driving licence. Staff then press
/// 「本人確認を記録する」.
pub fn record_identity(window: &crate::ui::StaffWindow, licence_number: &str) -> Result<(), WalkError> {
    tap(window, "本人")?;
    tap(window, "運転免許証")?;
    type_into(window, "1点目の書類 記号・番号", licence_number)?;
    window.global::<IdentityAdapter>().invoke_edited();
    Ok(())
}

/// Types a PIN on the resident pad and presses 決定.
pub fn enter_pin(window: &crate::ui::ResidentWindow, pin: &Zeroizing<String>) -> Result<(), WalkError> {
    for c in pin.chars() {
        let mut key = [0u8; 4];
        tap(window, c.encode_utf8(&mut key))?;
    }
    tap(window, "決定")
}
