//! The appliance: `jpki-kiosk provision`, `config check` and `doctor` run as the real
//! binary against real peers (a private pcscd with vpcd and a virtual card, `jpki-ca serve`
//! on loopback HTTPS, SQLite files), and the udev rules in `udev/` (parsed by udevadm
//! itself, matched against synthetic devices). Needs root (namespaces), pcscd, vpcd and
//! udev (`.ci/setup.sh`).

mod card_common;
#[path = "common/ca_server.rs"]
mod ca_server;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output, Stdio};

use ca_server::CaServer;
use card_common::Rig;

const KIOSK: &str = env!("CARGO_BIN_EXE_jpki-kiosk");

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// A data directory provisioned for the CA `ca`, with its certificates and SQLite files.
fn provision(data: &Path, ca: &CaServer) {
    std::fs::create_dir_all(data.join("ca")).unwrap();
    for f in ["tls-ca.pem", "ra.pem", "ra.key", "auth-ca.pem", "sign-ca.pem"] {
        std::fs::copy(ca.file(f), data.join("ca").join(f)).unwrap();
    }
    let url = format!("https://{}/pkix/", ca.https);
    let out = Command::new(KIOSK)
        .args(["provision", "--data"])
        .arg(data)
        .args(["--municipality-code", "131016", "--municipality-name", "千代田区"])
        .args(["--counter-id", "counter-01", "--ca-url", &url, "--printer", "escpos:/dev/null"])
        .output()
        .unwrap();
    assert!(out.status.success(), "provision: {}", text(&out));
    for name in ["kiosk.db", "audit.db"] {
        let conn = rusqlite::Connection::open(data.join(name)).unwrap();
        conn.execute_batch(
            "CREATE TABLE entries(id INTEGER PRIMARY KEY, body TEXT);
             CREATE INDEX entries_body ON entries(body);",
        )
        .unwrap();
        for i in 0..400 {
            conn.execute("INSERT INTO entries(body) VALUES (?1)", [format!("entry {i} {}", "x".repeat(64))]).unwrap();
        }
    }
}

/// `jpki-kiosk doctor --json` against `rig`'s pcscd; returns the exit code and the report.
fn doctor(rig: &Rig, data: &Path, extra: &[&str]) -> (i32, serde_json::Value) {
    let mut cmd = Command::new(KIOSK);
    cmd.args(["doctor", "--json", "--data"]).arg(data).args(extra);
    for (k, v) in rig.stack.env() {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("doctor JSON: {e}\n{}", text(&out)));
    // The sign-in screen's copy is the same report.
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.join("doctor-last.json")).unwrap()).unwrap();
    assert_eq!(saved, report);
    (out.status.code().unwrap_or(-1), report)
}

fn status<'a>(report: &'a serde_json::Value, id: &str) -> (&'a str, &'a str) {
    let c = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no check {id} in {report:#}"));
    (c["status"].as_str().unwrap(), c["detail"].as_str().unwrap())
}

#[test]
fn doctor_reports_ok_against_real_peers_then_each_failure() {
    let mut rig = Rig::new();
    let mut card = rig.card(0, "card.vcard", &[]);
    let ca = CaServer::start(&[]);
    let data = rig.path("data");
    provision(&data, &ca);

    let (code, report) = doctor(&rig, &data, &["--require-card"]);
    for id in ["config", "pcscd", "readers", "card", "printer", "ca", "clock", "disk", "db:kiosk.db", "db:audit.db"] {
        assert_eq!(status(&report, id).0, "ok", "{id}: {report:#}");
    }
    // This machine may have no USB bus and no systemd: those are WARN, never FAIL.
    assert_ne!(status(&report, "usb-ccid").0, "fail");
    assert_ne!(status(&report, "time-sync").0, "fail");
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["site"]["municipality_code"], "131016");
    assert!(status(&report, "readers").1.contains("Virtual PCD 00 00"));
    assert!(status(&report, "ca").1.contains("certificate"), "{report:#}");

    // The card leaves the reader: WARN normally, FAIL when a test card is required.
    card.kill().unwrap();
    let (code, report) = doctor(&rig, &data, &[]);
    assert_eq!(status(&report, "card").0, "warn", "{report:#}");
    assert_eq!((code, report["overall"].as_str()), (0, Some("warn")));
    let (code, report) = doctor(&rig, &data, &["--require-card"]);
    assert_eq!(status(&report, "card").0, "fail", "{report:#}");
    assert_eq!(code, 1);

    // The CA stops.
    let https = ca.https;
    drop(ca);
    let (code, report) = doctor(&rig, &data, &[]);
    let (s, detail) = status(&report, "ca");
    assert_eq!(s, "fail", "{report:#}");
    assert!(detail.contains(&https.to_string()), "{detail}");
    assert_eq!(code, 1);

    // A database is damaged: garbage over its second page onward.
    let db = data.join("audit.db");
    let mut bytes = std::fs::read(&db).unwrap();
    for b in bytes[4096..].iter_mut() {
        *b = 0xA5;
    }
    std::fs::write(&db, bytes).unwrap();
    let (_, report) = doctor(&rig, &data, &[]);
    assert_eq!(status(&report, "db:audit.db").0, "fail", "{report:#}");
    assert_eq!(status(&report, "db:kiosk.db").0, "ok");

    // pcscd is gone.
    let Rig { stack, dir } = rig;
    let env = stack.env();
    drop(stack);
    let mut cmd = Command::new(KIOSK);
    cmd.args(["doctor", "--data"]).arg(&data);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("[FAIL] pcscd"), "{t}");
    assert!(t.contains("結果: 異常"), "{t}");
    drop(dir);
}

#[test]
fn config_check_names_the_field_and_provision_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let provision = |extra: &[&str]| {
        Command::new(KIOSK)
            .args(["provision", "--data"])
            .arg(data)
            .args(["--municipality-name", "千代田区", "--counter-id", "c1"])
            .args(["--ca-url", "https://ca.example.lg.jp/pkix/"])
            .args(extra)
            .output()
            .unwrap()
    };
    let bad = provision(&["--municipality-code", "131017"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(text(&bad).contains("municipality.code"), "{}", text(&bad));
    assert!(!data.join("site.toml").exists());

    let ok = provision(&["--municipality-code", "131016", "--printer", "cups:receipt"]);
    assert!(ok.status.success(), "{}", text(&ok));
    let again = provision(&["--municipality-code", "131016"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(text(&again).contains("--force"));

    let check = |d: &Path| Command::new(KIOSK).args(["config", "check", "--data"]).arg(d).output().unwrap();
    // The CA files are not there yet: the first missing one is named.
    let out = check(data);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("ca.tls_roots"), "{}", text(&out));
    std::fs::create_dir(data.join("ca")).unwrap();
    for f in ["tls-ca.pem", "ra.pem", "ra.key", "auth-ca.pem", "sign-ca.pem"] {
        std::fs::write(data.join("ca").join(f), "placeholder").unwrap();
    }
    let out = check(data);
    assert!(out.status.success(), "{}", text(&out));
    // A hand edit that breaks a value.
    let path = data.join("site.toml");
    let edited = std::fs::read_to_string(&path).unwrap().replace("idle_timeout_secs = 120", "idle_timeout_secs = 5");
    std::fs::write(&path, edited).unwrap();
    let out = check(data);
    assert_eq!(out.status.code(), Some(1));
    let t = text(&out);
    assert!(t.starts_with("設定項目 counter.idle_timeout_secs"), "{t}");
    assert!(t.contains("30-1800"), "{t}");
}

// ---- udev -------------------------------------------------------------------------------

fn udev_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("udev")
}

/// Our rules files as installed on a site: the shipped one and a rendered resident file.
fn rules_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(udev_dir().join("70-jpki-kiosk.rules"), dir.path().join("70-jpki-kiosk.rules")).unwrap();
    let out = Command::new(udev_dir().join("render-resident-rules.sh"))
        .args(["pci-0000:00:14.0-usb-0:3", "HDMI-A-2"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    std::fs::write(dir.path().join("71-jpki-kiosk-resident.rules"), &out.stdout).unwrap();
    dir
}

/// `udevadm test` in a private mount namespace with `rules` over /etc/udev/rules.d and an
/// /etc/group that has the kiosk's group; returns udevadm's output.
fn udevadm_test(rules: &Path) -> String {
    let groups = tempfile::NamedTempFile::new().unwrap();
    let mut g = std::fs::read_to_string("/etc/group").unwrap();
    g.push_str("jpki-kiosk:x:990:\n");
    std::fs::write(groups.path(), g).unwrap();
    let script = format!(
        "mount --bind {} /etc/udev/rules.d && mount --bind {} /etc/group && \
         udevadm test --action=add /sys/devices/virtual/mem/null",
        rules.display(),
        groups.path().display()
    );
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .output()
        .expect("unshare and udevadm (package udev) run");
    assert!(out.status.success(), "udevadm test: {}", text(&out));
    text(&out)
}

/// udevadm's own diagnostics about our files ("FILE:LINE message").
fn diagnostics(out: &str) -> Vec<&str> {
    out.lines().filter(|l| l.starts_with("/etc/udev/rules.d/7") && l.contains(".rules:")).collect()
}

#[test]
fn udev_rules_parse_cleanly_in_udevadm() {
    let dir = rules_dir();
    let out = udevadm_test(dir.path());
    for f in ["70-jpki-kiosk.rules", "71-jpki-kiosk-resident.rules"] {
        assert!(out.contains(&format!("Reading rules file: /etc/udev/rules.d/{f}")), "{out}");
    }
    assert!(diagnostics(&out).is_empty(), "{:#?}", diagnostics(&out));
    // The check can fail: a misspelt key and an unknown group are reported with their line.
    let broken = dir.path().join("70-jpki-kiosk.rules");
    let mut text = std::fs::read_to_string(&broken).unwrap();
    text.push_str("SUBSYTEM==\"usb\", GROUP=\"jpki-kiosk\"\nSUBSYSTEM==\"usb\", GROUP=\"no-such-group\"\n");
    std::fs::write(&broken, text).unwrap();
    let out = udevadm_test(dir.path());
    let d = diagnostics(&out);
    assert_eq!(d.len(), 2, "{d:#?}");
    assert!(d[0].contains("SUBSYTEM"), "{d:#?}");
    assert!(d[1].contains("no-such-group"), "{d:#?}");
}

/// A device as udev sees it: its own keys and attributes, and its parents' attributes.
#[derive(Default, Clone)]
struct Device {
    keys: BTreeMap<&'static str, String>,
    attrs: BTreeMap<&'static str, String>,
    env: BTreeMap<String, String>,
}

impl Device {
    fn new(subsystem: &str, kernel: &str) -> Device {
        let mut d = Device::default();
        d.keys.insert("ACTION", "add".into());
        d.keys.insert("SUBSYSTEM", subsystem.into());
        d.keys.insert("KERNEL", kernel.into());
        d
    }
    fn usb(vendor: &str, product: &str, interfaces: &str) -> Device {
        let mut d = Device::new("usb", "1-3");
        d.env.insert("DEVTYPE".into(), "usb_device".into());
        d.env.insert("ID_USB_INTERFACES".into(), interfaces.into());
        d.attrs.insert("idVendor", vendor.into());
        d.attrs.insert("idProduct", product.into());
        d
    }
    fn env(mut self, k: &str, v: &str) -> Device {
        self.env.insert(k.into(), v.into());
        self
    }
}

/// What matching rules assigned.
#[derive(Debug, Default, PartialEq)]
struct Assigned {
    group: Option<String>,
    mode: Option<String>,
    tags: Vec<String>,
    env: BTreeMap<String, String>,
}

/// udev's glob: `*`, `?`, `[...]`, and `|` between alternatives.
fn glob(pattern: &str, value: &str) -> bool {
    fn one(p: &[char], v: &[char]) -> bool {
        match p.first() {
            None => v.is_empty(),
            Some('*') => (0..=v.len()).any(|i| one(&p[1..], &v[i..])),
            Some('?') => !v.is_empty() && one(&p[1..], &v[1..]),
            Some('[') => {
                let end = p.iter().position(|&c| c == ']').expect("closed class");
                let class = &p[1..end];
                let Some(&c) = v.first() else { return false };
                let mut hit = false;
                let mut i = 0;
                while i < class.len() {
                    if i + 2 < class.len() && class[i + 1] == '-' {
                        hit |= class[i] <= c && c <= class[i + 2];
                        i += 3;
                    } else {
                        hit |= class[i] == c;
                        i += 1;
                    }
                }
                hit && one(&p[end + 1..], &v[1..])
            }
            Some(&c) => v.first() == Some(&c) && one(&p[1..], &v[1..]),
        }
    }
    let v: Vec<char> = value.chars().collect();
    pattern.split('|').any(|alt| one(&alt.chars().collect::<Vec<_>>(), &v))
}

/// Evaluates the match keys of every rule line against `dev` (the parse is udevadm's job,
/// above); returns what the matching lines assign.
fn evaluate(rules: &str, dev: &Device) -> Assigned {
    let mut out = Assigned::default();
    for line in rules.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let mut matched = true;
        let mut assigns = Vec::new();
        for pair in line.split(", ") {
            let (key, op, value) = ["==", "!=", "+=", "="]
                .iter()
                .find_map(|op| pair.split_once(op).map(|(k, v)| (k, *op, v.trim_matches('"'))))
                .unwrap_or_else(|| panic!("cannot read {pair:?}"));
            let actual: Option<String> = if let Some(name) = key.strip_prefix("ENV{").and_then(|k| k.strip_suffix('}')) {
                dev.env.get(name).cloned()
            } else if let Some(name) = key.strip_prefix("ATTR{").or(key.strip_prefix("ATTRS{")).and_then(|k| k.strip_suffix('}')) {
                dev.attrs.get(name).cloned()
            } else {
                dev.keys.get(key).cloned()
            };
            match op {
                "==" => matched &= actual.is_some_and(|a| glob(value, &a)),
                "!=" => matched &= !actual.is_some_and(|a| glob(value, &a)),
                _ => assigns.push((key.to_string(), value.to_string())),
            }
        }
        if matched {
            for (k, v) in assigns {
                match k.as_str() {
                    "GROUP" => out.group = Some(v),
                    "MODE" => out.mode = Some(v),
                    "TAG" => out.tags.push(v),
                    k => {
                        let name = k.strip_prefix("ENV{").and_then(|k| k.strip_suffix('}')).expect("ENV assignment");
                        out.env.insert(name.into(), v);
                    }
                }
            }
        }
    }
    out
}

#[test]
fn udev_rules_match_the_intended_devices() {
    let dir = rules_dir();
    let mut rules = String::new();
    for f in ["70-jpki-kiosk.rules", "71-jpki-kiosk-resident.rules"] {
        rules.push_str(&std::fs::read_to_string(dir.path().join(f)).unwrap());
    }
    let eval = |d: &Device| evaluate(&rules, d);
    let access = |a: &Assigned| (a.group.clone(), a.mode.clone());
    let kiosk = (Some("jpki-kiosk".to_string()), Some("0660".to_string()));
    let lp = (Some("lp".to_string()), Some("0660".to_string()));

    // A CCID reader nobody listed: by interface class 0x0B.
    let generic = eval(&Device::usb("1234", "abcd", ":0b0000:"));
    assert_eq!(access(&generic), kiosk);
    assert_eq!(generic.tags, ["jpki-reader"]);
    assert_eq!(generic.env.get("JPKI_READER"), None);
    // Known readers, also when they show a vendor class interface.
    for (v, p) in [("04e6", "5116"), ("04e6", "511a"), ("04e6", "511f"), ("04e6", "5810"), ("072f", "b100"), ("054c", "0dc8"), ("054c", "0dc9")] {
        let a = eval(&Device::usb(v, p, ":ff0000:"));
        assert_eq!(access(&a), kiosk, "{v}:{p}");
        assert_eq!(a.env.get("JPKI_READER").map(String::as_str), Some("known"), "{v}:{p}");
    }
    // Not readers: the non-CCID RC-S380, a keyboard, a mass-storage stick.
    for (v, p, i) in [("054c", "06c3", ":ff0000:"), ("046d", "c31c", ":030101:030000:"), ("0781", "5567", ":080650:")] {
        assert_eq!(eval(&Device::usb(v, p, i)), Assigned::default(), "{v}:{p}");
    }
    // A removal assigns nothing.
    let mut removed = Device::usb("1234", "abcd", ":0b0000:");
    removed.keys.insert("ACTION", "remove".into());
    assert_eq!(eval(&removed), Assigned::default());

    // Printers: class 0x07, the listed ESC/POS models, and the usblp node.
    let printer = eval(&Device::usb("04f9", "0042", ":070102:"));
    assert_eq!((access(&printer), printer.tags.clone()), (lp.clone(), vec!["jpki-printer".to_string()]));
    for (v, p) in [("04b8", "0202"), ("04b8", "0e03"), ("04b8", "0e31"), ("0519", "0003")] {
        let a = eval(&Device::usb(v, p, ":ff0000:"));
        assert_eq!(access(&a), lp, "{v}:{p}");
        assert_eq!(a.env.get("JPKI_PRINTER").map(String::as_str), Some("escpos"));
    }
    assert_eq!(access(&eval(&Device::new("usbmisc", "lp0"))), lp);
    assert_eq!(eval(&Device::new("usbmisc", "hiddev0")), Assigned::default());

    // Touch screens: the staff one gets access only; the one on the resident port is tagged.
    let touch = |path: &str| {
        Device::new("input", "event5").env("ID_INPUT_TOUCHSCREEN", "1").env("ID_PATH", path)
    };
    let staff = eval(&touch("pci-0000:00:14.0-usb-0:4:1.0"));
    assert_eq!((access(&staff), staff.tags.clone()), (kiosk.clone(), vec!["jpki-touch".to_string()]));
    for path in ["pci-0000:00:14.0-usb-0:3:1.0", "pci-0000:00:14.0-usb-0:3.2:1.0"] {
        let resident = eval(&touch(path));
        assert_eq!(resident.tags, ["jpki-touch", "jpki-resident"], "{path}");
        assert_eq!(resident.env.get("JPKI_ROLE").map(String::as_str), Some("resident"));
    }
    // Port 3 is not port 30.
    assert_eq!(eval(&touch("pci-0000:00:14.0-usb-0:30:1.0")).tags, ["jpki-touch"]);
    // A mouse is not a touch screen.
    assert_eq!(eval(&Device::new("input", "event3").env("ID_INPUT_MOUSE", "1")), Assigned::default());
    // Displays: only the resident connector is tagged.
    assert_eq!(eval(&Device::new("drm", "card0-HDMI-A-2")).tags, ["jpki-resident"]);
    assert_eq!(eval(&Device::new("drm", "card0-HDMI-A-1")), Assigned::default());
}

#[test]
fn glob_follows_udev() {
    assert!(glob("lp[0-9]*", "lp12"));
    assert!(!glob("lp[0-9]*", "lpx"));
    assert!(glob("5116|511a", "511a"));
    assert!(glob("*:0b????:*", ":ff0000:0b0000:"));
    assert!(!glob("*:0b????:*", ":0b00:"));
}

// ---- the kiosk unit's sandbox -------------------------------------------------------------

fn unit_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("kiosk-image/rootfs/etc/systemd/system/jpki-kiosk.service")
}

/// `Key=value` lines of the unit's [Service] section (later lines win, as in systemd).
fn service_keys() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(unit_path()).unwrap();
    let mut section = "";
    let mut keys = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line;
        } else if section == "[Service]" && !line.starts_with('#') {
            if let Some((k, v)) = line.split_once('=') {
                keys.insert(k.to_string(), v.to_string());
            }
        }
    }
    keys
}

#[test]
fn systemd_reads_the_kiosk_units_sandbox() {
    let keys = service_keys();
    for (k, v) in [
        ("ProtectSystem", "strict"),
        ("ReadWritePaths", "/var/lib/jpki-kiosk"),
        ("NoNewPrivileges", "yes"),
        ("PrivateTmp", "yes"),
        ("User", "jpki-kiosk"),
        ("Restart", "on-failure"),
        ("CapabilityBoundingSet", ""),
    ] {
        assert_eq!(keys.get(k).map(String::as_str), Some(v), "{k}");
    }
    // systemd's own reading of the file: every one of these settings is in effect.
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--json=short"])
        .arg(unit_path())
        .output()
        .expect("systemd-analyze runs");
    let items: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("systemd-analyze JSON: {e}: {}", text(&out)));
    let set = |name: &str| {
        items.as_array().unwrap().iter().find(|i| i["name"] == name).unwrap_or_else(|| panic!("{name}"))["set"]
            == true
    };
    for name in ["ProtectSystem=", "NoNewPrivileges=", "PrivateTmp=", "User=/DynamicUser=", "ProtectHome="] {
        assert!(set(name), "{name} not in effect: {items:#}");
    }
    // The overall score recorded in docs/performance.md: at most 2.0 ("OK").
    let score = Command::new("systemd-analyze").args(["security", "--offline=true"]).arg(unit_path()).output().unwrap();
    let t = text(&score);
    let level: f64 = t
        .lines()
        .find_map(|l| l.split("exposure level for jpki-kiosk.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no score in {t}"));
    assert!(level <= 2.0, "exposure {level}");
}

/// The unit's mounts rebuilt from its own directives with bubblewrap (ProtectSystem=strict:
/// everything read-only; ReadWritePaths: writable; ReadOnlyPaths; PrivateTmp: private
/// tmpfs; ProtectHome), then a writer running as root inside tries every place.
#[test]
fn the_kiosk_unit_cannot_write_outside_its_data_dir() {
    let keys = service_keys();
    assert_eq!(keys["ProtectSystem"], "strict");
    let data_path = keys["ReadWritePaths"].clone();
    let read_only = keys["ReadOnlyPaths"].clone();
    assert!(read_only.starts_with(&data_path));
    let data = tempfile::tempdir().unwrap();
    std::fs::create_dir(data.path().join("system")).unwrap();
    let parent = Path::new(&data_path).parent().unwrap().display().to_string();
    let mut args: Vec<String> = vec!["--ro-bind".into(), "/".into(), "/".into()];
    // A tmpfs on the parent only to create the mount point (the root is read-only).
    args.extend(["--tmpfs".into(), parent.clone()]);
    args.extend(["--bind".into(), data.path().display().to_string(), data_path.clone()]);
    args.extend(["--ro-bind".into(), data.path().join("system").display().to_string(), read_only.clone()]);
    if keys["PrivateTmp"] == "yes" {
        args.extend(["--tmpfs".into(), "/tmp".into(), "--tmpfs".into(), "/var/tmp".into()]);
    }
    if keys["ProtectHome"] == "yes" {
        args.extend(["--tmpfs".into(), "/root".into(), "--remount-ro".into(), "/root".into()]);
    }
    args.extend(["--dev".into(), "/dev".into(), "--proc".into(), "/proc".into(), "--unshare-pid".into()]);
    let targets = [
        format!("{data_path}/kiosk.db"),
        format!("{read_only}/slots-take-over"),
        "/tmp/scratch".into(),
        "/etc/jpki-written".into(),
        "/usr/lib/jpki-written".into(),
        "/var/log/jpki-written".into(),
        "/var/cache/jpki-written".into(),
        "/root/jpki-written".into(),
        "/opt/jpki-written".into(),
    ];
    let script: String = targets
        .iter()
        .map(|t| format!("if echo x > {t} 2>/dev/null; then echo 'WROTE {t}'; else echo 'DENIED {t}'; fi\n"))
        .collect();
    let out = Command::new("bwrap").args(&args).args(["sh", "-c", &script]).output().expect("bwrap (package bubblewrap) runs");
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    let wrote: Vec<&str> = t.lines().filter_map(|l| l.strip_prefix("WROTE ")).collect();
    assert_eq!(wrote, [format!("{data_path}/kiosk.db").as_str(), "/tmp/scratch"], "{t}");
    // The write landed in the data directory, and the private /tmp left the host's alone.
    assert_eq!(std::fs::read_to_string(data.path().join("kiosk.db")).unwrap(), "x\n");
    assert!(!Path::new("/tmp/scratch").exists());
    assert!(!Path::new("/etc/jpki-written").exists());
}

// ---- signed updates into A/B slots ------------------------------------------------------------

#[test]
fn updates_install_only_when_signed_and_switch_slots() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let image = Path::new(env!("CARGO_MANIFEST_DIR")).join("kiosk-image");
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl").args(args).current_dir(d).output().unwrap();
        assert!(out.status.success(), "openssl {args:?}: {}", text(&out));
    };
    openssl(&["genpkey", "-algorithm", "ed25519", "-out", "vendor.pem"]);
    openssl(&["pkey", "-in", "vendor.pem", "-pubout", "-out", "vendor.pub.pem"]);
    openssl(&["genpkey", "-algorithm", "ed25519", "-out", "intruder.pem"]);
    // A small stand-in for the release binary: the script only runs its `--version`.
    let payload_bin = d.join("jpki-kiosk");
    std::fs::write(&payload_bin, "#!/bin/sh\necho jpki-kiosk test\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&payload_bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let bundle = |key: &str, version: &str| -> PathBuf {
        let out_path = d.join(format!("{version}-{key}.tar"));
        let out = Command::new(image.join("make-update.sh"))
            .args([d.join(key).as_path(), payload_bin.as_path(), Path::new(version), out_path.as_path()])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        out_path
    };
    // systemctl is recorded, not run: systemd is not PID 1 here.
    let calls = d.join("systemctl.calls");
    let recorder = d.join("systemctl");
    std::fs::write(&recorder, format!("#!/bin/sh\necho \"$*\" >> {}\n", calls.display())).unwrap();
    std::fs::set_permissions(&recorder, std::fs::Permissions::from_mode(0o755)).unwrap();
    let slots = d.join("slots");
    let update = |args: &[&Path]| {
        Command::new(image.join("rootfs/usr/sbin/jpki-kiosk-update"))
            .args(args)
            .env("JPKI_UPDATE_KEY", d.join("vendor.pub.pem"))
            .env("JPKI_UPDATE_SLOTS", &slots)
            .env("JPKI_UPDATE_SYSTEMCTL", &recorder)
            .output()
            .unwrap()
    };
    let link = |name: &str| std::fs::read_link(slots.join(name)).ok().map(|p| p.display().to_string());

    let first = update(&[&bundle("vendor.pem", "0.2.0")]);
    assert!(first.status.success(), "{}", text(&first));
    assert_eq!((link("current"), link("previous")), (Some("a".into()), Some("factory".into())));
    assert_eq!(std::fs::read_to_string(slots.join("a/VERSION")).unwrap(), "0.2.0\n");
    assert!(slots.join("trial").exists());
    assert_eq!(
        std::fs::read_to_string(&calls).unwrap(),
        "restart jpki-kiosk-doctor.service\ntry-restart jpki-kiosk.service\n"
    );

    let second = update(&[&bundle("vendor.pem", "0.3.0")]);
    assert!(second.status.success(), "{}", text(&second));
    assert_eq!((link("current"), link("previous")), (Some("b".into()), Some("a".into())));

    // Signed by someone else, or changed after signing: refused, nothing switched.
    let foreign = update(&[&bundle("intruder.pem", "6.6.6")]);
    assert_eq!(foreign.status.code(), Some(1));
    assert!(text(&foreign).contains("JPKI-UPDATE-REFUSED"), "{}", text(&foreign));
    let good = bundle("vendor.pem", "0.4.0");
    let work = d.join("tamper");
    std::fs::create_dir(&work).unwrap();
    assert!(Command::new("tar").arg("-xf").arg(&good).arg("-C").arg(&work).status().unwrap().success());
    let mut payload = std::fs::read(work.join("payload.tar")).unwrap();
    let at = payload.len() / 2;
    payload[at] ^= 1;
    std::fs::write(work.join("payload.tar"), payload).unwrap();
    let tampered = d.join("tampered.tar");
    assert!(Command::new("tar")
        .arg("-cf")
        .arg(&tampered)
        .arg("-C")
        .arg(&work)
        .args(["payload.tar", "payload.tar.sig"])
        .status()
        .unwrap()
        .success());
    let out = update(&[&tampered]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!((link("current"), link("previous")), (Some("b".into()), Some("a".into())));
    assert_eq!(std::fs::read_to_string(slots.join("a/VERSION")).unwrap(), "0.2.0\n");

    // Back by hand.
    let back = update(&[Path::new("--rollback")]);
    assert!(back.status.success(), "{}", text(&back));
    assert_eq!((link("current"), link("previous")), (Some("a".into()), Some("b".into())));
    assert!(!slots.join("trial").exists());
}

/// `jpki-kiosk ui` as the image runs it: checked first (`--check` names what is missing),
/// then on a Wayland compositor with the real card stack and CA, as an unprivileged user.
/// This machine has no DRM device, which cage needs even headless, so the compositor is
/// weston on its headless backend with software rendering (its kiosk shell draws nothing
/// there; the desktop shell does); its screenshooter photographs the output, which must
/// show the staff sign-in screen drawn by the kiosk.
#[test]
fn the_kiosk_opens_its_windows_on_a_wayland_compositor() {
    let mut rig = Rig::new();
    let _card = rig.card(0, "card.vcard", &[]);
    let ca = CaServer::start(&[]);
    let data = rig.path("data");
    provision(&data, &ca);
    let kiosk = |args: &[&str]| {
        let mut cmd = Command::new(KIOSK);
        cmd.args(args).arg("--data").arg(&data);
        for (k, v) in rig.stack.env() {
            cmd.env(k, v);
        }
        cmd
    };

    // Without the card administration key the kiosk says which file and what to do.
    let out = kiosk(&["ui", "--check"]).output().unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("card-admin.key") && t.contains("カード発行鍵"), "{t}");
    // The virtual card is personalised under the demo master key.
    let hex: String = jpki_kiosk::card::admin_key::DEMO_MASTER_KEY.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(data.join("card-admin.key"), format!("{hex}\n")).unwrap();
    let out = kiosk(&["ui", "--check"]).output().unwrap();
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("ready: reader Virtual PCD 00 00"), "{t}");
    // Without a display it says so instead of hanging.
    let out = kiosk(&["ui"]).env_remove("WAYLAND_DISPLAY").env_remove("DISPLAY").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("画面がありません"), "{}", text(&out));

    // The vendor enrols the first supervisor; the passphrase goes through stdin.
    let mut enrol = kiosk(&["staff", "enrol", "--id", "sup-01", "--name", "窓口 一郎", "--role", "supervisor"]);
    enrol.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = enrol.spawn().unwrap();
    child.stdin.take().unwrap().write_all(b"counter-passphrase-2026\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("enrolled sup-01 (supervisor)"), "{}", text(&out));

    // The compositor runs as nobody. The kiosk stays root here: the private pcscd's socket
    // is reached through /proc/PID/root, which only root may follow (in the image the
    // kiosk user reaches the system pcscd; the unit's sandbox is tested above).
    let runtime = rig.path("xdg");
    std::fs::create_dir_all(&runtime).unwrap();
    std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).unwrap();
    chown_tree(&runtime);
    for dir in [rig.dir.path(), rig.stack.dir()] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let as_nobody = |program: &str| {
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid", "65534", "--regid", "65534", "--clear-groups", "--", program])
            .current_dir(&runtime)
            .env("XDG_RUNTIME_DIR", &runtime)
            .env("HOME", &runtime)
            .env_remove("DISPLAY");
        cmd
    };
    let weston_log = std::fs::File::create(rig.path("weston.log")).unwrap();
    let weston = as_nobody("weston")
        .args(["--backend=headless-backend.so", "--use-pixman", "--shell=desktop-shell.so"])
        .args(["--socket=wayland-0", "--width=1920", "--height=1080", "--debug", "--idle-time=0"])
        .env_remove("WAYLAND_DISPLAY")
        .stdout(weston_log.try_clone().unwrap())
        .stderr(weston_log)
        .spawn()
        .expect("weston starts");
    let mut weston = Reaped(weston);
    let socket = runtime.join("wayland-0");
    let started = std::time::Instant::now();
    while !socket.exists() && started.elapsed() < std::time::Duration::from_secs(20) {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(socket.exists(), "weston: {}", std::fs::read_to_string(rig.path("weston.log")).unwrap_or_default());

    let kiosk_log = std::fs::File::create(rig.path("kiosk.log")).unwrap();
    let mut ui = Command::new(KIOSK);
    ui.args(["ui", "--data"])
        .arg(&data)
        .env("XDG_RUNTIME_DIR", &runtime)
        .env("WAYLAND_DISPLAY", "wayland-0")
        .env_remove("DISPLAY");
    for (k, v) in rig.stack.env() {
        ui.env(k, v);
    }
    let mut ui = Reaped(ui.stdout(kiosk_log.try_clone().unwrap()).stderr(kiosk_log).spawn().expect("the kiosk starts"));

    let mut best = 0usize;
    let mut shot = None;
    while started.elapsed() < std::time::Duration::from_secs(60) && best <= 5_000 {
        std::thread::sleep(std::time::Duration::from_millis(500));
        if let Ok(Some(status)) = ui.0.try_wait() {
            panic!("the kiosk ended ({status}): {}", std::fs::read_to_string(rig.path("kiosk.log")).unwrap_or_default());
        }
        for old in std::fs::read_dir(&runtime).unwrap().flatten() {
            if old.file_name().to_string_lossy().ends_with(".png") {
                let _ = std::fs::remove_file(old.path());
            }
        }
        let out = as_nobody("weston-screenshooter").env("WAYLAND_DISPLAY", "wayland-0").output().unwrap();
        if !out.status.success() {
            continue;
        }
        let png = std::fs::read_dir(&runtime).unwrap().flatten().map(|e| e.path()).find(|p| p.extension().is_some_and(|x| x == "png"));
        if let Some(png) = png {
            best = inked_pixels(&png);
            shot = Some(png);
        }
    }
    let logs = format!(
        "kiosk: {}\nweston: {}",
        std::fs::read_to_string(rig.path("kiosk.log")).unwrap_or_default(),
        std::fs::read_to_string(rig.path("weston.log")).unwrap_or_default()
    );
    assert!(best > 5_000, "the output stayed blank ({best} dark pixels)\n{logs}");
    // Kept for people to look at.
    if let Some(shot) = shot {
        let _ = std::fs::copy(shot, Path::new(env!("CARGO_TARGET_TMPDIR")).join("appliance-ui.png"));
    }
    let _ = ui.0.kill();
    let _ = weston.0.kill();
    eprintln!("{logs}");
}

/// A child process killed and reaped when dropped (a failed assertion leaves no
/// compositor behind).
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Gives `path` and everything under it to nobody (uid and gid 65534).
fn chown_tree(path: &Path) {
    std::os::unix::fs::chown(path, Some(65534), Some(65534)).unwrap();
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap().flatten() {
            chown_tree(&entry.path());
        }
    }
}

/// Pixels of text and outlines in a PNG of the kiosk's light theme: dark pixels, counted
/// only when most of the picture is light (a black, undrawn output counts 0).
fn inked_pixels(path: &Path) -> usize {
    let Ok(file) = std::fs::File::open(path) else { return 0 };
    let decoder = png::Decoder::new(std::io::BufReader::new(file));
    let Ok(mut reader) = decoder.read_info() else { return 0 };
    let mut buf = vec![0; reader.output_buffer_size().unwrap_or(0)];
    let Ok(info) = reader.next_frame(&mut buf) else { return 0 };
    let channels = info.color_type.samples();
    let sums: Vec<u32> = buf[..info.buffer_size()]
        .chunks(channels)
        .filter(|p| p.len() >= 3)
        .map(|p| u32::from(p[0]) + u32::from(p[1]) + u32::from(p[2]))
        .collect();
    let light = sums.iter().filter(|&&s| s > 600).count();
    if light < sums.len() / 2 {
        return 0;
    }
    sums.iter().filter(|&&s| s < 200).count()
}
