//! `jpki-kiosk visit-run` as a child process: the scripted new issuance of 髙橋　一郎
//! (髙 → 高, a driving licence) that the crash, resume and payment tests run, kill and
//! resume. The PINs go in on stdin; the kiosk's stderr is appended to `data/kiosk.log`.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};

use jpki_kiosk::issuance::adapters::script::Script;
use jpki_kiosk::issuance::model::{
    Form, IdDocument, PresenterKind, SubstituteChoice, SubstitutedField,
};
use jpki_kiosk::registry::sample::{ids, TOWN};
use jpki_kiosk::rules::identity::DocumentGroup;

/// The application form of 髙橋　一郎 with 髙 → 高.
pub fn takahashi_form() -> Form {
    Form {
        resident_id: ids::TAKAHASHI.into(),
        name: "髙橋　一郎".into(),
        furigana: "タカハシ　イチロウ".into(),
        birth_date: time::macros::date!(1975 - 04 - 12),
        sex: 1,
        address: format!("{TOWN}本郷一丁目２番３号"),
        want_sign: true,
        want_auth: true,
        substitutes: vec![SubstituteChoice {
            field: SubstitutedField::Name,
            index: 0,
            replacement: '高',
        }],
        case: None,
    }
}

/// The holder's driving licence.
pub fn licence() -> Vec<IdDocument> {
    vec![IdDocument {
        kind: "driving_licence".into(),
        group: DocumentGroup::Photo,
        number: "301234567890".into(),
    }]
}

/// Where the child finds its peers.
pub struct Peers<'a> {
    /// The CA's directory (`jpki-ca serve --dir`).
    pub ca_dir: &'a Path,
    /// The CA's CMP URL.
    pub ca_url: String,
    /// The PC/SC reader.
    pub reader: String,
    /// The private pcscd's environment.
    pub env: Vec<(String, String)>,
}

/// Runs one `visit-run` for visit `visit` in `data` (aborting after `crash_after` journal
/// records); returns its exit status and its trimmed stdout (the outcome as JSON).
pub fn visit_run(
    peers: &Peers<'_>,
    data: &Path,
    visit: &str,
    crash_after: Option<u64>,
    pins: (&str, &str),
) -> (ExitStatus, String) {
    fs::create_dir_all(data).unwrap();
    let script = data.join("script.json");
    let s = Script {
        form: takahashi_form(),
        presenter: PresenterKind::Holder,
        documents: licence(),
    };
    fs::write(&script, serde_json::to_vec(&s).unwrap()).unwrap();
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(data.join("kiosk.log"))
        .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_jpki-kiosk"));
    cmd.arg("visit-run")
        .arg("--data")
        .arg(data)
        .arg("--ca-dir")
        .arg(peers.ca_dir)
        .args(["--ca-url", &peers.ca_url])
        .args(["--reader", &peers.reader])
        .args(["--visit", visit])
        .arg("--script")
        .arg(&script)
        .env("RUST_LOG", "debug")
        .envs(peers.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(log);
    if let Some(n) = crash_after {
        cmd.args(["--crash-after-record", &n.to_string()]);
    }
    let mut child = cmd.spawn().expect("jpki-kiosk starts");
    writeln!(child.stdin.take().unwrap(), "{}\n{}", pins.0, pins.1).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
    )
}
