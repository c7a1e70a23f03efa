//! Screenshots of the kiosk's screens without a display: each [`Screen`] is built with
//! sample data through the same adapters the kiosk uses, drawn by Slint's software
//! renderer at 1920×1080 and written as a PNG.
//!
//! Used by the headless demo (a PNG of every screen it passed) and by the tests that
//! check the screens render. If no Slint platform is set yet, a headless one is set
//! (Slint allows one per process); if one is (the testing backend, say), it is used as
//! it is, provided it can take snapshots. Not a pixel-exact test oracle.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;
use std::rc::Rc;

use slint::platform::software_renderer::{MinimalSoftwareWindow, RepaintBufferType};
use slint::platform::{Platform, WindowAdapter};
use slint::{ComponentHandle, PhysicalSize, PlatformError, Rgba8Pixel, SharedPixelBuffer};

use super::form::FormBinding;
use super::pinpad::{key_rows, KeyOrder, PinPadBinding, PinPadController, Secret};
use super::{
    CardPrompt, FormAdapter, ResidentAdapter, ResidentScreen, ResidentWindow, Sex, StaffAdapter,
    StaffScreen, StaffWindow, PinPadAdapter,
};
use crate::rules::repertoire::SubstituteTable;

/// Width of the kiosk's panels, in pixels.
pub const WIDTH: u32 = 1920;
/// Height of the kiosk's panels, in pixels.
pub const HEIGHT: u32 = 1080;

/// A screen the kiosk shows, with sample data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    /// Staff: sign-in.
    StaffSignIn,
    /// Staff: the visit type.
    StaffVisitType,
    /// Staff: the application form, for a name that needs a 代替文字.
    StaffForm,
    /// Resident: welcome, waiting for staff.
    ResidentWelcome,
    /// Resident: insert the card.
    ResidentInsertCard,
    /// Resident: a new 4-digit PIN, two digits entered.
    ResidentPinFirst,
    /// Resident: the confirmation did not match.
    ResidentPinMismatch,
    /// Resident: the signing password pad, shuffled keys.
    ResidentSigningPassword,
    /// Resident: checking an existing PIN, with tries left.
    ResidentPinVerify,
    /// Resident: card being written, do not remove.
    ResidentDoNotRemove,
    /// Resident: take the card.
    ResidentTakeCard,
}

impl Screen {
    /// Every screen, in visit order.
    pub const ALL: [Screen; 11] = [
        Screen::StaffSignIn,
        Screen::StaffVisitType,
        Screen::StaffForm,
        Screen::ResidentWelcome,
        Screen::ResidentInsertCard,
        Screen::ResidentPinFirst,
        Screen::ResidentPinMismatch,
        Screen::ResidentSigningPassword,
        Screen::ResidentPinVerify,
        Screen::ResidentDoNotRemove,
        Screen::ResidentTakeCard,
    ];

    /// A file name for the screen's PNG.
    pub fn file_name(self) -> &'static str {
        match self {
            Screen::StaffSignIn => "staff-01-sign-in.png",
            Screen::StaffVisitType => "staff-02-visit-type.png",
            Screen::StaffForm => "staff-03-form.png",
            Screen::ResidentWelcome => "resident-01-welcome.png",
            Screen::ResidentInsertCard => "resident-02-insert-card.png",
            Screen::ResidentPinFirst => "resident-03-pin-first.png",
            Screen::ResidentPinMismatch => "resident-04-pin-mismatch.png",
            Screen::ResidentSigningPassword => "resident-05-signing-password.png",
            Screen::ResidentPinVerify => "resident-06-pin-verify.png",
            Screen::ResidentDoNotRemove => "resident-07-do-not-remove.png",
            Screen::ResidentTakeCard => "resident-08-take-card.png",
        }
    }
}

/// Why a screen could not be rendered or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RenderError {
    /// Slint could not create or draw the window (or the platform set in this process
    /// cannot take snapshots).
    #[error("slint: {0}")]
    Slint(#[from] PlatformError),
    /// The PNG file could not be written.
    #[error("writing the PNG: {0}")]
    Io(#[from] std::io::Error),
    /// The PNG encoder failed.
    #[error("encoding the PNG: {0}")]
    Png(#[from] png::EncodingError),
}

/// A platform with no display: every window is a software-rendered buffer.
struct Headless;

impl Platform for Headless {
    fn create_window_adapter(&self) -> Result<Rc<dyn WindowAdapter>, PlatformError> {
        Ok(MinimalSoftwareWindow::new(RepaintBufferType::NewBuffer))
    }
}

/// Sets the headless platform unless this process already has one.
pub fn ensure_platform() {
    // AlreadySet is fine: the testing backend (or an earlier call) renders in software too.
    let _ = slint::platform::set_platform(Box::new(Headless));
}

/// Sets Slint's testing backend for this process (no display, no event loop, mocked
/// time; elements found by accessible label; snapshots drawn in software). Must come
/// before anything else touches Slint; later calls do nothing.
pub fn ensure_testing_platform() {
    static SET: std::sync::Once = std::sync::Once::new();
    SET.call_once(|| {
        use i_slint_backend_testing::{TestingBackend, TestingBackendOptions};
        let backend = TestingBackend::new(TestingBackendOptions {
            mock_time: true,
            threading: false,
            // A real rasteriser, so windows can be drawn to PNG (and lay text out with
            // the real font's metrics).
            renderer_name: Some("software".into()),
        });
        if slint::platform::set_platform(Box::new(backend)).is_err() {
            tracing::debug!("a Slint platform was already set");
        }
    });
}

/// The windows behind a screen, kept alive until drawn.
enum Built {
    Staff(StaffWindow),
    // The pad binding is held only so its callbacks stay wired until drawn.
    Resident(ResidentWindow, #[allow(dead_code)] Option<PinPadBinding>),
}

fn build(screen: Screen) -> Result<Built, PlatformError> {
    let resident = |screen_kind: ResidentScreen, prompt: CardPrompt| -> Result<ResidentWindow, PlatformError> {
        let w = ResidentWindow::new()?;
        w.global::<ResidentAdapter>().set_screen(screen_kind);
        w.global::<PinPadAdapter>().set_card_prompt(prompt);
        Ok(w)
    };
    let pad = |w: &ResidentWindow, controller: PinPadController, order, typed: &[&str]| {
        // Sample layouts use a fixed seed so screenshots are reproducible.
        let rows = key_rows(controller.secret(), order, &mut SampleRng(0x5eed));
        let binding = PinPadBinding::bind(w, controller, &rows, |_| {});
        let a = w.global::<PinPadAdapter>();
        for k in typed {
            a.invoke_key((*k).into());
        }
        binding
    };
    Ok(match screen {
        Screen::StaffSignIn => Built::Staff(StaffWindow::new()?),
        Screen::StaffVisitType => {
            let w = StaffWindow::new()?;
            let s = w.global::<StaffAdapter>();
            s.set_operator("総務 花子".into());
            s.set_screen(StaffScreen::VisitType);
            Built::Staff(w)
        }
        Screen::StaffForm => {
            let w = StaffWindow::new()?;
            let s = w.global::<StaffAdapter>();
            s.set_operator("総務 花子".into());
            s.set_screen(StaffScreen::Form);
            let f = w.global::<FormAdapter>();
            f.set_name("髙橋 一郎".into());
            f.set_furigana("たかはし いちろう".into());
            f.set_address("東京都千代田区霞が関二丁目1番2号 德永ビル".into());
            f.set_era(2);
            f.set_year("55".into());
            f.set_month("3".into());
            f.set_day("1".into());
            f.set_sex(Sex::Male);
            let _binding = FormBinding::bind(&w, SubstituteTable::shipped(), |_, _| {});
            f.invoke_confirm_substitute("name".into(), 0);
            Built::Staff(w)
        }
        Screen::ResidentWelcome => {
            Built::Resident(resident(ResidentScreen::Welcome, CardPrompt::None)?, None)
        }
        Screen::ResidentInsertCard => {
            Built::Resident(resident(ResidentScreen::Card, CardPrompt::Insert)?, None)
        }
        Screen::ResidentPinFirst => {
            let w = resident(ResidentScreen::Pin, CardPrompt::None)?;
            let b = pad(&w, PinPadController::new_secret(Secret::AuthPin), KeyOrder::Fixed, &["1", "9"]);
            Built::Resident(w, Some(b))
        }
        Screen::ResidentPinMismatch => {
            let w = resident(ResidentScreen::Pin, CardPrompt::None)?;
            let b = pad(&w, PinPadController::new_secret(Secret::AuthPin), KeyOrder::Fixed, &[]);
            let a = w.global::<PinPadAdapter>();
            for k in ["1", "9", "7", "3"] {
                a.invoke_key(k.into());
            }
            a.invoke_ok();
            for k in ["1", "9", "7", "4"] {
                a.invoke_key(k.into());
            }
            a.invoke_ok();
            Built::Resident(w, Some(b))
        }
        Screen::ResidentSigningPassword => {
            let w = resident(ResidentScreen::Pin, CardPrompt::None)?;
            let b = pad(
                &w,
                PinPadController::new_secret(Secret::SigningPassword),
                KeyOrder::Shuffled,
                &["K", "I", "O", "S", "K", "2", "0"],
            );
            Built::Resident(w, Some(b))
        }
        Screen::ResidentPinVerify => {
            let w = resident(ResidentScreen::Pin, CardPrompt::DoNotRemove)?;
            let b = pad(&w, PinPadController::verify(Secret::AuthPin), KeyOrder::Shuffled, &["5", "5"]);
            let a = w.global::<PinPadAdapter>();
            a.set_tries_left(2);
            a.set_message(super::PinMessage::WrongPin);
            Built::Resident(w, Some(b))
        }
        Screen::ResidentDoNotRemove => {
            Built::Resident(resident(ResidentScreen::Card, CardPrompt::DoNotRemove)?, None)
        }
        Screen::ResidentTakeCard => {
            Built::Resident(resident(ResidentScreen::Welcome, CardPrompt::TakeCard)?, None)
        }
    })
}

/// Draws `screen` at [`WIDTH`]×[`HEIGHT`] and returns the pixels.
pub fn render_screen(screen: Screen) -> Result<SharedPixelBuffer<Rgba8Pixel>, RenderError> {
    ensure_platform();
    let built = build(screen)?;
    let window = match &built {
        Built::Staff(w) => w.window(),
        Built::Resident(w, _) => w.window(),
    };
    window.set_size(PhysicalSize::new(WIDTH, HEIGHT));
    window.show()?;
    slint::platform::update_timers_and_animations();
    let pixels = window.take_snapshot()?;
    window.hide()?;
    Ok(pixels)
}

/// Draws `screen` and writes it to `path` as an 8-bit RGBA PNG.
pub fn screen_to_png(screen: Screen, path: &Path) -> Result<(), RenderError> {
    let pixels = render_screen(screen)?;
    write_png(&pixels, path)
}

/// Writes pixels as an 8-bit RGBA PNG.
pub fn write_png(pixels: &SharedPixelBuffer<Rgba8Pixel>, path: &Path) -> Result<(), RenderError> {
    let file = BufWriter::new(File::create(path)?);
    let mut encoder = png::Encoder::new(file, pixels.width(), pixels.height());
    encoder.set_color(png::ColorType::Rgba);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(pixels.as_bytes())?;
    writer.finish()?;
    Ok(())
}

/// A tiny deterministic generator (SplitMix64) for the sample screens' shuffled keys;
/// the kiosk itself shuffles with the OS generator.
struct SampleRng(u64);

impl rand_core::RngCore for SampleRng {
    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        rand_core::impls::fill_bytes_via_next(self, dest);
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_distinct() {
        let mut names: Vec<_> = Screen::ALL.iter().map(|s| s.file_name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Screen::ALL.len());
    }
}
