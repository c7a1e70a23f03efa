//! The per-site configuration of one counter appliance: `site.toml` on the data partition.
//!
//! One file says which municipality and counter this appliance is, where its CA is (URL,
//! TLS roots, RA certificate and key, the CA certificates responses are checked against),
//! which printer it uses, its fee table, the languages offered and the idle timeout.
//! [`SiteConfig::load`] validates every field at start and names the field that is wrong
//! with what to do about it, in Japanese first and English second ([`SiteError`]).
//! [`provision`] writes a validated file for vendors (`jpki-kiosk provision`).
//!
//! Not here: reading the RA key or the certificates (the enroll client does that), the fee
//! rules themselves (`rules::fee`), or any secret: the file holds paths, never key material.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::rules::fee::FeeTable;
use crate::ui::language::Language;

/// The file name of the configuration inside the data directory.
pub const FILE_NAME: &str = "site.toml";

/// The appliance's data directory in the image (the data partition's mount point).
pub const DEFAULT_DATA_DIR: &str = "/var/lib/jpki-kiosk";

/// Shortest and longest idle timeout the screens accept, in seconds.
pub const IDLE_TIMEOUT_RANGE: std::ops::RangeInclusive<u32> = 30..=1800;

/// The whole site configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    /// The municipality the counter belongs to.
    pub municipality: Municipality,
    /// This counter.
    pub counter: Counter,
    /// The prefectural CA.
    pub ca: CaEndpoint,
    /// The receipt printer.
    pub printer: Printer,
}

/// 全国地方公共団体コード and name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Municipality {
    /// Six digits, the last a check digit (e.g. `131016` for 千代田区).
    pub code: String,
    /// e.g. `千代田区`.
    pub name: String,
}

/// The counter's own settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Counter {
    /// Short id printed on receipts and in the audit log: 1-32 of `A-Z a-z 0-9 - _`.
    pub id: String,
    /// Languages offered to residents, the first is the default (`ja`, `en`, `ja-easy`).
    pub languages: Vec<String>,
    /// Seconds without input before a resident's screen returns to the start.
    pub idle_timeout_secs: u32,
    /// JSON fee overrides (`rules::fee::FeeTable`); absent: the national defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fee_table: Option<PathBuf>,
    /// The resident pad's key order: `shuffled` (a new order per entry, the default) or
    /// `fixed` (telephone order, for residents who know it by heart).
    #[serde(default)]
    pub pin_pad: PadLayout,
}

/// The resident pad's key order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PadLayout {
    /// A fresh random order for each entry.
    #[default]
    Shuffled,
    /// Telephone order.
    Fixed,
}

/// Where the CA is and what the kiosk presents to it. Relative paths are relative to the
/// data directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaEndpoint {
    /// The CMP endpoint, `https://` (plain `http://` only to loopback, for tests).
    pub url: String,
    /// PEM roots the CA's TLS certificate must chain to.
    pub tls_roots: PathBuf,
    /// The RA (kiosk) certificate, PEM: TLS client certificate and CMP signer.
    pub ra_cert: PathBuf,
    /// The RA private key, PKCS#8 PEM (readable by the kiosk user only).
    pub ra_key: PathBuf,
    /// CA certificates (PEM files) the CA's CMP responses must be signed under.
    pub anchors: Vec<PathBuf>,
}

/// The receipt printer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Printer {
    /// A CUPS queue (`lpstat -p QUEUE`).
    Cups {
        /// The queue name.
        queue: String,
    },
    /// A USB ESC/POS printer written to directly (usblp device node).
    EscposUsb {
        /// e.g. `/dev/usb/lp0`.
        device: PathBuf,
    },
    /// No printer at this counter.
    None,
}

/// Why a site configuration was refused. Each message starts with a Japanese line for the
/// staff and the vendor, then the same in English; both say which field and what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SiteError {
    /// The file could not be read.
    #[error("設定ファイル {path} を読めません: {source}\ncannot read the site configuration {path}: {source}. Run `jpki-kiosk provision` to create it.")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has a missing or unknown field.
    #[error("設定ファイル {path} の書式が正しくありません: {message}\nthe site configuration {path} is not valid: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message (it names the line and field).
        message: String,
    },
    /// A field has a value the kiosk cannot use.
    #[error("設定項目 {field}: {ja}\nsite configuration field {field}: {en}")]
    Invalid {
        /// The dotted field name, e.g. `municipality.code`.
        field: &'static str,
        /// What is wrong and what to do, in Japanese.
        ja: String,
        /// What is wrong and what to do, in English.
        en: String,
    },
    /// `provision` refuses to replace an existing file without `--force`.
    #[error("設定ファイル {0} は既にあります。上書きするには --force を付けてください。\nthe site configuration {0} exists; pass --force to replace it.")]
    Exists(PathBuf),
    /// Writing the file failed.
    #[error("設定ファイル {path} を書けません: {source}\ncannot write the site configuration {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

fn invalid(field: &'static str, ja: impl Into<String>, en: impl Into<String>) -> SiteError {
    SiteError::Invalid {
        field,
        ja: ja.into(),
        en: en.into(),
    }
}

/// Checks a 全国地方公共団体コード: six digits, prefecture 01-47, and the check digit
/// (weights 6,5,4,3,2 on the first five digits; the check digit is the last digit of
/// 11 minus the sum modulo 11).
pub fn check_municipality_code(code: &str) -> Result<(), SiteError> {
    let field = "municipality.code";
    let digits: Vec<u32> = code.chars().filter_map(|c| c.to_digit(10)).collect();
    if code.len() != 6 || digits.len() != 6 {
        return Err(invalid(
            field,
            format!("{code:?} は6桁の数字ではありません。検査数字を含む6桁の地方公共団体コードを指定してください。"),
            format!("{code:?} is not six digits; give the six-digit local government code including its check digit"),
        ));
    }
    let prefecture = digits[0] * 10 + digits[1];
    if !(1..=47).contains(&prefecture) {
        return Err(invalid(
            field,
            format!("都道府県コード {prefecture:02} は 01〜47 ではありません。"),
            format!("prefecture {prefecture:02} is not 01-47; check the code"),
        ));
    }
    let sum: u32 = digits[..5]
        .iter()
        .zip([6, 5, 4, 3, 2])
        .map(|(d, w)| d * w)
        .sum();
    let expected = (11 - sum % 11) % 10;
    if digits[5] != expected {
        return Err(invalid(
            field,
            format!("検査数字が合いません（{expected} のはずです）。コードを確認してください。"),
            format!("the check digit does not match (expected {expected}); check the code"),
        ));
    }
    Ok(())
}

impl SiteConfig {
    /// The configuration file of a data directory.
    pub fn path_in(data: &Path) -> PathBuf {
        data.join(FILE_NAME)
    }

    /// Reads and validates `DATA/site.toml`, including that every file it names is readable.
    pub fn load(data: &Path) -> Result<SiteConfig, SiteError> {
        let path = Self::path_in(data);
        let text = std::fs::read_to_string(&path).map_err(|source| SiteError::Read {
            path: path.clone(),
            source,
        })?;
        let cfg = Self::parse(&text).map_err(|e| match e {
            SiteError::Syntax { message, .. } => SiteError::Syntax {
                path: path.clone(),
                message,
            },
            other => other,
        })?;
        cfg.check_files(data)?;
        Ok(cfg)
    }

    /// Parses and validates the values (not the files they name).
    pub fn parse(text: &str) -> Result<SiteConfig, SiteError> {
        let cfg: SiteConfig = toml::from_str(text).map_err(|e| SiteError::Syntax {
            path: PathBuf::from(FILE_NAME),
            message: e.to_string(),
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// The file as written by [`provision`].
    pub fn to_toml(&self) -> String {
        // Every field is a string, number, path or list: serialisation cannot fail.
        toml::to_string_pretty(self).expect("site configuration serialises")
    }

    /// Checks every value; the first problem is returned.
    pub fn validate(&self) -> Result<(), SiteError> {
        check_municipality_code(&self.municipality.code)?;
        let name = self.municipality.name.trim();
        if name.is_empty() || name.chars().count() > 32 || name.chars().any(char::is_control) {
            return Err(invalid(
                "municipality.name",
                "団体名を1〜32文字で指定してください（例: 千代田区）。",
                "give the municipality's name, 1-32 characters (e.g. 千代田区)",
            ));
        }
        let id = &self.counter.id;
        if id.is_empty()
            || id.len() > 32
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(invalid(
                "counter.id",
                format!("窓口ID {id:?} は使えません。英数字・- ・_ の1〜32文字にしてください。"),
                format!("counter id {id:?} is not usable; use 1-32 of A-Z a-z 0-9 - _"),
            ));
        }
        if self.counter.languages.is_empty() {
            return Err(invalid(
                "counter.languages",
                "表示言語を1つ以上指定してください（ja, en, ja-easy）。",
                "list at least one language (ja, en, ja-easy)",
            ));
        }
        for (i, code) in self.counter.languages.iter().enumerate() {
            if Language::from_code(code).is_none() {
                return Err(invalid(
                    "counter.languages",
                    format!(
                        "言語 {code:?} には対応していません。ja, en, ja-easy から選んでください。"
                    ),
                    format!("language {code:?} is not supported; choose from ja, en, ja-easy"),
                ));
            }
            if self.counter.languages[..i].contains(code) {
                return Err(invalid(
                    "counter.languages",
                    format!("言語 {code:?} が重複しています。"),
                    format!("language {code:?} is listed twice"),
                ));
            }
        }
        let t = self.counter.idle_timeout_secs;
        if !IDLE_TIMEOUT_RANGE.contains(&t) {
            return Err(invalid(
                "counter.idle_timeout_secs",
                format!("無操作タイムアウト {t} 秒は範囲外です。30〜1800 秒にしてください。"),
                format!("idle timeout {t} s is out of range; use 30-1800 seconds"),
            ));
        }
        self.validate_ca()?;
        match &self.printer {
            Printer::Cups { queue } => {
                // CUPS queue names: printable, no space, slash or '#', at most 127 bytes.
                if queue.is_empty()
                    || queue.len() > 127
                    || queue
                        .chars()
                        .any(|c| c.is_control() || c == ' ' || c == '/' || c == '#')
                {
                    return Err(invalid(
                        "printer.queue",
                        format!("CUPS のキュー名 {queue:?} は使えません（空白・/・# は不可）。"),
                        format!("CUPS queue name {queue:?} is not valid (no space, / or #)"),
                    ));
                }
            }
            Printer::EscposUsb { device } => {
                if !device.is_absolute() || !device.starts_with("/dev") {
                    return Err(invalid(
                        "printer.device",
                        "ESC/POS プリンタのデバイスは /dev/ 以下の絶対パスで指定してください（例: /dev/usb/lp0）。",
                        "give the ESC/POS printer's device as an absolute path under /dev (e.g. /dev/usb/lp0)",
                    ));
                }
            }
            Printer::None => {}
        }
        Ok(())
    }

    fn validate_ca(&self) -> Result<(), SiteError> {
        let url =
            match reqwest::Url::parse(&self.ca.url) {
                Ok(u) => u,
                Err(e) => return Err(invalid(
                    "ca.url",
                    format!(
                        "CA の URL {:?} が読めません（{e}）。https://… の形で指定してください。",
                        self.ca.url
                    ),
                    format!(
                        "CA URL {:?} does not parse ({e}); give an https:// URL",
                        self.ca.url
                    ),
                )),
            };
        let host = url.host_str().unwrap_or("");
        let loopback = host == "localhost"
            || host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|a| a.is_loopback());
        let ok_scheme = url.scheme() == "https" || (url.scheme() == "http" && loopback);
        if !ok_scheme || host.is_empty() {
            return Err(invalid(
                "ca.url",
                "CA の URL は https:// で指定してください（http:// は試験用のループバックのみ）。",
                "the CA URL must be https:// (plain http:// only to loopback, for tests)",
            ));
        }
        for (field, path) in [
            ("ca.tls_roots", &self.ca.tls_roots),
            ("ca.ra_cert", &self.ca.ra_cert),
            ("ca.ra_key", &self.ca.ra_key),
        ] {
            if path.as_os_str().is_empty() {
                return Err(invalid(
                    field,
                    "ファイルのパスを指定してください。",
                    "give the file's path",
                ));
            }
        }
        if self.ca.anchors.is_empty() {
            return Err(invalid(
                "ca.anchors",
                "CA の応答を検証する CA 証明書を1つ以上指定してください。",
                "list at least one CA certificate the CA's responses are verified against",
            ));
        }
        Ok(())
    }

    /// A path from the file, resolved against the data directory.
    pub fn resolve(&self, data: &Path, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            data.join(path)
        }
    }

    /// The CA files the configuration names, resolved against the data directory.
    pub fn ca_files(&self, data: &Path) -> crate::issuance::adapters::script::CaFiles {
        crate::issuance::adapters::script::CaFiles {
            tls_roots: self.resolve(data, &self.ca.tls_roots),
            ra_cert: self.resolve(data, &self.ca.ra_cert),
            ra_key: self.resolve(data, &self.ca.ra_key),
            anchors: self.ca.anchors.iter().map(|a| self.resolve(data, a)).collect(),
        }
    }

    /// Checks that every file the configuration names can be read, and the fee table parses.
    pub fn check_files(&self, data: &Path) -> Result<(), SiteError> {
        let mut files: Vec<(&'static str, &PathBuf)> = vec![
            ("ca.tls_roots", &self.ca.tls_roots),
            ("ca.ra_cert", &self.ca.ra_cert),
            ("ca.ra_key", &self.ca.ra_key),
        ];
        files.extend(self.ca.anchors.iter().map(|a| ("ca.anchors", a)));
        for (field, path) in files {
            let full = self.resolve(data, path);
            if let Err(e) = std::fs::File::open(&full) {
                return Err(invalid(
                    field,
                    format!(
                        "{} を開けません（{e}）。ファイルを置くか、パスを直してください。",
                        full.display()
                    ),
                    format!(
                        "cannot open {} ({e}); put the file there or fix the path",
                        full.display()
                    ),
                ));
            }
        }
        if let Some(table) = &self.counter.fee_table {
            let full = self.resolve(data, table);
            let parsed = std::fs::read_to_string(&full)
                .map_err(|e| e.to_string())
                .and_then(|t| FeeTable::from_json(&t).map_err(|e| e.to_string()));
            if let Err(e) = parsed {
                return Err(invalid(
                    "counter.fee_table",
                    format!("手数料表 {} が使えません（{e}）。", full.display()),
                    format!("fee table {} is not usable ({e})", full.display()),
                ));
            }
        }
        Ok(())
    }

    /// The fee table in force: the override file, or the national defaults.
    pub fn fee_table(&self, data: &Path) -> Result<FeeTable, SiteError> {
        let Some(table) = &self.counter.fee_table else {
            return Ok(FeeTable::default());
        };
        let full = self.resolve(data, table);
        std::fs::read_to_string(&full)
            .map_err(|e| e.to_string())
            .and_then(|t| FeeTable::from_json(&t).map_err(|e| e.to_string()))
            .map_err(|e| {
                invalid(
                    "counter.fee_table",
                    format!("手数料表 {} が使えません（{e}）。", full.display()),
                    format!("fee table {} is not usable ({e})", full.display()),
                )
            })
    }
}

/// Validates `cfg` and writes it to `DATA/site.toml` (mode 0640), refusing to replace an
/// existing file unless `force`. Files the configuration names need not exist yet (vendors
/// copy the RA key in afterwards); `config check` verifies them.
pub fn provision(data: &Path, cfg: &SiteConfig, force: bool) -> Result<PathBuf, SiteError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    cfg.validate()?;
    let path = SiteConfig::path_in(data);
    let write_err = |source| SiteError::Write {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(data).map_err(write_err)?;
    if path.exists() && !force {
        return Err(SiteError::Exists(path));
    }
    // Write beside it and rename, so a power cut leaves the old file or the new one.
    let tmp = data.join(format!(".{FILE_NAME}.new"));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o640)
        .open(&tmp)
        .map_err(write_err)?;
    f.write_all(cfg.to_toml().as_bytes()).map_err(write_err)?;
    f.sync_all().map_err(write_err)?;
    std::fs::rename(&tmp, &path).map_err(write_err)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SiteConfig {
        SiteConfig {
            municipality: Municipality {
                code: "131016".into(),
                name: "千代田区".into(),
            },
            counter: Counter {
                id: "counter-01".into(),
                languages: vec!["ja".into(), "en".into()],
                idle_timeout_secs: 120,
                fee_table: None,
                pin_pad: PadLayout::Shuffled,
            },
            ca: CaEndpoint {
                url: "https://ca.pref.example.lg.jp/pkix/".into(),
                tls_roots: "ca/tls-ca.pem".into(),
                ra_cert: "ca/ra.pem".into(),
                ra_key: "ca/ra.key".into(),
                anchors: vec!["ca/auth-ca.pem".into(), "ca/sign-ca.pem".into()],
            },
            printer: Printer::Cups {
                queue: "receipt".into(),
            },
        }
    }

    #[test]
    fn municipality_codes() {
        // Real codes: 千代田区, 札幌市, 東京都, 那覇市; then broken ones.
        for good in ["131016", "011002", "130001", "472018"] {
            assert!(check_municipality_code(good).is_ok(), "{good}");
        }
        for (bad, why) in [
            ("131017", "check digit"),
            ("13101", "six digits"),
            ("1310160", "six digits"),
            ("13101a", "six digits"),
            ("481009", "prefecture"),
            ("001007", "prefecture"),
            ("１３１０１６", "six digits"),
        ] {
            let e = check_municipality_code(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
            assert!(e.starts_with("設定項目 municipality.code"), "{e}");
        }
    }

    #[test]
    fn round_trip_through_toml() {
        let cfg = sample();
        let text = cfg.to_toml();
        assert!(text.contains("kind = \"cups\""), "{text}");
        assert_eq!(SiteConfig::parse(&text).unwrap(), cfg);
        let mut usb = sample();
        usb.printer = Printer::EscposUsb {
            device: "/dev/usb/lp0".into(),
        };
        assert_eq!(SiteConfig::parse(&usb.to_toml()).unwrap(), usb);
        let mut none = sample();
        none.printer = Printer::None;
        assert_eq!(SiteConfig::parse(&none.to_toml()).unwrap(), none);
    }

    #[test]
    fn each_bad_field_is_named() {
        type Edit = fn(&mut SiteConfig);
        let cases: &[(&str, Edit)] = &[
            ("municipality.code", |c| {
                c.municipality.code = "131015".into()
            }),
            ("municipality.name", |c| c.municipality.name = "  ".into()),
            ("counter.id", |c| c.counter.id = "counter 1".into()),
            ("counter.id", |c| c.counter.id = String::new()),
            ("counter.languages", |c| c.counter.languages.clear()),
            ("counter.languages", |c| {
                c.counter.languages.push("fr".into())
            }),
            ("counter.languages", |c| {
                c.counter.languages.push("ja".into())
            }),
            ("counter.idle_timeout_secs", |c| {
                c.counter.idle_timeout_secs = 5
            }),
            ("counter.idle_timeout_secs", |c| {
                c.counter.idle_timeout_secs = 86_400
            }),
            ("ca.url", |c| c.ca.url = "not a url".into()),
            ("ca.url", |c| c.ca.url = "http://ca.example.jp/".into()),
            ("ca.url", |c| c.ca.url = "ftp://127.0.0.1/".into()),
            ("ca.tls_roots", |c| c.ca.tls_roots = PathBuf::new()),
            ("ca.ra_key", |c| c.ca.ra_key = PathBuf::new()),
            ("ca.anchors", |c| c.ca.anchors.clear()),
            ("printer.queue", |c| {
                c.printer = Printer::Cups {
                    queue: "a b".into(),
                }
            }),
            ("printer.queue", |c| {
                c.printer = Printer::Cups {
                    queue: String::new(),
                }
            }),
            ("printer.device", |c| {
                c.printer = Printer::EscposUsb {
                    device: "lp0".into(),
                }
            }),
            ("printer.device", |c| {
                c.printer = Printer::EscposUsb {
                    device: "/tmp/lp0".into(),
                }
            }),
        ];
        for (field, edit) in cases {
            let mut cfg = sample();
            edit(&mut cfg);
            match cfg.validate() {
                Err(SiteError::Invalid { field: f, ja, en }) => {
                    assert_eq!(&f, field);
                    assert!(!ja.is_ascii(), "Japanese text for {field}: {ja}");
                    assert!(
                        en.starts_with(|c: char| c.is_ascii_alphabetic()),
                        "English text for {field}: {en}"
                    );
                }
                other => panic!("{field}: expected Invalid, got {other:?}"),
            }
        }
        // Loopback plain HTTP is allowed (tests), as is https anywhere.
        let mut cfg = sample();
        cfg.ca.url = "http://127.0.0.1:8080/pkix/".into();
        cfg.validate().unwrap();
    }

    #[test]
    fn syntax_errors_name_the_problem() {
        let text = sample()
            .to_toml()
            .replace("idle_timeout_secs", "idle_timeout");
        let e = SiteConfig::parse(&text).unwrap_err().to_string();
        assert!(e.contains("idle_timeout"), "{e}");
        assert!(e.starts_with("設定ファイル"), "{e}");
        let missing = sample()
            .to_toml()
            .replace("[printer]\nkind = \"cups\"\n", "[printer]\n");
        assert!(matches!(
            SiteConfig::parse(&missing),
            Err(SiteError::Syntax { .. })
        ));
    }

    #[test]
    fn provision_refuses_to_overwrite_and_load_checks_files() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path();
        let cfg = sample();
        let path = provision(data, &cfg, false).unwrap();
        assert!(matches!(
            provision(data, &cfg, false),
            Err(SiteError::Exists(_))
        ));
        provision(data, &cfg, true).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o640
        );
        // The CA files are not there yet.
        match SiteConfig::load(data) {
            Err(SiteError::Invalid {
                field: "ca.tls_roots",
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
        std::fs::create_dir(data.join("ca")).unwrap();
        for f in [
            "tls-ca.pem",
            "ra.pem",
            "ra.key",
            "auth-ca.pem",
            "sign-ca.pem",
        ] {
            std::fs::write(data.join("ca").join(f), "x").unwrap();
        }
        assert_eq!(SiteConfig::load(data).unwrap(), cfg);
        // A fee table that does not parse is named.
        let mut fees = cfg.clone();
        fees.counter.fee_table = Some("fees.json".into());
        provision(data, &fees, true).unwrap();
        std::fs::write(data.join("fees.json"), r#"{"reissue_after_loss": -1}"#).unwrap();
        assert!(matches!(
            SiteConfig::load(data),
            Err(SiteError::Invalid {
                field: "counter.fee_table",
                ..
            })
        ));
        std::fs::write(data.join("fees.json"), r#"{"reissue_after_loss": 300}"#).unwrap();
        let loaded = SiteConfig::load(data).unwrap();
        assert_eq!(loaded.fee_table(data).unwrap().reissue_after_loss.0, 300);
        // A missing file is a Read error that tells how to create it.
        let empty = tempfile::tempdir().unwrap();
        let e = SiteConfig::load(empty.path()).unwrap_err().to_string();
        assert!(e.contains("jpki-kiosk provision"), "{e}");
    }
}
