//! The language switch: Japanese (the source text), English and やさしい日本語, all
//! bundled into the binary from `ui/lang/`.
//!
//! Slint selects one language for the whole process, so switching on the resident
//! window also switches the staff window. Not here: per-visit memory of the choice
//! (the workflow keeps it).

/// A language the screens are shown in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    /// 日本語, the text as written in the views.
    Japanese,
    /// English (`ui/lang/en`).
    English,
    /// やさしい日本語 (`ui/lang/ja-easy`).
    EasyJapanese,
}

impl Language {
    /// The code the views use (`ResidentAdapter.language`).
    pub fn code(self) -> &'static str {
        match self {
            Language::Japanese => "ja",
            Language::English => "en",
            Language::EasyJapanese => "ja-easy",
        }
    }

    /// The language for a view's code, if known.
    pub fn from_code(code: &str) -> Option<Language> {
        [Language::Japanese, Language::English, Language::EasyJapanese]
            .into_iter()
            .find(|l| l.code() == code)
    }
}

/// Why a language could not be selected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LanguageError {
    /// Slint has no bundled catalogue for it (or no window exists yet: Slint needs one).
    #[error("language {0} is not available: {1}")]
    NotAvailable(&'static str, String),
}

/// Shows every screen in `language`. Call after a window exists.
pub fn select(language: Language) -> Result<(), LanguageError> {
    // The views' own text is Japanese: Slint's "default language" is the source text.
    let catalogue = match language {
        Language::Japanese => "",
        other => other.code(),
    };
    slint::select_bundled_translation(catalogue)
        .map_err(|e| LanguageError::NotAvailable(language.code(), e.to_string()))
}

/// Wires the resident window's language buttons to [`select`]; the chosen language is
/// marked on the buttons.
pub fn bind(window: &super::ResidentWindow) {
    use slint::ComponentHandle;
    let weak = window.as_weak();
    window.global::<super::ResidentAdapter>().on_select_language(move |code| {
        let Some(w) = weak.upgrade() else { return };
        let Some(language) = Language::from_code(&code) else { return };
        match select(language) {
            Ok(()) => w.global::<super::ResidentAdapter>().set_language(code),
            // The buttons only offer bundled languages; keep the current one if not.
            Err(e) => tracing::warn!(error = %e, "language switch failed"),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for l in [Language::Japanese, Language::English, Language::EasyJapanese] {
            assert_eq!(Language::from_code(l.code()), Some(l));
        }
        assert_eq!(Language::from_code("fr"), None);
    }
}
