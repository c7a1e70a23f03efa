//! `jpki-ca`: the reference prefectural CA that tests and the demo use as a real CMP peer.
//!
//! - [`material`]: roots, RA, CMP responder and TLS certificates, created on first start;
//! - [`store`]: SQLite (WAL) with certificates, revocations, CRL numbers, transactions, audit;
//! - [`issue`]: the JPKI issuance policy for residents' certificates;
//! - [`cmp`]: the CMP responder (ir, cr, p10cr, kur, certConf, rr, genm, pollReq);
//! - [`crl`]: full and per-municipality CRLs, streamed from the store;
//! - [`registry`]: 異動 notices that revoke signing certificates;
//! - [`server`]: HTTP and HTTPS (client certificate required) listeners.
//!
//! A test peer, never part of the appliance image: it listens on loopback, keeps its keys
//! in files, and has no operator interface. See `docs/ca-protocol.md`.

pub mod certs;
pub mod cmp;
pub mod crl;
pub mod issue;
pub mod material;
pub mod registry;
pub mod server;
pub mod store;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use crate::pki::jpki_profile::CertProfile;
use crate::pki::PkiError;

use material::Material;
use store::{Store, StoreError};

/// Errors of the reference CA.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaError {
    /// A file under the CA directory could not be read or written.
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
    /// A key file is unreadable or a key operation failed.
    #[error("key: {0}")]
    Key(String),
    /// Building or parsing a PKI structure failed.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// DER encoding or decoding failed.
    #[error("DER: {0}")]
    Der(#[from] der::Error),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The request is refused by issuance policy.
    #[error(transparent)]
    Refused(#[from] issue::Refusal),
    /// A stored value is not what the CA wrote (a corrupt or foreign database).
    #[error("corrupt store value: {0}")]
    Corrupt(&'static str),
    /// A registry notice is malformed.
    #[error("bad registry notice: {0}")]
    BadNotice(String),
    /// A thread panicked while holding the store (the CA must be restarted).
    #[error("store lock poisoned")]
    Poisoned,
    /// TLS set-up failed.
    #[error("TLS: {0}")]
    Tls(String),
}

/// Run-time settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// The CA directory.
    pub dir: PathBuf,
    /// Delay before issued certificates are released (0 = answer at once).
    pub poll_delay_ms: u64,
    /// Lifetime of a CRL (thisUpdate to nextUpdate), seconds.
    pub crl_lifetime_secs: i64,
    /// Extra DNS names or addresses for the TLS certificate.
    pub hostnames: Vec<String>,
}

impl Config {
    /// Defaults for a CA directory: no polling, CRLs valid for a day.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Config { dir: dir.into(), poll_delay_ms: 0, crl_lifetime_secs: 86_400, hostnames: vec![] }
    }
}

/// The CA: immutable key material, the store, and the current CRLs.
pub struct Ca {
    /// Keys and infrastructure certificates.
    pub material: Material,
    /// Settings.
    pub config: Config,
    store: Mutex<Store>,
    base_url: RwLock<String>,
    crls: Mutex<HashMap<String, Arc<crl::Crl>>>,
}

impl Ca {
    /// Opens the CA in `config.dir`, creating keys and certificates on first start.
    pub fn open(config: Config) -> Result<Self, CaError> {
        std::fs::create_dir_all(&config.dir).map_err(|e| CaError::Io(config.dir.display().to_string(), e))?;
        let material = Material::load_or_create(&config.dir, &config.hostnames)?;
        let store = Store::open(&config.dir.join("ca.sqlite"))?;
        store.audit("ca", "start", "store opened")?;
        Ok(Ca {
            material,
            config,
            store: Mutex::new(store),
            base_url: RwLock::new("http://127.0.0.1".into()),
            crls: Mutex::new(HashMap::new()),
        })
    }

    /// Sets the base URL of the plain HTTP listener (CRL distribution points name it).
    pub fn set_base_url(&self, url: String) {
        if let Ok(mut b) = self.base_url.write() {
            *b = url;
        }
    }

    /// The base URL of the plain HTTP listener.
    pub fn base_url(&self) -> String {
        self.base_url.read().map(|b| b.clone()).unwrap_or_default()
    }

    /// The CA directory.
    pub fn dir(&self) -> &Path {
        &self.config.dir
    }

    /// Runs `f` with the store (tests and benchmarks inspect it this way).
    pub fn with_store<T>(&self, f: impl FnOnce(&mut Store) -> T) -> Result<T, CaError> {
        let mut s = self.store.lock().map_err(|_| CaError::Poisoned)?;
        Ok(f(&mut s))
    }

    /// Appends an audit record; failures are logged, not fatal to the request.
    pub(crate) fn audit(&self, actor: &str, action: &str, detail: &str) {
        let r = self.store.lock().map_err(|_| CaError::Poisoned).and_then(|s| Ok(s.audit(actor, action, detail)?));
        if let Err(e) = r {
            tracing::error!(error = %e, "audit record lost");
        }
    }

    /// Issues a new CRL for a scope now and makes it the one served.
    pub fn reissue_crl(&self, profile: CertProfile, municipality: Option<&str>) -> Result<Arc<crl::Crl>, CaError> {
        let base = self.base_url();
        let built = {
            let store = self.store.lock().map_err(|_| CaError::Poisoned)?;
            let c = crl::build(
                &store,
                &self.material,
                profile,
                municipality,
                &base,
                certs::unix_now(),
                self.config.crl_lifetime_secs,
            )?;
            store.audit(
                "ca",
                "crl-issued",
                &format!("scope={} number={} entries={}", crl::scope(profile, municipality), c.number, c.entries),
            )?;
            Arc::new(c)
        };
        self.crls
            .lock()
            .map_err(|_| CaError::Poisoned)?
            .insert(crl::scope(profile, municipality), built.clone());
        Ok(built)
    }

    /// The current CRL of a scope, re-issued when missing or past half its lifetime.
    pub fn current_crl(&self, profile: CertProfile, municipality: Option<&str>) -> Result<Arc<crl::Crl>, CaError> {
        let key = crl::scope(profile, municipality);
        let fresh_until = |c: &crl::Crl| c.next_update - self.config.crl_lifetime_secs / 2;
        if let Some(c) = self.crls.lock().map_err(|_| CaError::Poisoned)?.get(&key) {
            if certs::unix_now() < fresh_until(c) {
                return Ok(c.clone());
            }
        }
        self.reissue_crl(profile, municipality)
    }

    /// Re-issues every CRL served so far whose schedule is due (called periodically).
    pub fn refresh_due_crls(&self) -> Result<(), CaError> {
        let due: Vec<String> = {
            let crls = self.crls.lock().map_err(|_| CaError::Poisoned)?;
            let now = certs::unix_now();
            crls.iter()
                .filter(|(_, c)| now >= c.next_update - self.config.crl_lifetime_secs / 2)
                .map(|(k, _)| k.clone())
                .collect()
        };
        for key in due {
            let (p, m) = key.split_once('/').map(|(p, m)| (p, Some(m))).unwrap_or((key.as_str(), None));
            if let Some(profile) = CertProfile::from_str_name(p) {
                self.reissue_crl(profile, m)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! A throw-away CA in a temporary directory for unit tests.
    use super::{Ca, Config};

    /// Opens a fresh CA; keep the directory alive as long as the CA.
    pub fn ca() -> (tempfile::TempDir, Ca) {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = Ca::open(Config::new(dir.path().join("ca"))).expect("open CA");
        ca.set_base_url("http://127.0.0.1:1".into());
        (dir, ca)
    }
}
