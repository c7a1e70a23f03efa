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
pub mod protect;

use std::fmt;
use std::time::SystemTime;

use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::ext::pkix::crl::CrlReason;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::Certificate;

pub use crate::pki::jpki_profile::{BirthDate, CertProfile, PersonalData, RegInfo};
pub use error::{EnrollError, FailInfo, Failure, Notice, Recovery};

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

/// One certificate wanted: its profile and the card's public key for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRequest {
    /// Which certificate.
    pub profile: CertProfile,
    /// The key pair's public half as generated on the card.
    pub public_key: SubjectPublicKeyInfoOwned,
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
    /// A holder query sent in a transaction that also carries an rr.
    pub const QUERY: u32 = 0xFFFE;
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
    /// certConf refusing the certificates (they could not be written to the
    /// card) → pkiConf; the CA then treats them as never delivered. `reason`
    /// is technical text for the CA's audit, never personal data.
    fn reject(&self, issued: &Issued, reason: &str) -> Result<(), EnrollError>;
    /// rr → rp.
    fn revoke(&self, req: &RevokeRequest) -> Result<(), EnrollError>;
    /// genm caCerts → genp: the CA certificates.
    fn ca_certs(&self, transaction: &Transaction) -> Result<Vec<Certificate>, EnrollError>;
    /// One rr for several certificates in `reqs[0]`'s transaction → rp. The default sends
    /// one rr per certificate (each request must then carry its own transaction).
    fn revoke_all(&self, reqs: &[RevokeRequest]) -> Result<(), EnrollError> {
        reqs.iter().try_for_each(|r| self.revoke(r))
    }
    /// genm holder query → genp: the certificates the CA issued for a resident, a card or
    /// serials, each with its revocation state. The default: not supported.
    fn holder_certs(
        &self,
        _query: &crate::pki::holder_query::HolderQuery,
        _transaction: &Transaction,
    ) -> Result<Vec<crate::pki::holder_query::HolderCert>, EnrollError> {
        Err(EnrollError::Config(
            "this enroller has no holder query".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
