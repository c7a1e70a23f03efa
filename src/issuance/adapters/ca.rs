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
//! What it is not: a retry policy (the visit decides when to re-send) or a certificate
//! store. Not built yet: `FindLive` and `Revoke` (the CA has no status query for a
//! resident, and `rr` needs the issuer names); they answer `CaUnreachable`, which changes
//! nothing locally.

use std::collections::BTreeMap;

use der::Encode;
use spki::SubjectPublicKeyInfoOwned;

use super::CaPort;
use crate::enroll::{
    CertProfile, EnrollError, EnrollRequest, Enroller, Issued, KeyRequest, PersonalData, RegInfo,
    RequestKind as CmpKind, Transaction,
};
use crate::issuance::command::{CaCommand, Command, Holder, RequestKind};
use crate::issuance::event::{CaRejection, Event, IssuedCert};
use crate::issuance::journal::JournalRecord;
use crate::issuance::model::{Slot, SubstitutedField, TransactionId};
use crate::rules::repertoire::{self, Substitution};
use crate::rules::wareki::Era;

/// The CA over any [`Enroller`] (the HTTPS CMP client at the counter).
pub struct CmpCa<E> {
    enroller: E,
    /// Requests sent, by transaction (to rebuild a confirmation after a restart).
    sent: BTreeMap<[u8; 16], EnrollRequest>,
    /// Answers received, by transaction.
    issued: BTreeMap<[u8; 16], Issued>,
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
        ..
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
            // The reference CA does not yet read regInfo in RFC 4211 form: send none.
            reg_info: RegInfo::default(),
            transaction: Transaction {
                id: transaction.0,
                seed: *sender_nonce,
            },
        })
    })())
}

impl<E: Enroller> CmpCa<E> {
    /// A CA adapter over `enroller`.
    pub fn new(enroller: E) -> CmpCa<E> {
        CmpCa {
            enroller,
            sent: BTreeMap::new(),
            issued: BTreeMap::new(),
        }
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
        match result {
            Ok(()) => Event::CaConfirmed { transaction },
            Err(e) => {
                tracing::warn!(error = %e, "certConf failed");
                Event::CaUnreachable { transaction }
            }
        }
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
            CaCommand::Submit { transaction, .. } => match request_of(command) {
                Some(Ok(req)) => self.submit(*transaction, req),
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
            CaCommand::FindLive { transaction, .. } | CaCommand::Revoke { transaction, .. } => {
                Event::CaUnreachable {
                    transaction: *transaction,
                }
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
                if let (CaCommand::Submit { transaction, .. }, Some(Ok(req))) = (ca, request_of(ca))
                {
                    self.sent.insert(transaction.0, req);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::issuance::model::SubstituteChoice;

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
