//! The CA adapter: runs the visit's CA commands with the CMP client
//! ([`CmpClient`](crate::enroll::client::CmpClient), HTTPS with the RA certificate) and
//! answers with events.
//!
//! The visit's seed names the transaction: transactionID = `Seed::transaction`, and the
//! per-step nonces derive from `Seed::sender_nonce`, so a request re-sent after a failure
//! or a restart is the same transaction and the CA answers it from its store. certConf
//! needs the CA's last nonce: when it is not in memory (after a restart) the journaled
//! request is sent again first, which the CA answers idempotently.
//!
//! `FindLive` is the CA's holder query (genm, `docs/ca-protocol.md` "Holder query") by
//! resident id; `Revoke` first asks the same query for the serials (to learn each one's
//! issuer and whether it is still live) and then sends one `rr` for the live ones in the
//! visit's revocation transaction, so a re-sent revocation is the same request. After a
//! renewal (`kur`) is confirmed, the certificates it renews are revoked as superseded.
//! Every request carries the regInfo pairs `resident-id`, `card-id` and, with a signing
//! certificate, `jpki-birth-date`.
//!
//! What it is not: a retry policy (the visit decides when to re-send) or a certificate
//! store.

use std::collections::BTreeMap;

use der::Encode;
use sha2::{Digest, Sha256};
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::ext::pkix::crl::CrlReason;

use super::{current_cert, CaPort, CertDirectory};
use crate::pki::holder_query::{HolderCert, HolderQuery};
use crate::enroll::{
    BirthDate, CertProfile, EnrollError, EnrollRequest, Enroller, Issued, KeyRequest, PersonalData,
    RegInfo, RequestKind as CmpKind, RevokeRequest, Transaction,
};
use crate::issuance::command::{CaCommand, Command, Holder, RequestKind, RevocationReason};
use crate::issuance::event::{CaRejection, Event, IssuedCert};
use crate::issuance::journal::JournalRecord;
use crate::issuance::model::{CardSerial, CurrentCert, Slot, SubstitutedField, TransactionId};
use crate::rules::repertoire::{self, Substitution};
use crate::rules::wareki::Era;

/// The CA over any [`Enroller`] (the HTTPS CMP client at the counter).
pub struct CmpCa<E> {
    enroller: E,
    /// Requests sent, by transaction (to rebuild a confirmation after a restart).
    sent: BTreeMap<[u8; 16], EnrollRequest>,
    /// Answers received, by transaction.
    issued: BTreeMap<[u8; 16], Issued>,
    /// The certificates a renewal replaces, by its transaction (revoked once confirmed).
    renews: BTreeMap<[u8; 16], Vec<String>>,
}

impl<E> std::fmt::Debug for CmpCa<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CmpCa")
            .field("transactions", &self.sent.len())
            .finish_non_exhaustive()
    }
}

/// Why a Submit could not be turned into a CMP request (a bug or bad journal, not the CA).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// A key is not a SubjectPublicKeyInfo.
    #[error("the card's public key for {0:?} does not decode")]
    BadKey(Slot),
    /// The holder's name or address cannot take the chosen substitutes.
    #[error("substitutes: {0}")]
    Substitutes(#[from] repertoire::SubstituteError),
    /// The birth date is before the eras the certificate knows.
    #[error("birth date outside the known eras")]
    BirthDate,
}

/// The personal data of the signing certificate from the holder's registered items.
pub fn personal_data(holder: &Holder) -> Result<PersonalData, RequestError> {
    let chosen = |field: SubstitutedField| -> Vec<Substitution> {
        holder
            .substitutes
            .iter()
            .filter(|s| s.field == field)
            .map(|s| Substitution {
                index: s.index,
                replacement: s.replacement.to_string(),
            })
            .collect()
    };
    let name = repertoire::apply(&holder.name, &chosen(SubstitutedField::Name))?;
    let address = repertoire::apply(&holder.address, &chosen(SubstitutedField::Address))?;
    let era = Era::of(holder.birth_date).ok_or(RequestError::BirthDate)?;
    let d = holder.birth_date;
    Ok(PersonalData {
        name: name.text().to_owned(),
        name_substitute_positions: name.positions().to_owned(),
        sex: holder.sex.to_string(),
        birth_date: format!(
            "{}{:04}{:02}{:02}",
            era.cert_digit(),
            d.year(),
            u8::from(d.month()),
            d.day()
        ),
        address: address.text().to_owned(),
        address_substitute_positions: address.positions().to_owned(),
    })
}

fn request_of(command: &CaCommand) -> Option<Result<EnrollRequest, RequestError>> {
    let CaCommand::Submit {
        kind,
        transaction,
        sender_nonce,
        keys,
        holder,
        card,
        resident,
    } = command
    else {
        return None;
    };
    Some((|| {
        let mut wanted = Vec::new();
        for key in keys {
            let public_key = <SubjectPublicKeyInfoOwned as der::Decode>::from_der(&key.spki)
                .map_err(|_| RequestError::BadKey(key.slot))?;
            let profile = match key.slot {
                Slot::Auth => CertProfile::UserAuth,
                Slot::Sign => CertProfile::Signing,
            };
            wanted.push(KeyRequest {
                profile,
                public_key,
            });
        }
        let personal_data = match holder {
            Some(h) if keys.iter().any(|k| k.slot == Slot::Sign) => Some(personal_data(h)?),
            _ => None,
        };
        Ok(EnrollRequest {
            kind: match kind {
                RequestKind::Initial => CmpKind::Initial,
                RequestKind::KeyUpdate { .. } => CmpKind::KeyUpdate,
            },
            keys: wanted,
            personal_data,
            reg_info: reg_info(
                holder.as_ref(),
                card,
                resident.as_ref().map(|r| r.0.as_str()),
            )?,
            transaction: Transaction {
                id: transaction.0,
                seed: *sender_nonce,
            },
        })
    })())
}

/// The regInfo pairs of a request: who the certificates are for (so that `FindLive` and
/// 異動 notices find them), and the birth date that bounds the validity.
fn reg_info(
    holder: Option<&Holder>,
    card: &CardSerial,
    resident: Option<&str>,
) -> Result<RegInfo, RequestError> {
    let birth_date = match holder {
        Some(h) => {
            let era = Era::of(h.birth_date).ok_or(RequestError::BirthDate)?;
            Some(BirthDate {
                era: era.cert_digit(),
                date: h.birth_date,
            })
        }
        None => None,
    };
    let id = |v: &str| {
        (!v.is_empty()
            && v.len() <= 64
            && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        .then(|| v.to_owned())
    };
    Ok(RegInfo {
        birth_date,
        card_id: id(&card.0),
        resident_id: resident.and_then(id),
        ..RegInfo::default()
    })
}

/// The transaction that revokes what a renewal replaced: derived from the renewal's, so a
/// re-sent confirmation re-sends the same revocation.
fn superseding_tx(renewal: TransactionId) -> [u8; 16] {
    let d = Sha256::new()
        .chain_update(b"jpki-kiosk superseded")
        .chain_update(renewal.0)
        .finalize();
    let mut out = [0; 16];
    out.copy_from_slice(&d[..16]);
    out
}

fn serial_hex(c: &HolderCert) -> String {
    hex::encode_upper(c.certificate.tbs_certificate.serial_number.as_bytes())
}

impl<E: Enroller> CmpCa<E> {
    /// A CA adapter over `enroller`.
    pub fn new(enroller: E) -> CmpCa<E> {
        CmpCa {
            enroller,
            sent: BTreeMap::new(),
            issued: BTreeMap::new(),
            renews: BTreeMap::new(),
        }
    }

    /// `FindLive`: the resident's certificates the CA holds unrevoked.
    fn find_live(&mut self, transaction: TransactionId, resident: &str) -> Event {
        let query = HolderQuery {
            resident_id: Some(resident.to_owned()),
            ..HolderQuery::default()
        };
        let tx = Transaction {
            id: transaction.0,
            seed: transaction.0,
        };
        match self.enroller.holder_certs(&query, &tx) {
            Ok(found) => Event::CurrentCerts {
                certs: found
                    .iter()
                    .filter(|c| !c.revoked)
                    .filter_map(|c| current_cert(&c.certificate))
                    .collect(),
            },
            Err(e) => answer_for_error(transaction, &e),
        }
    }

    /// `rr` for those of `serials` the CA still holds live, in transaction `id`; nothing to
    /// send when none is (already revoked: a re-sent revocation after a lost answer).
    fn revoke(
        &mut self,
        transaction: TransactionId,
        id: [u8; 16],
        serials: &[String],
        reason: CrlReason,
    ) -> Event {
        if serials.is_empty() {
            return Event::CaRevoked { transaction };
        }
        let query = HolderQuery {
            serials: serials.iter().map(|s| s.to_ascii_uppercase()).collect(),
            ..HolderQuery::default()
        };
        let tx = Transaction { id, seed: id };
        let found = match self.enroller.holder_certs(&query, &tx) {
            Ok(found) => found,
            Err(e) => return answer_for_error(transaction, &e),
        };
        let mut reqs = Vec::new();
        for serial in &query.serials {
            let Some(cert) = found.iter().find(|c| &serial_hex(c) == serial) else {
                tracing::warn!(serial = %serial, "the CA does not know a certificate to revoke");
                return Event::CaRejected {
                    transaction,
                    rejection: CaRejection {
                        fail_info: vec!["badCertId".into()],
                    },
                };
            };
            if cert.revoked {
                continue;
            }
            reqs.push(RevokeRequest {
                serial: cert.certificate.tbs_certificate.serial_number.clone(),
                issuer: cert.certificate.tbs_certificate.issuer.clone(),
                reason,
                invalidity_date: None,
                transaction: tx,
            });
        }
        if !reqs.is_empty() {
            if let Err(e) = self.enroller.revoke_all(&reqs) {
                return answer_for_error(transaction, &e);
            }
            tracing::info!(certificates = reqs.len(), "revoked at the CA");
        }
        Event::CaRevoked { transaction }
    }

    /// The enroller (for tests and the bench).
    pub fn enroller(&self) -> &E {
        &self.enroller
    }

    fn submit(&mut self, transaction: TransactionId, req: EnrollRequest) -> Event {
        let result = self.enroller.enroll(&req, &mut |_| {});
        self.sent.insert(transaction.0, req);
        match result {
            Ok(issued) => {
                let certs = issued
                    .certificates
                    .iter()
                    .filter_map(|c| {
                        let slot = match c.profile {
                            CertProfile::UserAuth => Slot::Auth,
                            CertProfile::Signing => Slot::Sign,
                        };
                        Some(IssuedCert {
                            slot,
                            der: c.certificate.to_der().ok()?,
                        })
                    })
                    .collect();
                self.issued.insert(transaction.0, issued);
                Event::CaIssued { transaction, certs }
            }
            Err(e) => answer_for_error(transaction, &e),
        }
    }

    fn confirm(&mut self, transaction: TransactionId, accept: bool) -> Event {
        if !self.issued.contains_key(&transaction.0) {
            // After a restart: the same request again brings the CA's answer (and nonce) back.
            let Some(req) = self.sent.get(&transaction.0).cloned() else {
                tracing::warn!("certConf for a transaction this kiosk has no request for");
                return Event::CaUnreachable { transaction };
            };
            if let Event::CaUnreachable { .. } | Event::CaRejected { .. } =
                self.submit(transaction, req)
            {
                return Event::CaUnreachable { transaction };
            }
        }
        let Some(issued) = self.issued.get(&transaction.0) else {
            return Event::CaUnreachable { transaction };
        };
        let result = if accept {
            self.enroller.confirm(issued)
        } else {
            self.enroller.reject(issued, "not delivered to the card")
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "certConf failed");
            return Event::CaUnreachable { transaction };
        }
        // A confirmed renewal replaces the certificates it renews: they go now, so the CA
        // never holds two live pairs for one card. Not confirmed until they are gone.
        let renews = self.renews.get(&transaction.0).cloned().unwrap_or_default();
        if accept && !renews.is_empty() {
            let id = superseding_tx(transaction);
            if let Event::CaRevoked { .. } =
                self.revoke(transaction, id, &renews, CrlReason::Superseded)
            {
            } else {
                return Event::CaUnreachable { transaction };
            }
        }
        Event::CaConfirmed { transaction }
    }
}

/// Unreachable, timeouts and 5xx leave the visit waiting; anything else is a rejection.
fn answer_for_error(transaction: TransactionId, e: &EnrollError) -> Event {
    tracing::warn!(error = %e, "CA request failed");
    match e {
        EnrollError::Unreachable(_) | EnrollError::Timeout => Event::CaUnreachable { transaction },
        EnrollError::HttpStatus(s) if *s >= 500 => Event::CaUnreachable { transaction },
        EnrollError::Rejected { fail_info, .. } => Event::CaRejected {
            transaction,
            rejection: CaRejection {
                fail_info: fail_info
                    .failures()
                    .iter()
                    .map(|f| format!("{f:?}"))
                    .collect(),
            },
        },
        other => Event::CaRejected {
            transaction,
            rejection: CaRejection {
                fail_info: vec![format!("kiosk:{}", error_kind(other))],
            },
        },
    }
}

fn error_kind(e: &EnrollError) -> &'static str {
    match e {
        EnrollError::Tls(_) => "tls",
        EnrollError::KeyMismatch { .. } => "key_mismatch",
        EnrollError::CertificateNotTrusted { .. } => "not_trusted",
        EnrollError::InvalidRequest(_) => "invalid_request",
        EnrollError::HttpStatus(_) => "http_status",
        _ => "other",
    }
}

impl<E: Enroller> CaPort for CmpCa<E> {
    fn run(&mut self, command: &CaCommand) -> Event {
        match command {
            CaCommand::Submit {
                transaction, kind, ..
            } => match request_of(command) {
                Some(Ok(req)) => {
                    if let RequestKind::KeyUpdate { old_serials } = kind {
                        self.renews.insert(transaction.0, old_serials.clone());
                    }
                    self.submit(*transaction, req)
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "request not built");
                    Event::CaRejected {
                        transaction: *transaction,
                        rejection: CaRejection {
                            fail_info: vec!["kiosk:invalid_request".into()],
                        },
                    }
                }
                None => Event::CaUnreachable {
                    transaction: *transaction,
                },
            },
            CaCommand::Confirm {
                transaction,
                accept,
            } => self.confirm(*transaction, *accept),
            CaCommand::FindLive {
                transaction,
                resident_id,
            } => self.find_live(*transaction, &resident_id.0),
            CaCommand::Revoke {
                transaction,
                serials,
                reason,
            } => {
                let reason = match reason {
                    RevocationReason::KeyCompromise => CrlReason::KeyCompromise,
                    RevocationReason::CessationOfOperation => CrlReason::CessationOfOperation,
                };
                self.revoke(*transaction, transaction.0, serials, reason)
            }
        }
    }

    fn recall(&mut self, records: &[JournalRecord]) {
        for record in records {
            if let JournalRecord::Command {
                command: Command::Ca { ca },
                ..
            } = record
            {
                if let (
                    CaCommand::Submit {
                        transaction, kind, ..
                    },
                    Some(Ok(req)),
                ) = (ca, request_of(ca))
                {
                    self.sent.insert(transaction.0, req);
                    if let RequestKind::KeyUpdate { old_serials } = kind {
                        self.renews.insert(transaction.0, old_serials.clone());
                    }
                }
            }
        }
    }
}

/// The CA's holder query as the card adapter's [`CertDirectory`] (the signing certificate
/// that cannot be read from the card without the resident's password).
pub struct CaDirectory<E>(pub E);

impl<E> std::fmt::Debug for CaDirectory<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CaDirectory(..)")
    }
}

impl<E: Enroller> CertDirectory for CaDirectory<E> {
    fn certs_of_card(&mut self, card: &CardSerial) -> Result<Vec<(CurrentCert, Vec<u8>)>, String> {
        let query = HolderQuery {
            card_id: Some(card.0.clone()),
            ..HolderQuery::default()
        };
        let found = self
            .0
            .holder_certs(&query, &Transaction::random())
            .map_err(|e| e.to_string())?;
        Ok(found
            .iter()
            .filter(|c| !c.revoked)
            .filter_map(|c| {
                let spki = c
                    .certificate
                    .tbs_certificate
                    .subject_public_key_info
                    .to_der()
                    .ok()?;
                Some((current_cert(&c.certificate)?, spki))
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::issuance::model::SubstituteChoice;

    #[test]
    fn reg_info_names_resident_card_and_birth_date() {
        let holder = Holder {
            name: "山田　花子".into(),
            birth_date: time::macros::date!(1990 - 01 - 20),
            sex: 2,
            address: "山吹県".into(),
            substitutes: vec![],
        };
        let card = CardSerial("0a1b2c3d".into());
        let ri = reg_info(Some(&holder), &card, Some("R-0001")).unwrap();
        assert_eq!(
            ri.to_utf8_pairs(),
            "jpki-birth-date?419900120%card-id?0a1b2c3d%resident-id?R-0001%"
        );
        // Without a holder (auth only) the birth date is not sent; a malformed id is left out.
        let ri = reg_info(None, &card, Some("R 1")).unwrap();
        assert_eq!(ri.to_utf8_pairs(), "card-id?0a1b2c3d%");
        assert_ne!(superseding_tx(TransactionId([1; 16])), [1; 16]);
    }

    #[test]
    fn personal_data_applies_the_chosen_substitute_and_marks_it() {
        let holder = Holder {
            name: "髙橋　一郎".into(),
            birth_date: time::macros::date!(1975 - 04 - 12),
            sex: 1,
            address: "山吹県白樺郡若葉町本郷一丁目２番３号".into(),
            substitutes: vec![SubstituteChoice {
                field: SubstitutedField::Name,
                index: 0,
                replacement: '高',
            }],
        };
        let pd = personal_data(&holder).unwrap();
        assert_eq!(pd.name, "高橋　一郎");
        assert_eq!(pd.name_substitute_positions, "10000");
        assert_eq!(pd.birth_date, "319750412", "昭和 is era digit 3");
        assert_eq!(pd.sex, "1");
        assert!(pd.address_substitute_positions.chars().all(|c| c == '0'));
        // Without the substitute the name cannot be certified.
        let bare = Holder {
            substitutes: vec![],
            ..holder
        };
        assert!(matches!(
            personal_data(&bare),
            Err(RequestError::Substitutes(_))
        ));
    }
}
