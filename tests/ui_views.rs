//! The kiosk's screens driven headless: Slint's testing backend finds elements by their
//! accessible label and taps them, as a screen reader or a finger would; the software
//! renderer draws every screen to a PNG.

use std::cell::RefCell;
use std::rc::Rc;

use i_slint_backend_testing::{ElementHandle, ElementRoot};
use jpki_kiosk::rules::repertoire::SubstituteTable;
use jpki_kiosk::ui::form::FormBinding;
use jpki_kiosk::ui::pinpad::{
    key_rows, EnteredSecret, KeyOrder, PinPadBinding, PinPadController, Secret,
};
use jpki_kiosk::ui::render::{render_screen, screen_to_png, Screen, HEIGHT, WIDTH};
use jpki_kiosk::ui::staff::{self, SignInResult};
use jpki_kiosk::ui::{
    FormAdapter, PinMessage, PinPadAdapter, PinStep, ResidentAdapter, ResidentScreen,
    ResidentWindow, StaffAdapter, StaffScreen, StaffWindow,
};
use slint::ComponentHandle;

/// Starts Slint's testing backend once per test thread.
fn init() {
    thread_local!(static STARTED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) });
    if !STARTED.replace(true) {
        i_slint_backend_testing::init_no_event_loop();
    }
}

/// The text field labelled `label` (not the caption beside it).
fn field(root: &impl ElementRoot, label: &str) -> ElementHandle {
    ElementHandle::find_by_accessible_label(root, label)
        .find(|e| e.accessible_role() == Some(i_slint_backend_testing::AccessibleRole::TextInput))
        .unwrap_or_else(|| panic!("no text field labelled {label:?}"))
}

/// A resident window on the PIN screen, bound to a new-secret pad with fixed keys.
fn resident_pad(secret: Secret) -> (ResidentWindow, PinPadBinding, Rc<RefCell<Vec<EnteredSecret>>>) {
    init();
    let w = ResidentWindow::new().unwrap();
    w.global::<ResidentAdapter>().set_screen(ResidentScreen::Pin);
    let done = Rc::new(RefCell::new(Vec::new()));
    let sink = done.clone();
    let rows = key_rows(secret, KeyOrder::Fixed, &mut rand_core::OsRng);
    let binding = PinPadBinding::bind(&w, PinPadController::new_secret(secret), &rows, move |s| {
        sink.borrow_mut().push(s)
    });
    w.show().unwrap();
    (w, binding, done)
}

/// Taps the one button labelled `label`.
fn tap(root: &impl ElementRoot, label: &str) {
    let found: Vec<_> = ElementHandle::find_by_accessible_label(root, label)
        .filter(|e| e.accessible_role() == Some(i_slint_backend_testing::AccessibleRole::Button))
        .collect();
    assert_eq!(found.len(), 1, "expected one button labelled {label:?}, found {}", found.len());
    found[0].invoke_accessible_default_action();
}

fn shows(root: &impl ElementRoot, label: &str) -> bool {
    ElementHandle::find_by_accessible_label(root, label).any(|e| e.is_visible())
}

/// Every accessible label and value in the window.
fn all_text(root: &impl ElementRoot) -> Vec<String> {
    root.root_element()
        .query_descendants()
        .find_all()
        .into_iter()
        .flat_map(|e| [e.accessible_label(), e.accessible_value()])
        .flatten()
        .map(|s| s.to_string())
        .collect()
}

trait Visible {
    fn is_visible(&self) -> bool;
}
impl Visible for ElementHandle {
    fn is_visible(&self) -> bool {
        self.is_valid() && self.computed_opacity() > 0.0 && self.size().height > 0.0
    }
}

#[test]
fn pin_pad_shows_only_the_length() {
    let (w, binding, _) = resident_pad(Secret::AuthPin);
    for k in ["1", "9", "7"] {
        tap(&w, k);
    }
    assert_eq!(w.global::<PinPadAdapter>().get_entered_length(), 3);
    assert!(shows(&w, "3 文字入力しました"));
    let text = all_text(&w);
    assert!(!text.iter().any(|t| t.contains("197") || t.contains("1 9 7")), "{text:?}");
    tap(&w, "1文字消す");
    assert_eq!(binding.view().entered_length, 2);
    assert!(shows(&w, "2 文字入力しました"));
    tap(&w, "全部消す");
    assert_eq!(w.global::<PinPadAdapter>().get_entered_length(), 0);
}

#[test]
fn wrong_format_shows_the_rule() {
    let (w, _binding, done) = resident_pad(Secret::AuthPin);
    tap(&w, "1");
    tap(&w, "2");
    tap(&w, "決定");
    assert_eq!(w.global::<PinPadAdapter>().get_message(), PinMessage::TooShort);
    assert!(shows(&w, "× 文字が足りません。 数字4けたです。"));
    assert!(done.borrow().is_empty());

    let (w, _binding, _) = resident_pad(Secret::SigningPassword);
    for k in ["A", "B", "C", "D", "E", "F"] {
        tap(&w, k);
    }
    tap(&w, "決定");
    assert!(shows(&w, "× 数字を1文字以上入れてください。"));
}

#[test]
fn double_entry_mismatch_is_caught_then_a_match_finishes() {
    let (w, _binding, done) = resident_pad(Secret::AuthPin);
    let enter = |digits: &str| {
        for d in digits.chars() {
            tap(&w, &d.to_string());
        }
        tap(&w, "決定");
    };
    enter("1973");
    assert_eq!(w.global::<PinPadAdapter>().get_step(), PinStep::Confirm);
    assert!(shows(&w, "確認のため、もう一度同じものを入れてください"));
    enter("1974");
    assert_eq!(w.global::<PinPadAdapter>().get_step(), PinStep::First);
    assert!(shows(&w, "× 1回目と2回目がちがいます。はじめから入れなおしてください。"));
    assert!(done.borrow().is_empty());
    enter("2468");
    enter("2468");
    let done = done.borrow();
    assert_eq!(done.len(), 1);
    match &done[0] {
        EnteredSecret::AuthPin(pin) => assert_eq!(pin.expose(), b"2468"),
        other => panic!("{other:?}"),
    }
    assert!(shows(&w, "◎ 受け付けました。"));
}

fn assert_buttons_labelled(root: &impl ElementRoot, at_least: usize, screen: &str) {
    let buttons = root
        .root_element()
        .query_descendants()
        .match_accessible_role(i_slint_backend_testing::AccessibleRole::Button)
        .find_all();
    assert!(buttons.len() >= at_least, "{screen}: only {} buttons", buttons.len());
    for b in buttons {
        let label = b.accessible_label().unwrap_or_default();
        assert!(!label.trim().is_empty(), "{screen}: a button without a label");
        let size = b.size();
        if size.width > 0.0 {
            // Touch targets of at least 64 px (10 mm is 37 px on the kiosk's panel).
            assert!(size.width >= 64.0 && size.height >= 64.0, "{screen}: {label:?} is {size:?}");
        }
    }
}

#[test]
fn every_button_has_an_accessible_label() {
    let (w, _b, _) = resident_pad(Secret::SigningPassword);
    // 36 keys, three edit keys, three languages.
    assert_buttons_labelled(&w, 42, "signing password pad");
    drop((w, _b));

    let w = StaffWindow::new().unwrap();
    w.window().set_size(slint::PhysicalSize::new(WIDTH, HEIGHT));
    w.show().unwrap();
    assert_buttons_labelled(&w, 1, "sign-in");
    let s = w.global::<StaffAdapter>();
    s.set_operator("総務 花子".into());
    s.set_screen(StaffScreen::VisitType);
    assert_buttons_labelled(&w, 5, "visit type");
    s.set_screen(StaffScreen::Form);
    let _form = FormBinding::bind(&w, SubstituteTable::shipped(), |_, _| {});
    assert_buttons_labelled(&w, 10, "form");
}

#[test]
fn sign_in_then_choose_a_visit() {
    init();
    let w = StaffWindow::new().unwrap();
    let chosen = Rc::new(RefCell::new(Vec::new()));
    let sink = chosen.clone();
    staff::bind(
        &w,
        |id, pass| {
            if id == "S001" && pass.as_str() == "correct horse" {
                SignInResult::SignedIn("総務 花子".into())
            } else {
                SignInResult::Rejected
            }
        },
        move |v| sink.borrow_mut().push(v),
        || {},
    );
    w.show().unwrap();
    tap(&w, "サインイン");
    assert!(shows(&w, "× 職員番号とパスフレーズを入れてください。"));
    let field = |label: &str| field(&w, label);
    field("職員番号").set_accessible_value("S001");
    field("パスフレーズ").set_accessible_value("wrong");
    tap(&w, "サインイン");
    assert!(shows(&w, "× 職員番号かパスフレーズがちがいます。"));
    assert_eq!(w.global::<StaffAdapter>().get_screen(), StaffScreen::SignIn);
    field("パスフレーズ").set_accessible_value("correct horse");
    tap(&w, "サインイン");
    assert_eq!(w.global::<StaffAdapter>().get_screen(), StaffScreen::VisitType);
    assert!(shows(&w, "担当: 総務 花子"));
    tap(&w, "新規発行（署名用・利用者証明用の電子証明書）");
    assert_eq!(chosen.borrow().len(), 1);
    tap(&w, "サインアウト");
    assert_eq!(w.global::<StaffAdapter>().get_screen(), StaffScreen::SignIn);
}

#[test]
fn form_marks_a_character_needing_a_substitute() {
    init();
    let w = StaffWindow::new().unwrap();
    w.global::<StaffAdapter>().set_screen(StaffScreen::Form);
    let submitted = Rc::new(RefCell::new(0));
    let sink = submitted.clone();
    let form = FormBinding::bind(&w, SubstituteTable::shipped(), move |_, _| *sink.borrow_mut() += 1);
    w.show().unwrap();
    let field = |label: &str| field(&w, label);
    field("宛名番号").set_accessible_value("1000000001");
    field("氏名").set_accessible_value("髙橋 一郎");
    field("ふりがな").set_accessible_value("たかはし いちろう");
    field("住所").set_accessible_value("東京都千代田区霞が関2-1-2");
    tap(&w, "昭和");
    field("年").set_accessible_value("55");
    field("月").set_accessible_value("3");
    field("日").set_accessible_value("1");
    tap(&w, "男");
    w.global::<FormAdapter>().invoke_edited();
    assert!(shows(&w, "1文字目「髙」は証明書に使えません。代替文字「高」を提案します。"));
    assert!(shows(&w, "○ 西暦1980年3月1日"));
    assert!(shows(&w, "○ ふりがな 確認済み"));
    // Not yet confirmed by the resident: the form cannot be submitted.
    tap(&w, "入力内容を確定する");
    assert_eq!(*submitted.borrow(), 0);
    tap(&w, "本人に確認した");
    assert!(form.checks().unwrap().complete);
    tap(&w, "入力内容を確定する");
    assert_eq!(*submitted.borrow(), 1);
}

#[test]
fn every_screen_renders_distinct_non_blank_pngs() {
    let dir = tempfile::tempdir().unwrap();
    let mut seen: Vec<(Screen, Vec<u8>)> = Vec::new();
    for screen in Screen::ALL {
        let pixels = render_screen(screen).unwrap();
        assert_eq!((pixels.width(), pixels.height()), (WIDTH, HEIGHT));
        let bytes = pixels.as_bytes().to_vec();
        // Not blank: many distinct colours, and plenty of dark (text) pixels.
        let dark = bytes.chunks(4).filter(|p| u32::from(p[0]) + u32::from(p[1]) + u32::from(p[2]) < 200).count();
        assert!(dark > 2_000, "{screen:?} has only {dark} dark pixels");
        for (other, other_bytes) in &seen {
            assert_ne!(&bytes, other_bytes, "{screen:?} looks the same as {other:?}");
        }
        seen.push((screen, bytes));
        let path = dir.path().join(screen.file_name());
        screen_to_png(screen, &path).unwrap();
        let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&path).unwrap()));
        let reader = decoder.read_info().unwrap();
        assert_eq!(reader.info().width, WIDTH);
    }
    if let Some(out) = std::env::var_os("JPKI_KIOSK_SCREENS") {
        // Keep the PNGs for people to look at.
        for screen in Screen::ALL {
            std::fs::copy(dir.path().join(screen.file_name()), std::path::Path::new(&out).join(screen.file_name())).unwrap();
        }
    }
}

#[test]
fn language_switch_translates_the_resident_screen() {
    let (w, _b, _) = resident_pad(Secret::AuthPin);
    jpki_kiosk::ui::language::bind(&w);
    assert!(shows(&w, "新しく決めて、入れてください"));
    tap(&w, "English");
    assert!(shows(&w, "Choose a new one and enter it"), "{:?}", all_text(&w));
    assert!(shows(&w, "OK"));
    tap(&w, "1");
    assert!(shows(&w, "1 characters entered"));
    tap(&w, "やさしい にほんご");
    assert!(shows(&w, "あたらしく きめて、いれて ください"));
    tap(&w, "日本語");
    assert!(shows(&w, "新しく決めて、入れてください"));
}

/// Every `@tr` text of the views has an English and a やさしい日本語 translation.
#[test]
fn every_text_is_translated() {
    fn slint_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                slint_files(&p, out);
            } else if p.extension().is_some_and(|x| x == "slint") {
                out.push(p);
            }
        }
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    slint_files(&root.join("ui"), &mut files);
    let mut texts = Vec::new();
    for f in files {
        let src = std::fs::read_to_string(f).unwrap();
        for piece in src.split("@tr(\"").skip(1) {
            texts.push(piece.split('"').next().unwrap().to_owned());
        }
    }
    assert!(texts.len() > 50);
    for lang in ["en", "ja-easy"] {
        let po = std::fs::read_to_string(root.join(format!("ui/lang/{lang}/LC_MESSAGES/jpki-kiosk.po"))).unwrap();
        for t in &texts {
            let entry = format!("msgid \"{t}\"\nmsgstr \"");
            let at = po.find(&entry).unwrap_or_else(|| panic!("{lang}: no entry for {t:?}"));
            assert!(!po[at + entry.len()..].starts_with('"'), "{lang}: empty translation of {t:?}");
        }
    }
}
