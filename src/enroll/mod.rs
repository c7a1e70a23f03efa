//! The kiosk's CMP enrolment client: asks the prefectural CA for a
//! resident's certificates, confirms them once they are on the card, revokes
//! them, and fetches the CA certificates.
//!
//! The workflow drives the [`Enroller`] trait. [`client::CmpClient`] implements
//! it over any [`Transport`]; [`http::HttpTransport`] is the real one (HTTPS
//! with the kiosk's RA client certificate). Message building and checking is
//! pure and lives in [`cmp`]; protection in [`protect`]; certificate path
//! checks in [`chain`]. Nothing here touches the card or the journal: the
//! caller supplies the transaction identifiers (so a retry after a crash
//! re-sends the same transaction) and persists what comes back.

pub mod chain;
pub mod client;
pub mod cmp;
pub mod error;
pub mod http;
pub mod personal;
pub mod protect;
pub mod wire;

use std::fmt;
use std::time::SystemTime;

use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::ext::pkix::crl::CrlReason;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::Certificate;

pub use error::{EnrollError, FailInfo, Failure, Notice, Recovery};
pub use personal::PersonalData;

/// Which CMP request starts the transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// `ir`: first certificates on a card.
    Initial,
    /// `cr`: a further certificate for a known card.
    Additional,
    /// `kur`: renewal with new keys.
    KeyUpdate,
}

/// Which JPKI certificate a key is for; the value is the certReqId.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CertProfile {
    /// 利用者証明用電子証明書 (certReqId 0, no personal data).
    UserAuthentication = 0,
    /// 署名用電子証明書 (certReqId 1, carries the personal data).
    Signing = 1,
}

impl CertProfile {
    /// certReqId used for this profile in every request.
    pub fn cert_req_id(self) -> i64 {
        self as i64
    }

    /// certificatePolicies OID of the profile.
    pub fn policy(self) -> der::oid::ObjectIdentifier {
        match self {
            CertProfile::UserAuthentication => {
                der::oid::ObjectIdentifier::new_unwrap("1.2.392.200149.8.5.1.3.30")
            }
            CertProfile::Signing => {
                der::oid::ObjectIdentifier::new_unwrap("1.2.392.200149.8.5.1.1.20")
            }
        }
    }
}

/// One certificate wanted: its profile and the card's public key for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRequest {
    /// Which certificate.
    pub profile: CertProfile,
    /// The key pair's public half as generated on the card.
    pub public_key: SubjectPublicKeyInfoOwned,
}

/// The regInfo `utf8Pairs` the CA uses for validity and CRL partition.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RegInfo {
    /// Holder's birth date, EYYYYMMDD.
    pub birth_date: Option<String>,
    /// Card expiry, YYYYMMDD.
    pub card_expiry: Option<String>,
    /// Six-digit municipality code (全国地方公共団体コード).
    pub municipality_code: Option<String>,
}

impl fmt::Debug for RegInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The birth date is personal data; the others are not.
        f.debug_struct("RegInfo")
            .field(
                "birth_date",
                &self.birth_date.as_ref().map(|_| "<redacted>"),
            )
            .field("card_expiry", &self.card_expiry)
            .field("municipality_code", &self.municipality_code)
            .finish()
    }
}

impl RegInfo {
    /// `name?value%` pairs (RFC 4211 §7.1), or `None` when all are absent.
    pub fn utf8_pairs(&self) -> Option<String> {
        let mut s = String::new();
        for (k, v) in [
            ("jpki-birth-date", &self.birth_date),
            ("card-expiry", &self.card_expiry),
            ("municipality-code", &self.municipality_code),
        ] {
            if let Some(v) = v {
                s.push_str(k);
                s.push('?');
                s.push_str(v);
                s.push('%');
            }
        }
        (!s.is_empty()).then_some(s)
    }
}

/// Identifiers of one CMP transaction. The journal persists these before the
/// first send, so a retry (even after a crash) re-sends the same
/// transactionID with the same nonces and the CA answers it idempotently.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Transaction {
    /// transactionID (128 bits).
    pub id: [u8; 16],
    /// Seed from which every senderNonce and PBM salt of the transaction is
    /// derived, one per step.
    pub seed: [u8; 16],
}

impl fmt::Debug for Transaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Transaction({})", hex::encode(self.id))
    }
}

/// Step numbers within a transaction (each has its own nonce).
pub(crate) mod step {
    /// The request (ir/cr/kur/rr/genm).
    pub const REQUEST: u32 = 0;
    /// The n-th pollReq is `POLL + n`.
    pub const POLL: u32 = 1;
    /// certConf.
    pub const CONFIRM: u32 = 0xFFFF;
}

impl Transaction {
    /// A fresh transaction from the OS random generator.
    pub fn random() -> Self {
        let mut id = [0; 16];
        let mut seed = [0; 16];
        OsRng.fill_bytes(&mut id);
        OsRng.fill_bytes(&mut seed);
        Transaction { id, seed }
    }

    fn derive(&self, label: &[u8], step: u32) -> [u8; 16] {
        let d = Sha256::new()
            .chain_update(label)
            .chain_update(self.seed)
            .chain_update(step.to_be_bytes())
            .finalize();
        let mut out = [0; 16];
        out.copy_from_slice(&d[..16]);
        out
    }

    /// senderNonce of a step.
    pub fn nonce(&self, step: u32) -> [u8; 16] {
        self.derive(b"nonce", step)
    }

    /// PBM salt of a step.
    pub fn salt(&self, step: u32) -> [u8; 16] {
        self.derive(b"salt", step)
    }
}

/// What the kiosk asks the CA for.
#[derive(Debug, Clone)]
pub struct EnrollRequest {
    /// ir, cr or kur.
    pub kind: RequestKind,
    /// One entry per certificate wanted (auth and/or signing).
    pub keys: Vec<KeyRequest>,
    /// Required when a signing certificate is wanted.
    pub personal_data: Option<PersonalData>,
    /// regInfo pairs.
    pub reg_info: RegInfo,
    /// Identifiers (persisted by the caller).
    pub transaction: Transaction,
}

/// One certificate the CA issued, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCert {
    /// Which certificate.
    pub profile: CertProfile,
    /// The certificate (chains to a configured root, key equals the one sent).
    pub certificate: Certificate,
}

/// What [`Enroller::enroll`] returns: checked certificates plus what is needed
/// to confirm them later (possibly after a restart).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    /// One per key requested.
    pub certificates: Vec<IssuedCert>,
    /// The path from the certificates to the root(s) they chain to.
    pub ca_chain: Vec<Certificate>,
    /// The transaction to confirm.
    pub transaction: Transaction,
    /// senderNonce of the CA's last message (our certConf's recipNonce).
    pub ca_nonce: Vec<u8>,
}

/// A revocation request.
#[derive(Debug, Clone)]
pub struct RevokeRequest {
    /// Serial number of the certificate to revoke.
    pub serial: SerialNumber,
    /// Its issuer.
    pub issuer: Name,
    /// RFC 5280 reason.
    pub reason: CrlReason,
    /// When the key was (or may have been) compromised.
    pub invalidity_date: Option<SystemTime>,
    /// Identifiers (persisted by the caller).
    pub transaction: Transaction,
}

/// Progress of a long exchange, for the staff screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Progress {
    /// Request sent (attempt number, from 1).
    Sent {
        /// 1 for the first attempt.
        attempt: u32,
    },
    /// The CA is still working; next poll after this many seconds.
    Waiting {
        /// Polls so far.
        polls: u32,
        /// Seconds until the next poll.
        check_after: u64,
    },
}

/// Moves one DER-encoded CMP message to the CA and returns its answer.
pub trait Transport {
    /// POST `request` and return the response body. Retrying the identical
    /// bytes is the transport's business; it must never change them.
    fn exchange(&self, request: &[u8]) -> Result<Vec<u8>, EnrollError>;
}

/// The kiosk's view of the CA.
pub trait Enroller {
    /// Ask for certificates; returns them only after every check passed. Does
    /// not confirm them: call [`Enroller::confirm`] after writing to the card.
    fn enroll(
        &self,
        req: &EnrollRequest,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Issued, EnrollError>;
    /// certConf → pkiConf, once the certificates are on the card.
    fn confirm(&self, issued: &Issued) -> Result<(), EnrollError>;
    /// rr → rp.
    fn revoke(&self, req: &RevokeRequest) -> Result<(), EnrollError>;
    /// genm caCerts → genp: the CA certificates.
    fn ca_certs(&self, transaction: &Transaction) -> Result<Vec<Certificate>, EnrollError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reg_info_pairs_skip_absent_values() {
        let r = RegInfo {
            birth_date: Some("319800217".into()),
            card_expiry: None,
            municipality_code: Some("131016".into()),
        };
        assert_eq!(
            r.utf8_pairs().unwrap(),
            "jpki-birth-date?319800217%municipality-code?131016%"
        );
        assert_eq!(RegInfo::default().utf8_pairs(), None);
        assert!(!format!("{r:?}").contains("3198"));
    }

    #[test]
    fn transaction_derivations_are_stable_and_distinct() {
        let t = Transaction {
            id: [1; 16],
            seed: [2; 16],
        };
        assert_eq!(t.nonce(step::REQUEST), t.nonce(step::REQUEST));
        assert_ne!(t.nonce(step::REQUEST), t.nonce(step::CONFIRM));
        assert_ne!(t.nonce(step::REQUEST), t.salt(step::REQUEST));
        assert_ne!(Transaction::random(), Transaction::random());
    }
}
