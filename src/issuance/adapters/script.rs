//! A visit run from a prepared script, in a process of its own: the real card, CA,
//! journal, audit and registry adapters, with staff and resident answers taken from a
//! [`Script`] (the form and identity documents as JSON) and the PINs from the caller.
//! Used by the hidden `jpki-kiosk visit-run` subcommand, which the crash-resume tests
//! start and kill.
//!
//! What it is not: the counter's UI. PINs come in as zeroizing strings, never as
//! arguments or script fields.

use std::ffi::CString;
use std::path::{Path, PathBuf};

use rand_core::OsRng;
use rsa::pkcs8::DecodePrivateKey;
use serde::{Deserialize, Serialize};
use x509_cert::Certificate;
use zeroize::Zeroizing;

use super::ca::{CaDirectory, CmpCa};
use super::card::PcscCard;
use super::cases::{Records, SqliteCases};
use super::printer::{CounterSetup, LedgerPrinter};
use super::store::{SqliteAudit, SqliteJournal};
use super::{Counter, PadEntry, SystemClock};
use crate::card::admin_key::DEMO_MASTER_KEY;
use crate::enroll::client::{ClientConfig, CmpClient};
use crate::enroll::http::{HttpConfig, HttpTransport};
use crate::enroll::protect::{Credential, RaKey, ResponseTrust};
use crate::issuance::command::{Command, PadCommand, Screen};
use crate::issuance::driver::{Driver, DriverError, Ports, Status};
use crate::issuance::event::{Event, Opening, Visit};
use crate::issuance::model::{Form, IdDocument, PresenterKind, Seed, Slot, VisitId};
use crate::registry::sqlite::SqliteRegistry;
use crate::staff::OperatorId;

/// What staff enter for the visit.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Script {
    /// The application form.
    pub form: Form,
    /// Who presents and the documents they showed.
    pub presenter: PresenterKind,
    /// The identity documents.
    pub documents: Vec<IdDocument>,
}

/// The counter, answering from a script; the resident types `auth`/`sign` on the pad.
pub struct ScriptedCounter {
    script: Script,
    auth: Zeroizing<String>,
    sign: Zeroizing<String>,
}

impl std::fmt::Debug for ScriptedCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ScriptedCounter(..)")
    }
}

impl ScriptedCounter {
    /// A counter answering from `script`, with the PINs the resident will type.
    pub fn new(
        script: Script,
        auth: Zeroizing<String>,
        sign: Zeroizing<String>,
    ) -> ScriptedCounter {
        ScriptedCounter { script, auth, sign }
    }

    fn typed(&self, slot: Slot) -> Zeroizing<String> {
        match slot {
            Slot::Auth => self.auth.clone(),
            Slot::Sign => self.sign.clone(),
        }
    }
}

impl Counter for ScriptedCounter {
    fn answer(&mut self, command: &Command, pad: &mut PadEntry<'_>) -> Option<Event> {
        match command {
            Command::Show {
                screen: Screen::Form,
            } => Some(Event::FormSubmitted {
                form: self.script.form.clone(),
            }),
            Command::Show {
                screen: Screen::IdentityCheck,
            } => Some(Event::IdentityRecorded {
                presenter: self.script.presenter,
                documents: self.script.documents.clone(),
            }),
            Command::Show {
                screen: Screen::CollectFee { amount },
            } => Some(Event::FeePaid { amount: *amount }),
            Command::Pad {
                pad: PadCommand::AskNew { slot },
            } => {
                pad.enter_new(*slot, self.typed(*slot)).ok()?;
                Some(Event::PadReady { slot: *slot })
            }
            Command::Pad {
                pad: PadCommand::AskConfirm { slot },
            } => {
                pad.enter_confirmation(*slot, self.typed(*slot)).ok()?;
                Some(Event::PadConfirmed { slot: *slot })
            }
            _ => None,
        }
    }
}

/// Where a scripted run finds its peers and files.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Holds `journal.db`, `audit.db`, `registry.db` (seeded with the sample if new),
    /// `cases.db` (the proxy case file), `kiosk.db` (ledger and receipt jobs),
    /// `counter.json` (optional) and `receipts/`.
    pub data: PathBuf,
    /// The files for talking to the CA.
    pub ca: CaFiles,
    /// The CA's CMP URL.
    pub ca_url: String,
    /// The PC/SC reader.
    pub reader: CString,
    /// The visit id, for a new visit.
    pub visit: String,
    /// The operator signed in.
    pub operator: OperatorId,
    /// Abort right after this many journal writes (crash injection).
    pub crash_after_record: Option<u64>,
}

/// The files the kiosk needs to talk to its CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaFiles {
    /// PEM roots the CA's TLS certificate must chain to.
    pub tls_roots: PathBuf,
    /// The RA (kiosk) certificate, PEM: TLS client certificate and CMP signer.
    pub ra_cert: PathBuf,
    /// Its PKCS#8 PEM private key.
    pub ra_key: PathBuf,
    /// PEM files of the CA certificates that issued certificates and the CA's responses
    /// must chain to (a file may hold several).
    pub anchors: Vec<PathBuf>,
}

impl CaFiles {
    /// The layout `jpki-ca serve --dir DIR` writes: `tls-ca.pem`, `ra.pem`, `ra.key`,
    /// `sign-ca.pem`, `auth-ca.pem`.
    pub fn in_dir(dir: &Path) -> CaFiles {
        CaFiles {
            tls_roots: dir.join("tls-ca.pem"),
            ra_cert: dir.join("ra.pem"),
            ra_key: dir.join("ra.key"),
            anchors: vec![dir.join("sign-ca.pem"), dir.join("auth-ca.pem")],
        }
    }
}

/// Why a scripted run could not start or finish.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// A file the run needs could not be read or parsed.
    #[error("{what}: {detail}")]
    Setup {
        /// Which file or peer.
        what: &'static str,
        /// Why.
        detail: String,
    },
    /// The driver stopped.
    #[error(transparent)]
    Driver(#[from] DriverError),
}

fn setup(what: &'static str) -> impl Fn(String) -> RunError {
    move |detail| RunError::Setup { what, detail }
}

/// The kiosk's CMP client for the CA of `cfg`: HTTPS to `ca_url` trusting the TLS roots,
/// with the RA certificate and key as TLS client identity and as the signer of every
/// request, and the anchors as the roots of issued certificates and of the CA's responses.
pub fn cmp_client(cfg: &RunConfig) -> Result<CmpClient<HttpTransport>, RunError> {
    cmp_client_with(cfg, |_| {})
}

/// [`cmp_client`] with the HTTP settings adjusted by `tweak` (timeouts, say).
pub fn cmp_client_with(
    cfg: &RunConfig,
    tweak: impl FnOnce(&mut HttpConfig),
) -> Result<CmpClient<HttpTransport>, RunError> {
    ca_client(&cfg.ca_url, &cfg.ca, tweak)
}

/// The kiosk's CMP client for the CA at `url` (its `/pkix/` endpoint) with `files`.
pub fn ca_client(
    url: &str,
    files: &CaFiles,
    tweak: impl FnOnce(&mut HttpConfig),
) -> Result<CmpClient<HttpTransport>, RunError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|e| setup("CA files")(format!("{}: {e}", path.display())))
    };
    let certs = |path: &Path| -> Result<Vec<Certificate>, RunError> {
        Certificate::load_pem_chain(&read(path)?)
            .map_err(|e| setup("CA files")(format!("{}: {e}", path.display())))
    };
    let mut roots = Vec::new();
    for anchor in &files.anchors {
        roots.extend(certs(anchor)?);
    }
    let key_pem = Zeroizing::new(
        String::from_utf8(read(&files.ra_key)?).map_err(|e| setup("RA key")(e.to_string()))?,
    );
    let key =
        rsa::RsaPrivateKey::from_pkcs8_pem(&key_pem).map_err(|e| setup("RA key")(e.to_string()))?;
    let ra_cert = certs(&files.ra_cert)?
        .into_iter()
        .next()
        .ok_or_else(|| setup("RA certificate")("no certificate in the file".into()))?;
    let credential = Credential::Signature {
        key: RaKey::from_rsa(&key).map_err(|e| setup("RA key")(e.to_string()))?,
        cert: Box::new(ra_cert),
        chain: vec![],
    };
    let mut http = HttpConfig::new(url.to_string());
    http.tls_roots_pem = read(&files.tls_roots)?;
    let mut identity = read(&files.ra_cert)?;
    identity.extend(read(&files.ra_key)?.iter());
    http.client_identity_pem = Some(Zeroizing::new(identity));
    tweak(&mut http);
    let transport = HttpTransport::new(&http).map_err(|e| setup("HTTPS")(e.to_string()))?;
    let trust = ResponseTrust {
        signer_anchors: roots.clone(),
        mac_secret: None,
    };
    Ok(CmpClient::new(
        transport,
        ClientConfig::new(credential, trust, roots),
    ))
}

/// Runs the open visit to its end (resuming it from the journal), or a new one when none
/// is open. Returns where it stopped.
pub fn run(cfg: &RunConfig, counter: ScriptedCounter) -> Result<Status, RunError> {
    let ctx = crate::card::transport::establish().map_err(|e| setup("pcscd")(e.to_string()))?;
    let mut card = PcscCard::new(ctx, cfg.reader.clone(), &DEMO_MASTER_KEY)
        .with_directory(Box::new(CaDirectory(cmp_client(cfg)?)));
    let mut ca = CmpCa::new(cmp_client(cfg)?);
    let mut registry = SqliteRegistry::open(&cfg.data.join("registry.db"))
        .map_err(|e| setup("registry")(e.to_string()))?;
    if registry
        .is_empty()
        .map_err(|e| setup("registry")(e.to_string()))?
    {
        registry
            .seed_sample()
            .map_err(|e| setup("registry")(e.to_string()))?;
    }
    let journal = SqliteJournal::open(&cfg.data.join("journal.db"))
        .map_err(|e| setup("journal")(e.to_string()))?;
    let audit = SqliteAudit::open(&cfg.data.join("audit.db"), cfg.operator.clone())
        .map_err(|e| setup("audit")(e.to_string()))?;
    // The counter's setup (DATA/counter.json): fee table, printer, slips' heading.
    let desk = CounterSetup::load(&cfg.data).map_err(|e| setup("counter setup")(e.to_string()))?;
    let fees = desk.fees.clone();
    let printer = LedgerPrinter::open(&cfg.data, desk, cfg.operator.clone())
        .map_err(|e| setup("cash desk")(e.to_string()))?;
    let ports = Ports {
        card: Box::new(&mut card),
        ca: Box::new(&mut ca),
        registry: Box::new(Records {
            registry,
            cases: SqliteCases::open(&cfg.data.join("cases.db"))
                .map_err(|e| setup("case file")(e.to_string()))?,
        }),
        printer: Box::new(printer),
        counter: Box::new(counter),
        journal: Box::new(journal),
        audit: Box::new(audit),
        clock: Box::new(SystemClock),
    };
    let crash = cfg.crash_after_record;
    let journal_has_open = SqliteJournal::open(&cfg.data.join("journal.db"))
        .and_then(|j| super::JournalPort::unfinished(&j))
        .map_err(|e| setup("journal")(e.to_string()))?
        .is_some();
    let (_, status) = if journal_has_open {
        // Crash injection applies to new visits only: a resumed one must finish.
        Driver::resume(ports)?.ok_or_else(|| setup("journal")("the open visit vanished".into()))?
    } else {
        let opening = Opening {
            visit: VisitId(cfg.visit.clone()),
            kind: Visit::NewIssuance,
            date: time::OffsetDateTime::now_utc().date(),
            operator: cfg.operator.as_str().to_owned(),
            seed: Seed::from_rng(&mut OsRng),
            fees,
            identity: Default::default(),
        };
        Driver::open_with(ports, opening, crash)?
    };
    Ok(status)
}
