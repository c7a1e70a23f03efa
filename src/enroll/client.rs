//! [`CmpClient`]: the [`Enroller`] that drives one CMP transaction over a
//! [`Transport`]: request, polling while the CA answers "waiting", certConf
//! after the caller has written the certificates, revocation and CA
//! certificates.
//!
//! It holds no state between calls: everything needed to continue a
//! transaction (identifiers, the CA's last nonce) is in the values returned to
//! the caller, who journals them. Time and sleeping are injected so tests and
//! the workflow control them.

use std::fmt;
use std::time::{Duration, SystemTime};

use x509_cert::name::Name;
use x509_cert::Certificate;

use super::cmp::{self, CertRepOutcome, Envelope};
use super::protect::{Credential, ResponseTrust};
use crate::pki::holder_query::{HolderCert, HolderQuery};
use crate::pki::message::Body;
use super::{
    step, EnrollError, EnrollRequest, Enroller, Issued, Progress, RevokeRequest, Transaction,
    Transport,
};

/// How long the client keeps polling a CA that answers "waiting".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollPolicy {
    /// Most pollReq messages per transaction.
    pub max_polls: u32,
    /// Longest single wait, whatever checkAfter says (a CA asking for an hour
    /// must not freeze the counter).
    pub max_wait: Duration,
}

impl Default for PollPolicy {
    fn default() -> Self {
        PollPolicy {
            max_polls: 10,
            max_wait: Duration::from_secs(10),
        }
    }
}

/// Everything the client needs besides the transport.
pub struct ClientConfig {
    /// How requests are protected.
    pub credential: Credential,
    /// How responses are authenticated.
    pub response_trust: ResponseTrust,
    /// The CA roots every issued certificate must chain to.
    pub ca_roots: Vec<Certificate>,
    /// The CA's name for the recipient field (empty DN when unknown).
    pub recipient: Name,
    /// Polling limits.
    pub poll: PollPolicy,
    /// The clock used for messageTime and certificate validity.
    pub clock: fn() -> SystemTime,
    /// How to wait between polls.
    pub sleep: fn(Duration),
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("credential", &self.credential)
            .field("response_trust", &self.response_trust)
            .field("ca_roots", &self.ca_roots.len())
            .field("recipient", &self.recipient.to_string())
            .field("poll", &self.poll)
            .finish()
    }
}

impl ClientConfig {
    /// A configuration with the system clock, real sleeping and default polling.
    pub fn new(
        credential: Credential,
        response_trust: ResponseTrust,
        ca_roots: Vec<Certificate>,
    ) -> Self {
        ClientConfig {
            credential,
            response_trust,
            ca_roots,
            recipient: Name::default(),
            poll: PollPolicy::default(),
            clock: SystemTime::now,
            sleep: std::thread::sleep,
        }
    }
}

/// The CMP client.
#[derive(Debug)]
pub struct CmpClient<T> {
    transport: T,
    config: ClientConfig,
}

impl<T: Transport> CmpClient<T> {
    /// A client sending through `transport`.
    pub fn new(transport: T, config: ClientConfig) -> Self {
        CmpClient { transport, config }
    }

    fn envelope(
        &self,
        transaction: Transaction,
        step: u32,
        recip_nonce: Option<Vec<u8>>,
    ) -> Envelope {
        let sender = match &self.config.credential {
            Credential::Signature { cert, .. } => cert.tbs_certificate.subject.clone(),
            _ => Name::default(),
        };
        Envelope {
            transaction,
            step,
            recip_nonce,
            sender,
            recipient: self.config.recipient.clone(),
            time: (self.config.clock)(),
        }
    }

    /// Send one message and check the answer.
    fn round_trip(&self, env: &Envelope, body: &Body) -> Result<cmp::Opened, EnrollError> {
        let request = cmp::seal(env, body, &self.config.credential)?;
        let response = self.transport.exchange(&request)?;
        cmp::open(
            &response,
            env,
            &self.config.response_trust,
            (self.config.clock)(),
        )
    }
}

impl<T: Transport> Enroller for CmpClient<T> {
    fn enroll(
        &self,
        req: &EnrollRequest,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Issued, EnrollError> {
        let tx = req.transaction;
        let body = cmp::cert_request_body(req)?;
        let env = self.envelope(tx, step::REQUEST, None);
        progress(Progress::Sent { attempt: 1 });
        let mut opened = self.round_trip(&env, &body)?;
        let mut rep = cmp::cert_rep_of(req.kind, opened.body.clone())?;
        let mut polls = 0u32;
        loop {
            let outcome = cmp::check_cert_rep(
                &rep,
                &req.keys,
                &opened.extra_certs,
                &self.config.ca_roots,
                (self.config.clock)(),
            )?;
            let waiting_ids = match outcome {
                CertRepOutcome::Issued {
                    certificates,
                    chain,
                } => {
                    tracing::info!(transaction = ?tx, certificates = certificates.len(), polls, "certificates issued and verified");
                    return Ok(Issued {
                        certificates,
                        ca_chain: chain,
                        transaction: tx,
                        ca_nonce: opened.sender_nonce,
                    });
                }
                CertRepOutcome::Waiting(ids) => ids,
            };
            if polls > 0 {
                // Still "waiting" in a certificate response rather than a
                // pollRep: no checkAfter was given, so pause a second instead of
                // spinning through the poll budget.
                progress(Progress::Waiting {
                    polls,
                    check_after: 1,
                });
                (self.config.sleep)(Duration::from_secs(1).min(self.config.poll.max_wait));
            }
            // Poll until the CA sends the certificate response (RFC 9483 §4.4).
            loop {
                if polls >= self.config.poll.max_polls {
                    return Err(EnrollError::PollingGaveUp { polls });
                }
                let env = self.envelope(tx, step::POLL + polls, Some(opened.sender_nonce.clone()));
                polls += 1;
                opened = self.round_trip(&env, &cmp::poll_req_body(&waiting_ids))?;
                if let Some(secs) = cmp::check_after(&opened.body) {
                    progress(Progress::Waiting {
                        polls,
                        check_after: secs,
                    });
                    (self.config.sleep)(Duration::from_secs(secs).min(self.config.poll.max_wait));
                    continue;
                }
                rep = cmp::cert_rep_of(req.kind, opened.body.clone())?;
                break;
            }
        }
    }

    fn confirm(&self, issued: &Issued) -> Result<(), EnrollError> {
        let env = self.envelope(
            issued.transaction,
            step::CONFIRM,
            Some(issued.ca_nonce.clone()),
        );
        let opened = self.round_trip(&env, &cmp::cert_conf_body(&issued.certificates, None)?)?;
        match opened.body {
            Body::PkiConf(_) => Ok(()),
            other => Err(EnrollError::UnexpectedBody {
                expected: "pkiconf",
                got: other.name(),
            }),
        }
    }

    fn reject(&self, issued: &Issued, reason: &str) -> Result<(), EnrollError> {
        let env = self.envelope(
            issued.transaction,
            step::CONFIRM,
            Some(issued.ca_nonce.clone()),
        );
        let opened = self.round_trip(
            &env,
            &cmp::cert_conf_body(&issued.certificates, Some(reason))?,
        )?;
        match opened.body {
            Body::PkiConf(_) => Ok(()),
            other => Err(EnrollError::UnexpectedBody {
                expected: "pkiconf",
                got: other.name(),
            }),
        }
    }

    fn revoke(&self, req: &RevokeRequest) -> Result<(), EnrollError> {
        let env = self.envelope(req.transaction, step::REQUEST, None);
        let opened = self.round_trip(&env, &cmp::revocation_body(req)?)?;
        cmp::check_revocation(opened.body)
    }

    fn ca_certs(&self, transaction: &Transaction) -> Result<Vec<Certificate>, EnrollError> {
        let env = self.envelope(*transaction, step::REQUEST, None);
        let opened = self.round_trip(&env, &cmp::ca_certs_body())?;
        cmp::parse_ca_certs(opened.body)
    }

    fn revoke_all(&self, reqs: &[RevokeRequest]) -> Result<(), EnrollError> {
        let Some(first) = reqs.first() else {
            return Ok(());
        };
        let env = self.envelope(first.transaction, step::REQUEST, None);
        let opened = self.round_trip(&env, &cmp::revocation_body_all(reqs)?)?;
        cmp::check_revocation_all(opened.body, reqs.len())
    }

    fn holder_certs(
        &self,
        query: &HolderQuery,
        transaction: &Transaction,
    ) -> Result<Vec<HolderCert>, EnrollError> {
        let env = self.envelope(*transaction, step::QUERY, None);
        let opened = self.round_trip(&env, &cmp::holder_query_body(query)?)?;
        cmp::parse_holder_certs(opened.body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::message::{CertRepMessage, CertResponse, PollRepEntry, Received, StatusInfo};
    use crate::enroll::{CertProfile, KeyRequest, RegInfo, RequestKind};
    use cmpv2::status::PkiStatus;
    use std::cell::Cell;
    use zeroize::Zeroizing;

    fn secret() -> Zeroizing<Vec<u8>> {
        Zeroizing::new(b"s3cret".to_vec())
    }

    /// An in-process peer that always says "waiting" (a CA that never finishes),
    /// answering with correctly protected messages for the request's transaction.
    struct NeverReady {
        sent: Cell<u32>,
    }

    impl Transport for NeverReady {
        fn exchange(&self, request: &[u8]) -> Result<Vec<u8>, EnrollError> {
            self.sent.set(self.sent.get() + 1);
            let rx = Received::from_der(request).unwrap();
            let header = rx.message.header;
            let answer = match rx.message.body {
                Body::Ir(_) => Body::Ip(CertRepMessage {
                    ca_pubs: None,
                    response: vec![CertResponse {
                        cert_req_id: 0,
                        status: StatusInfo {
                            status: PkiStatus::Waiting,
                            status_string: None,
                            fail_info: None,
                        },
                        certified_key_pair: None,
                        rsp_info: None,
                    }],
                }),
                _ => Body::PollRep(vec![PollRepEntry {
                    cert_req_id: 0,
                    check_after: 3600,
                    reason: None,
                }]),
            };
            let mut tid = [0; 16];
            tid.copy_from_slice(header.trans_id.unwrap().as_bytes());
            let env = Envelope {
                transaction: Transaction {
                    id: tid,
                    seed: [5; 16],
                },
                step: self.sent.get(),
                recip_nonce: Some(header.sender_nonce.unwrap().as_bytes().to_vec()),
                sender: Name::default(),
                recipient: Name::default(),
                time: SystemTime::now(),
            };
            let cred = Credential::Mac {
                reference: b"ca".to_vec(),
                secret: secret(),
            };
            cmp::seal(&env, &answer, &cred)
        }
    }

    thread_local! {
        static SLEPT: Cell<Duration> = const { Cell::new(Duration::ZERO) };
    }

    fn record_sleep(d: Duration) {
        SLEPT.with(|s| s.set(s.get() + d));
    }

    #[test]
    fn polling_is_bounded_and_check_after_is_capped() {
        let cred = Credential::Mac {
            reference: b"ra".to_vec(),
            secret: secret(),
        };
        let trust = ResponseTrust {
            signer_anchors: vec![],
            mac_secret: Some(secret()),
        };
        let mut config = ClientConfig::new(cred, trust, vec![]);
        config.poll = PollPolicy {
            max_polls: 3,
            max_wait: Duration::from_secs(2),
        };
        config.sleep = record_sleep;
        let client = CmpClient::new(NeverReady { sent: Cell::new(0) }, config);
        let spki = spki::SubjectPublicKeyInfoOwned::from_key(
            crate::enroll::chain::tests::small_key(51).to_public_key(),
        )
        .unwrap();
        let req = EnrollRequest {
            kind: RequestKind::Initial,
            keys: vec![KeyRequest {
                profile: CertProfile::UserAuth,
                public_key: spki,
            }],
            personal_data: None,
            reg_info: RegInfo::default(),
            transaction: Transaction::random(),
        };
        let mut waits = Vec::new();
        let err = client.enroll(&req, &mut |p| waits.push(p)).unwrap_err();
        assert!(
            matches!(err, EnrollError::PollingGaveUp { polls: 3 }),
            "{err:?}"
        );
        assert_eq!(client.transport.sent.get(), 4, "ir + 3 pollReq");
        assert_eq!(waits.len(), 4, "Sent + one Waiting per pollRep: {waits:?}");
        // checkAfter 3600 s was capped at max_wait for each of the 3 waits.
        assert_eq!(SLEPT.with(|s| s.get()), Duration::from_secs(6));
    }
}
