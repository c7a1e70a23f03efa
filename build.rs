//! Compiles the kiosk's Slint views (`ui/app.slint`) into Rust.
//!
//! - Element debug info is on, so the testing backend's `ElementHandle` can find elements
//!   by accessible label (the UI tests and the headless demo need it).
//! - The Japanese font, IPAexGothic, is embedded from Debian's `fonts-ipaexfont-gothic`
//!   package (`.ci/setup.sh` installs it): `ui/theme.slint` imports `ipaexg.ttf`, found
//!   through the include path below. The repository carries no font file. Set
//!   `JPKI_KIOSK_FONT_DIR` to build with the file from another directory.
//! - Translations (`ui/lang/<lang>/LC_MESSAGES/jpki-kiosk.po`) are bundled into the binary.

use std::path::PathBuf;

/// Where Debian's fonts-ipaexfont-gothic installs the font.
const DEBIAN_FONT_DIR: &str = "/usr/share/fonts/opentype/ipaexfont-gothic";
const FONT_FILE: &str = "ipaexg.ttf";

fn main() {
    println!("cargo:rerun-if-env-changed=JPKI_KIOSK_FONT_DIR");
    let font_dir = std::env::var_os("JPKI_KIOSK_FONT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEBIAN_FONT_DIR));
    let font = font_dir.join(FONT_FILE);
    if !font.is_file() {
        panic!(
            "the kiosk embeds the IPAexGothic font, but {} does not exist.\n\
             Install Debian's fonts-ipaexfont-gothic (`.ci/setup.sh` does), or set \
             JPKI_KIOSK_FONT_DIR to a directory holding {FONT_FILE}.",
            font.display()
        );
    }
    println!("cargo:rerun-if-changed={}", font.display());

    let config = slint_build::CompilerConfiguration::new()
        .with_debug_info(true)
        .with_style("fluent".into())
        .with_include_paths(vec![font_dir])
        .with_default_translation_context(slint_build::DefaultTranslationContext::None)
        .with_bundled_translations("ui/lang");
    if let Err(e) = slint_build::compile_with_config("ui/app.slint", config) {
        panic!("ui/app.slint does not compile: {e}");
    }
}
