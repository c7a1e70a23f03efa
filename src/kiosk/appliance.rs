//! `jpki-kiosk ui`: the counter appliance. Reads the site configuration from the data
//! partition, finds the card reader, and opens the staff and resident windows (under the
//! image's `cage` compositor) with the visit worker behind them.
//!
//! Everything it needs is checked before a window opens, and each failure names the file
//! or device and what the vendor should do, in Japanese then English; the service
//! manager restarts the kiosk after a fix.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use super::screens::KioskOptions;
use crate::card::admin_key::MasterKey;
use super::session::WorkerConfig;
use crate::site::{PadLayout, SiteConfig, SiteError};
use crate::staff::OperatorId;
use crate::ui::pinpad::KeyOrder;

/// The issuer's master key for card administration, in the data directory: 64 hex
/// digits, readable by the kiosk user only.
pub const ADMIN_KEY_FILE: &str = "card-admin.key";

/// The id the audit log gives a visit the kiosk resumed from its journal at start-up,
/// before anyone signed in.
pub const RESUME_OPERATOR: &str = "kiosk";

/// How long the kiosk waits at start for a card reader to appear.
const READER_WAIT: Duration = Duration::from_secs(30);

/// Why the kiosk did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApplianceError {
    /// The site configuration is missing or wrong.
    #[error(transparent)]
    Site(#[from] SiteError),
    /// The card administration key file is missing or malformed.
    #[error("カード発行鍵 {path} が使えません（{detail}）。ベンダーが 64 桁の16進数で置いてください（権限 0600）。\ncard administration key {path} is not usable ({detail}); the vendor puts it there as 64 hex digits, mode 0600")]
    AdminKey {
        /// The file.
        path: PathBuf,
        /// Why.
        detail: String,
    },
    /// No PC/SC reader, or not the one named.
    #[error("カードリーダーが見つかりません（{0}）。USB の接続と pcscd を確認してください。\nno card reader ({0}); check the USB connection and pcscd")]
    Reader(String),
    /// There is no display to open the windows on.
    #[error("画面がありません（WAYLAND_DISPLAY も DISPLAY もありません）。kiosk-session から起動してください。\nno display (neither WAYLAND_DISPLAY nor DISPLAY); start the kiosk through kiosk-session")]
    NoDisplay,
    /// The windows could not be opened or the display went away.
    #[error("画面を開けません: {0}\ncannot open the windows: {0}")]
    Display(String),
}

/// Everything the kiosk reads before it opens its windows.
#[derive(Debug)]
pub struct Prepared {
    /// The visit worker's configuration.
    pub worker: WorkerConfig,
    /// The screens' configuration.
    pub screens: KioskOptions,
}

/// Reads and checks the site configuration, the card administration key and the reader.
/// `reader`: a PC/SC reader name, or `None` for the first one pcscd lists.
pub fn prepare(data: &Path, reader: Option<&str>) -> Result<Prepared, ApplianceError> {
    let site = SiteConfig::load(data)?;
    site.check_files(data)?;
    let fees = site.fee_table(data)?;
    let admin_key = read_admin_key(&data.join(ADMIN_KEY_FILE))?;
    let reader = find_reader(reader, READER_WAIT)?;
    Ok(Prepared {
        worker: WorkerConfig {
            data: data.to_path_buf(),
            ca: site.ca_files(data),
            ca_url: site.ca.url.clone(),
            reader,
            card_left_after: Duration::from_secs(10),
            ca_timeout: Duration::from_secs(30),
            lockstep: false,
            admin_key,
        },
        screens: KioskOptions {
            data: data.to_path_buf(),
            key_order: match site.counter.pin_pad {
                PadLayout::Shuffled => KeyOrder::Shuffled,
                PadLayout::Fixed => KeyOrder::Fixed,
            },
            idle_timeout: Duration::from_secs(u64::from(site.counter.idle_timeout_secs)),
            fees,
        },
    })
}

/// Runs the kiosk until the display closes.
pub fn run(data: &Path, reader: Option<&str>) -> Result<(), ApplianceError> {
    if !super::demo::display_available() {
        return Err(ApplianceError::NoDisplay);
    }
    let prepared = prepare(data, reader)?;
    tracing::info!(reader = %prepared.worker.reader.to_string_lossy(), "kiosk starting");
    let operator = OperatorId::new(RESUME_OPERATOR).expect("a valid id");
    super::windows::run(prepared.worker, operator, prepared.screens).map_err(|e| ApplianceError::Display(e.to_string()))
}

/// The master key from its file: 64 hex digits, surrounding whitespace ignored.
pub fn read_admin_key(path: &Path) -> Result<MasterKey, ApplianceError> {
    let bad = |detail: String| ApplianceError::AdminKey { path: path.to_path_buf(), detail };
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?);
    let hex = text.trim();
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad("64 hex digits expected".into()));
    }
    let key = (0..32)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("checked hex"))
        .collect();
    Ok(MasterKey::new(Zeroizing::new(key)))
}

/// The named reader, or the first one pcscd lists; waits up to `wait` for one to appear
/// (a reader plugged in late, or pcscd still starting).
fn find_reader(name: Option<&str>, wait: Duration) -> Result<CString, ApplianceError> {
    let started = Instant::now();
    loop {
        let listed = crate::card::transport::establish()
            .and_then(|ctx| crate::card::transport::list_readers(&ctx))
            .map_err(|e| e.to_string());
        let found = match (&listed, name) {
            (Ok(readers), Some(name)) => readers.iter().find(|r| r.to_bytes() == name.as_bytes()).cloned(),
            (Ok(readers), None) => readers.first().cloned(),
            (Err(_), _) => None,
        };
        if let Some(reader) = found {
            return Ok(reader);
        }
        if started.elapsed() >= wait {
            let why = match (listed, name) {
                (Err(e), _) => e,
                (Ok(_), Some(name)) => format!("「{name}」がありません / {name} is not connected"),
                (Ok(_), None) => "0 台 / none connected".into(),
            };
            return Err(ApplianceError::Reader(why));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}
