//! `jpki-kiosk doctor`: the appliance's self-test, run at boot and by staff on demand.
//!
//! It checks, in order: the site configuration, the smart card service (pcscd) and its
//! readers, USB CCID readers on the bus, a test card if one is inserted, the printer, the
//! CA (a CMP `genm` for the CA certificates over the configured HTTPS with the RA
//! certificate, which exercises TCP, TLS both ways and the CA's signature), the clock and
//! its time synchronisation, free space on the data directory, and the integrity of the
//! kiosk's SQLite databases. Each [`Check`] ends OK, WARN or FAIL with a message staff can
//! read (Japanese and English) and a detail line for the vendor. The report is printed as
//! text (or JSON) and always written to `DATA/doctor-last.json`.
//!
//! # `doctor-last.json` (read by the staff sign-in screen)
//!
//! ```json
//! {
//!   "format": 1,
//!   "generated_at": "2026-11-22T03:00:00Z",       // RFC 3339, UTC
//!   "version": "0.1.0",                            // jpki-kiosk's version
//!   "site": { "municipality_code": "131016", "municipality_name": "千代田区",
//!             "counter_id": "counter-01" },        // null when the configuration failed
//!   "overall": "ok" | "warn" | "fail",             // the worst status of the checks
//!   "checks": [
//!     { "id": "pcscd", "status": "ok" | "warn" | "fail",
//!       "message_ja": "…", "message_en": "…", "detail": "…" }
//!   ]
//! }
//! ```
//! Check ids: `config`, `pcscd`, `readers`, `usb-ccid`, `card`, `printer`, `ca`, `clock`,
//! `time-sync`, `disk`, and `db:<file name>` per database. New ids may be added; a reader
//! of the file shows unknown ids with their messages. The file holds no personal data and
//! no secret (card checks report the token kind, never card contents).
//!
//! Not here: repairing anything, and the sign-in screen itself (the `ui` module reads the file).

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::card::jpki_ap::JpkiAp;
use crate::card::transport::{self, PcscTransport};
use crate::card::{CardError, TransportError};
use crate::site::{Printer, SiteConfig};

/// The report's file name in the data directory.
pub const LAST_REPORT: &str = "doctor-last.json";
/// The version of the report's JSON layout.
pub const FORMAT: u32 = 1;
/// The kiosk's databases in the data directory, checked when present.
pub const DATABASES: [&str; 4] = ["kiosk.db", "journal.db", "audit.db", "registry.db"];
/// Below this much free space on the data directory: FAIL.
pub const FREE_FAIL_BYTES: u64 = 64 << 20;
/// Below this much: WARN.
pub const FREE_WARN_BYTES: u64 = 512 << 20;
/// The interface class of smart card readers (CCID).
pub const USB_CLASS_CCID: u8 = 0x0B;

/// The outcome of one check. Ordered: `Ok < Warn < Fail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Works.
    Ok,
    /// Works with a limitation, or could not be checked; the kiosk can open.
    Warn,
    /// Broken: the kiosk cannot serve residents until it is fixed.
    Fail,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Ok => "OK  ",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        }
    }
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// Stable id (see the module docs).
    pub id: String,
    /// OK, WARN or FAIL.
    pub status: Status,
    /// For staff, in Japanese.
    pub message_ja: String,
    /// For staff, in English.
    pub message_en: String,
    /// For the vendor: what was tried and what came back.
    pub detail: String,
}

impl Check {
    fn new(
        id: impl Into<String>,
        status: Status,
        ja: impl Into<String>,
        en: impl Into<String>,
        detail: impl Into<String>,
    ) -> Check {
        Check {
            id: id.into(),
            status,
            message_ja: ja.into(),
            message_en: en.into(),
            detail: detail.into(),
        }
    }
}

/// Which site this report is from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteSummary {
    /// 全国地方公共団体コード.
    pub municipality_code: String,
    /// The municipality's name.
    pub municipality_name: String,
    /// The counter id.
    pub counter_id: String,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// [`FORMAT`].
    pub format: u32,
    /// When the checks ran, RFC 3339 UTC.
    pub generated_at: String,
    /// jpki-kiosk's version.
    pub version: String,
    /// The site, when the configuration loaded.
    pub site: Option<SiteSummary>,
    /// The worst status.
    pub overall: Status,
    /// Every check, in order.
    pub checks: Vec<Check>,
}

/// What `doctor` is asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// The data directory (site configuration, databases, the report).
    pub data: PathBuf,
    /// A missing test card is a FAIL rather than a WARN (for vendors checking a reader).
    pub require_card: bool,
    /// How long to wait for the CA.
    pub ca_timeout: Duration,
}

impl Options {
    /// Defaults: no card required, 10 s for the CA.
    pub fn new(data: impl Into<PathBuf>) -> Options {
        Options {
            data: data.into(),
            require_card: false,
            ca_timeout: Duration::from_secs(10),
        }
    }
}

/// Why the report could not be saved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DoctorError {
    /// Writing `doctor-last.json` failed (the data partition is full, read-only or missing).
    #[error("診断結果 {path} を保存できません: {source}\ncannot save the report {path}: {source}")]
    Save {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Runs every check.
pub fn run(opts: &Options) -> Report {
    let mut checks = Vec::new();
    let site = match SiteConfig::load(&opts.data) {
        Ok(cfg) => {
            checks.push(Check::new(
                "config",
                Status::Ok,
                "設定ファイルは正常です。",
                "The site configuration is valid.",
                SiteConfig::path_in(&opts.data).display().to_string(),
            ));
            Some(cfg)
        }
        Err(e) => {
            checks.push(Check::new(
                "config",
                Status::Fail,
                "設定ファイルに誤りがあります。業者に連絡してください。",
                "The site configuration has an error. Call the vendor.",
                e.to_string().replace('\n', " / "),
            ));
            None
        }
    };
    checks.extend(check_pcsc(opts.require_card));
    checks.push(check_usb());
    checks.push(match &site {
        Some(cfg) => check_printer(&cfg.printer),
        None => not_checked("printer", "プリンタ", "printer"),
    });
    checks.push(match &site {
        Some(cfg) => check_ca(cfg, &opts.data, opts.ca_timeout),
        None => not_checked("ca", "CA への接続", "the CA connection"),
    });
    checks.push(check_clock(time::OffsetDateTime::now_utc()));
    checks.push(check_time_sync());
    checks.push(check_disk(&opts.data));
    checks.extend(check_databases(&opts.data));
    let overall = checks.iter().map(|c| c.status).max().unwrap_or(Status::Ok);
    Report {
        format: FORMAT,
        generated_at: now_rfc3339(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        site: site.map(|c| SiteSummary {
            municipality_code: c.municipality.code,
            municipality_name: c.municipality.name,
            counter_id: c.counter.id,
        }),
        overall,
        checks,
    }
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or_else(|_| time::OffsetDateTime::now_utc())
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn not_checked(id: &str, ja: &str, en: &str) -> Check {
    Check::new(
        id,
        Status::Warn,
        format!("{ja}は設定がないため確認していません。"),
        format!("{en} was not checked: no valid site configuration."),
        "skipped",
    )
}

impl Report {
    /// Any FAIL.
    pub fn failed(&self) -> bool {
        self.overall == Status::Fail
    }

    /// The check with this id.
    pub fn check(&self, id: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.id == id)
    }

    /// Pretty JSON (the format of `doctor-last.json`).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// The text staff print or read out to the vendor.
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "jpki-kiosk doctor {}  {}",
            self.version, self.generated_at
        );
        if let Some(s) = &self.site {
            let _ = writeln!(
                out,
                "{} ({})  counter {}",
                s.municipality_name, s.municipality_code, s.counter_id
            );
        }
        for c in &self.checks {
            let _ = writeln!(out, "[{}] {:<14} {}", c.status.label(), c.id, c.message_ja);
            let _ = writeln!(out, "       {:<14} {}", "", c.message_en);
            let _ = writeln!(out, "       {:<14} detail: {}", "", c.detail);
        }
        let count = |s| self.checks.iter().filter(|c| c.status == s).count();
        let (fail, warn) = (count(Status::Fail), count(Status::Warn));
        let _ = writeln!(
            out,
            "結果: 異常 {fail} 件、注意 {warn} 件 / result: {fail} FAIL, {warn} WARN — {}",
            match self.overall {
                Status::Ok => "正常 / all OK",
                Status::Warn => "使用可（注意あり） / usable with warnings",
                Status::Fail => "使用不可、業者に連絡 / not usable, call the vendor",
            }
        );
        out
    }

    /// Writes the JSON to `DATA/doctor-last.json` (replaced atomically).
    pub fn save(&self, data: &Path) -> Result<PathBuf, DoctorError> {
        let path = data.join(LAST_REPORT);
        let tmp = data.join(format!(".{LAST_REPORT}.new"));
        let err = |source| DoctorError::Save {
            path: path.clone(),
            source,
        };
        std::fs::write(&tmp, self.to_json()).map_err(err)?;
        std::fs::rename(&tmp, &path).map_err(err)?;
        Ok(path)
    }
}

/// pcscd, its readers, and a card in any of them.
fn check_pcsc(require_card: bool) -> Vec<Check> {
    let ctx = match transport::establish() {
        Ok(ctx) => ctx,
        Err(e) => {
            return vec![
                Check::new(
                    "pcscd",
                    Status::Fail,
                    "ICカードサービス（pcscd）が動いていません。再起動しても直らなければ業者に連絡してください。",
                    "The smart card service (pcscd) is not running. Restart; if it persists, call the vendor.",
                    format!("SCardEstablishContext: {e}"),
                ),
                Check::new("readers", Status::Fail, "カードリーダーを確認できません。", "Card readers cannot be checked.", "no PC/SC context"),
                Check::new("card", if require_card { Status::Fail } else { Status::Warn }, "カードを確認できません。", "The card cannot be checked.", "no PC/SC context"),
            ]
        }
    };
    let mut out = vec![Check::new(
        "pcscd",
        Status::Ok,
        "ICカードサービスは動作しています。",
        "The smart card service is running.",
        "SCardEstablishContext ok",
    )];
    let readers = match transport::list_readers(&ctx) {
        Ok(r) => r,
        Err(e) => {
            out.push(Check::new(
                "readers",
                Status::Fail,
                "カードリーダーが見つかりません。USBケーブルを確認してください。",
                "No card reader found. Check the reader's USB cable.",
                format!("SCardListReaders: {e}"),
            ));
            out.push(Check::new(
                "card",
                if require_card {
                    Status::Fail
                } else {
                    Status::Warn
                },
                "リーダーがないためカードを確認していません。",
                "No reader, so no card was checked.",
                "no reader",
            ));
            return out;
        }
    };
    let names: Vec<String> = readers
        .iter()
        .map(|r| r.to_string_lossy().into_owned())
        .collect();
    out.push(Check::new(
        "readers",
        Status::Ok,
        format!("カードリーダー {} 台を認識しています。", names.len()),
        format!("{} card reader(s) found.", names.len()),
        names.join("; "),
    ));
    out.push(check_card(&ctx, &readers, require_card));
    out
}

/// SELECT JPKI-AP and read the token on the first reader holding a card.
fn check_card(ctx: &pcsc::Context, readers: &[CString], require_card: bool) -> Check {
    let mut tried = Vec::new();
    for reader in readers {
        let name = reader.to_string_lossy();
        let mut t = match PcscTransport::connect(ctx, reader) {
            Ok(t) => t,
            Err(e) => {
                tried.push(format!("{name}: {e}"));
                continue;
            }
        };
        let mut ap = JpkiAp::new(&mut t);
        return match ap.detect() {
            Ok(()) => Check::new(
                "card",
                Status::Ok,
                "試験カードを読み取れました（JPKI-AP）。",
                "The test card was read (JPKI-AP).",
                format!("{name}: SELECT JPKI-AP, READ BINARY token: JPKIAPICCTOKEN2"),
            ),
            Err(CardError::Transport(TransportError::NoCard | TransportError::CardRemoved)) => {
                tried.push(format!("{name}: card left"));
                continue;
            }
            Err(e) => Check::new(
                "card",
                Status::Fail,
                "カードを読み取れません。マイナンバーカードか確認し、別のカードで試してください。",
                "The card cannot be read. Check that it is a My Number card; try another card.",
                format!("{name}: {e}"),
            ),
        };
    }
    Check::new(
        "card",
        if require_card {
            Status::Fail
        } else {
            Status::Warn
        },
        "試験カードが入っていません。",
        "No test card is inserted.",
        tried.join("; "),
    )
}

/// Smart card readers on the USB bus (interface class 0x0B), through libusb.
fn check_usb() -> Check {
    let devices = match rusb::devices() {
        Ok(d) => d,
        Err(e) => {
            return Check::new(
                "usb-ccid",
                Status::Warn,
                "USB を確認できません（USB バスがありません）。",
                "USB cannot be checked (no USB bus).",
                format!("no USB: libusb: {e}"),
            )
        }
    };
    let mut found = Vec::new();
    for dev in devices.iter() {
        let Ok(desc) = dev.device_descriptor() else {
            continue;
        };
        let ccid = (0..desc.num_configurations()).any(|i| {
            dev.config_descriptor(i).is_ok_and(|cfg| {
                cfg.interfaces().any(|iface| {
                    iface
                        .descriptors()
                        .any(|d| d.class_code() == USB_CLASS_CCID)
                })
            })
        });
        if ccid {
            found.push(format!(
                "{:04x}:{:04x} bus {} port {}",
                desc.vendor_id(),
                desc.product_id(),
                dev.bus_number(),
                dev.port_number()
            ));
        }
    }
    if found.is_empty() {
        Check::new(
            "usb-ccid",
            Status::Warn,
            "USB 接続のカードリーダーが見つかりません。",
            "No USB smart card reader (CCID) found.",
            format!(
                "{} USB devices, none with interface class 0x0B",
                devices.len()
            ),
        )
    } else {
        Check::new(
            "usb-ccid",
            Status::Ok,
            format!("USB カードリーダー {} 台を認識しています。", found.len()),
            format!("{} USB smart card reader(s) found.", found.len()),
            found.join("; "),
        )
    }
}

/// The configured printer: `lpstat -p QUEUE` for CUPS, the device node for ESC/POS.
fn check_printer(printer: &Printer) -> Check {
    match printer {
        Printer::None => Check::new(
            "printer",
            Status::Ok,
            "プリンタは使わない設定です。",
            "No printer is configured for this counter.",
            "printer.kind = none",
        ),
        Printer::Cups { queue } => {
            let out = Command::new("lpstat").args(["-p", queue]).output();
            let out = match out {
                Ok(o) => o,
                Err(e) => {
                    return Check::new(
                        "printer",
                        Status::Fail,
                        "印刷システムを確認できません。",
                        "The print system cannot be checked.",
                        format!("lpstat: {e}"),
                    )
                }
            };
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            let line = text.lines().next().unwrap_or("").trim().to_string();
            // lpstat's English output (the image runs with LANG=C.UTF-8).
            if out.status.success() && (line.contains(" is idle") || line.contains(" now printing"))
            {
                Check::new(
                    "printer",
                    Status::Ok,
                    "プリンタは使用できます。",
                    "The printer is ready.",
                    line,
                )
            } else if out.status.success() && line.contains("disabled") {
                Check::new(
                    "printer",
                    Status::Fail,
                    "プリンタが停止しています。用紙・電源を確認してください。",
                    "The printer is stopped. Check paper and power.",
                    line,
                )
            } else {
                Check::new(
                    "printer",
                    Status::Fail,
                    "プリンタが見つかりません。電源とケーブルを確認してください。",
                    "The printer is not available. Check power and cable.",
                    format!("lpstat -p {queue}: {}", text.trim().replace('\n', " / ")),
                )
            }
        }
        Printer::EscposUsb { device } => match std::fs::OpenOptions::new().write(true).open(device)
        {
            Ok(_) => Check::new(
                "printer",
                Status::Ok,
                "プリンタは使用できます。",
                "The printer is ready.",
                format!("{} opened for writing", device.display()),
            ),
            Err(e) => Check::new(
                "printer",
                Status::Fail,
                "プリンタが見つかりません。電源とUSBケーブルを確認してください。",
                "The printer is not available. Check power and the USB cable.",
                format!("{}: {e}", device.display()),
            ),
        },
    }
}

/// CMP genm (CA certificates) over the configured HTTPS: proves TCP, TLS with our roots,
/// the CA accepting our RA certificate, and the CA's response signature.
fn check_ca(cfg: &SiteConfig, data: &Path, timeout: Duration) -> Check {
    match ca_certs(cfg, data, timeout) {
        Ok(n) => Check::new(
            "ca",
            Status::Ok,
            "CA に接続できました（TLS・証明書とも正常）。",
            "The CA is reachable; TLS and certificates are valid.",
            format!("{}: genm caCerts → {n} certificate(s)", cfg.ca.url),
        ),
        Err((kind, detail)) => {
            let (ja, en) = match kind {
                CaProblem::Setup => ("CA 接続用の証明書・鍵が読めません。業者に連絡してください。", "The CA certificate or key files cannot be read. Call the vendor."),
                CaProblem::Unreachable => ("CA に接続できません。ネットワーク（LGWAN）を確認してください。", "The CA cannot be reached. Check the network (LGWAN)."),
                CaProblem::Tls => ("CA との暗号化通信（TLS）に失敗しました。証明書の期限を確認し、業者に連絡してください。", "The secure connection (TLS) to the CA failed. Check certificate expiry; call the vendor."),
                CaProblem::Answer => ("CA の応答が正しくありません。業者に連絡してください。", "The CA's answer is not valid. Call the vendor."),
            };
            Check::new(
                "ca",
                Status::Fail,
                ja,
                en,
                format!("{}: {detail}", cfg.ca.url),
            )
        }
    }
}

enum CaProblem {
    Setup,
    Unreachable,
    Tls,
    Answer,
}

fn ca_certs(
    cfg: &SiteConfig,
    data: &Path,
    timeout: Duration,
) -> Result<usize, (CaProblem, String)> {
    use crate::enroll::client::{ClientConfig, CmpClient};
    use crate::enroll::http::{HttpConfig, HttpTransport, RetryPolicy};
    use crate::enroll::protect::{Credential, RaKey, ResponseTrust};
    use crate::enroll::{EnrollError, Enroller, Transaction};
    use der::DecodePem;
    use rsa::pkcs8::DecodePrivateKey;
    use x509_cert::Certificate;
    use zeroize::Zeroizing;

    fn setup(what: &Path, e: impl std::fmt::Display) -> (CaProblem, String) {
        (CaProblem::Setup, format!("{}: {e}", what.display()))
    }
    let read = |p: &Path| -> Result<Vec<u8>, (CaProblem, String)> {
        let full = cfg.resolve(data, p);
        std::fs::read(&full).map_err(|e| setup(&full, e))
    };
    let cert = |p: &Path| -> Result<Certificate, (CaProblem, String)> {
        Certificate::from_pem(read(p)?).map_err(|e| setup(p, e))
    };
    let anchors = cfg
        .ca
        .anchors
        .iter()
        .map(|a| cert(a.as_path()))
        .collect::<Result<Vec<_>, _>>()?;
    let key_path = cfg.ca.ra_key.as_path();
    let key_pem = Zeroizing::new(read(key_path)?);
    let key_text = std::str::from_utf8(&key_pem).map_err(|e| setup(key_path, e))?;
    let key = rsa::RsaPrivateKey::from_pkcs8_pem(key_text).map_err(|e| setup(key_path, e))?;
    let credential = Credential::Signature {
        key: RaKey::from_rsa(&key).map_err(|e| setup(key_path, e))?,
        cert: Box::new(cert(cfg.ca.ra_cert.as_path())?),
        chain: vec![],
    };
    let mut http = HttpConfig::new(cfg.ca.url.clone());
    http.tls_roots_pem = read(cfg.ca.tls_roots.as_path())?;
    let mut identity = Zeroizing::new(read(cfg.ca.ra_cert.as_path())?);
    identity.extend_from_slice(&key_pem);
    http.client_identity_pem = Some(identity);
    http.connect_timeout = timeout.min(Duration::from_secs(5));
    http.timeout = timeout;
    // One attempt: the doctor reports what it sees now, quickly.
    http.retry = RetryPolicy {
        attempts: 1,
        ..RetryPolicy::default()
    };
    let transport = HttpTransport::new(&http).map_err(|e| (CaProblem::Setup, e.to_string()))?;
    let trust = ResponseTrust {
        signer_anchors: anchors.clone(),
        mac_secret: None,
    };
    let client = CmpClient::new(transport, ClientConfig::new(credential, trust, anchors));
    match client.ca_certs(&Transaction::random()) {
        Ok(certs) => Ok(certs.len()),
        Err(e @ EnrollError::Tls(_)) => Err((CaProblem::Tls, e.to_string())),
        Err(
            e @ (EnrollError::Unreachable(_) | EnrollError::Timeout | EnrollError::HttpStatus(_)),
        ) => Err((CaProblem::Unreachable, e.to_string())),
        Err(e) => Err((CaProblem::Answer, e.to_string())),
    }
}

/// The year must be plausible: certificates' validity depends on it.
fn check_clock(now: time::OffsetDateTime) -> Check {
    let year = now.year();
    let detail = format!(
        "system time {}",
        now.replace_nanosecond(0)
            .unwrap_or(now)
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    );
    if (2024..=2099).contains(&year) {
        Check::new(
            "clock",
            Status::Ok,
            "時計は正常な範囲です。",
            "The clock is plausible.",
            detail,
        )
    } else {
        Check::new(
            "clock",
            Status::Fail,
            format!("時計が {year} 年を示しています。時刻を直すまで発行できません。業者に連絡してください。"),
            format!("The clock says {year}. Certificates cannot be issued until it is fixed. Call the vendor."),
            detail,
        )
    }
}

/// NTP synchronisation as systemd reports it; "unknown" where timedatectl cannot tell.
fn check_time_sync() -> Check {
    let out = Command::new("timedatectl")
        .args(["show", "--property=NTPSynchronized", "--value"])
        .output();
    let answer = match &out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        Ok(o) => format!("unknown ({})", String::from_utf8_lossy(&o.stderr).trim()),
        Err(e) => format!("unknown ({e})"),
    };
    time_sync_check(&answer)
}

fn time_sync_check(answer: &str) -> Check {
    match answer {
        "yes" => Check::new(
            "time-sync",
            Status::Ok,
            "時刻は同期しています（NTP）。",
            "The time is synchronised (NTP).",
            "NTPSynchronized=yes",
        ),
        "no" => Check::new(
            "time-sync",
            Status::Warn,
            "時刻が同期していません。ネットワークを確認してください。",
            "The time is not synchronised. Check the network.",
            "NTPSynchronized=no",
        ),
        other => Check::new(
            "time-sync",
            Status::Warn,
            "時刻の同期状態は不明です。",
            "Time synchronisation state is unknown.",
            format!("timedatectl: {other}"),
        ),
    }
}

/// Free space, and that the data directory is writable.
fn check_disk(data: &Path) -> Check {
    let stat = match nix::sys::statvfs::statvfs(data) {
        Ok(s) => s,
        Err(e) => {
            return Check::new(
                "disk",
                Status::Fail,
                "データ領域が見つかりません。業者に連絡してください。",
                "The data partition is missing. Call the vendor.",
                format!("statvfs {}: {e}", data.display()),
            )
        }
    };
    let free = u64::from(stat.blocks_available()) * u64::from(stat.fragment_size());
    let probe = data.join(".doctor-write-probe");
    let writable = std::fs::write(&probe, b"ok").and_then(|_| std::fs::remove_file(&probe));
    disk_check(free, writable.err(), data)
}

fn disk_check(free: u64, write_error: Option<std::io::Error>, data: &Path) -> Check {
    let mib = free >> 20;
    let detail = format!("{}: {mib} MiB free", data.display());
    if let Some(e) = write_error {
        return Check::new(
            "disk",
            Status::Fail,
            "データ領域に書き込めません。業者に連絡してください。",
            "The data partition is not writable. Call the vendor.",
            format!("{detail}; write: {e}"),
        );
    }
    if free < FREE_FAIL_BYTES {
        Check::new(
            "disk",
            Status::Fail,
            format!("データ領域の空きが {mib} MiB しかありません。業者に連絡してください。"),
            format!("Only {mib} MiB free on the data partition. Call the vendor."),
            detail,
        )
    } else if free < FREE_WARN_BYTES {
        Check::new(
            "disk",
            Status::Warn,
            format!("データ領域の空きが少なくなっています（{mib} MiB）。"),
            format!("The data partition is getting full ({mib} MiB free)."),
            detail,
        )
    } else {
        Check::new(
            "disk",
            Status::Ok,
            "データ領域の空きは十分です。",
            "Enough free space on the data partition.",
            detail,
        )
    }
}

/// `PRAGMA integrity_check` of each database present, opened read-only.
fn check_databases(data: &Path) -> Vec<Check> {
    DATABASES
        .iter()
        .filter(|name| data.join(name).exists())
        .map(|name| {
            let id = format!("db:{name}");
            let path = data.join(name);
            match integrity(&path) {
                Ok(()) => Check::new(id, Status::Ok, format!("データベース {name} は正常です。"), format!("Database {name} is intact."), "PRAGMA integrity_check: ok"),
                Err(e) => Check::new(
                    id,
                    Status::Fail,
                    format!("データベース {name} が壊れています。電源を切らずに業者に連絡してください。"),
                    format!("Database {name} is damaged. Do not switch off; call the vendor."),
                    e,
                ),
            }
        })
        .collect()
}

fn integrity(path: &Path) -> Result<(), String> {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| format!("open: {e}"))?;
    let mut stmt = conn
        .prepare("PRAGMA integrity_check")
        .map_err(|e| format!("integrity_check: {e}"))?;
    let rows: Vec<String> = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .and_then(|rows| rows.collect())
        .map_err(|e| format!("integrity_check: {e}"))?;
    if rows == ["ok"] {
        Ok(())
    } else {
        Err(format!(
            "integrity_check: {}",
            rows.into_iter().take(3).collect::<Vec<_>>().join(" / ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_bounds() {
        use time::macros::datetime;
        assert_eq!(
            check_clock(datetime!(2026-11-22 03:00 UTC)).status,
            Status::Ok
        );
        assert_eq!(
            check_clock(datetime!(1970-01-01 00:00 UTC)).status,
            Status::Fail
        );
        assert_eq!(
            check_clock(datetime!(2100-01-01 00:00 UTC)).status,
            Status::Fail
        );
        assert!(check_clock(datetime!(1970-01-01 00:00 UTC))
            .message_en
            .contains("1970"));
    }

    #[test]
    fn time_sync_answers() {
        assert_eq!(time_sync_check("yes").status, Status::Ok);
        assert_eq!(time_sync_check("no").status, Status::Warn);
        let c = time_sync_check("unknown (no systemd)");
        assert_eq!(c.status, Status::Warn);
        assert!(c.detail.contains("unknown"));
    }

    #[test]
    fn disk_thresholds() {
        let d = Path::new("/data");
        assert_eq!(disk_check(10 << 30, None, d).status, Status::Ok);
        assert_eq!(
            disk_check(FREE_WARN_BYTES - 1, None, d).status,
            Status::Warn
        );
        assert_eq!(
            disk_check(FREE_FAIL_BYTES - 1, None, d).status,
            Status::Fail
        );
        let ro = std::io::Error::from_raw_os_error(libc::EROFS);
        let c = disk_check(10 << 30, Some(ro), d);
        assert_eq!(c.status, Status::Fail);
        assert!(c.detail.contains("write"), "{}", c.detail);
    }

    #[test]
    fn databases_intact_and_damaged() {
        let dir = tempfile::tempdir().unwrap();
        assert!(check_databases(dir.path()).is_empty());
        let conn = rusqlite::Connection::open(dir.path().join("kiosk.db")).unwrap();
        conn.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1);")
            .unwrap();
        drop(conn);
        std::fs::write(dir.path().join("audit.db"), vec![0x5a; 8192]).unwrap();
        let checks = check_databases(dir.path());
        assert_eq!(checks.len(), 2);
        assert_eq!(
            (checks[0].id.as_str(), checks[0].status),
            ("db:kiosk.db", Status::Ok)
        );
        assert_eq!(
            (checks[1].id.as_str(), checks[1].status),
            ("db:audit.db", Status::Fail)
        );
    }

    #[test]
    fn report_text_json_and_save() {
        let dir = tempfile::tempdir().unwrap();
        let report = Report {
            format: FORMAT,
            generated_at: "2026-11-22T03:00:00Z".into(),
            version: "0.1.0".into(),
            site: None,
            overall: Status::Fail,
            checks: vec![
                Check::new("pcscd", Status::Ok, "動作中", "running", "ok"),
                Check::new("ca", Status::Fail, "接続不可", "unreachable", "refused"),
            ],
        };
        let text = report.to_text();
        assert!(text.contains("[FAIL] ca"), "{text}");
        assert!(text.contains("1 FAIL, 0 WARN"), "{text}");
        let path = report.save(dir.path()).unwrap();
        let back: Report = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        assert_eq!(back, report);
        let v: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(v["overall"], "fail");
        assert_eq!(v["checks"][1]["status"], "fail");
        assert!(report.failed());
    }

    #[test]
    fn printer_checks_without_cups() {
        assert_eq!(check_printer(&Printer::None).status, Status::Ok);
        let ok = check_printer(&Printer::EscposUsb {
            device: "/dev/null".into(),
        });
        assert_eq!(ok.status, Status::Ok, "{ok:?}");
        let missing = check_printer(&Printer::EscposUsb {
            device: "/dev/usb/lp-missing".into(),
        });
        assert_eq!(missing.status, Status::Fail);
    }
}
