//! The CA's CMP responder: one request message in, one signed response message out.
//!
//! Order of checks for every request: decode (undecodable → the caller answers HTTP 400),
//! header (transactionID, senderNonce), protection (PBM with `pbm-ref`/`pbm-secret`, or a
//! signature by an RA certificate), then the body. Every refusal becomes a CMP `error`
//! with a failInfo bit. Issuance is idempotent on transactionID: the stored response body
//! is sent again, never a second certificate.
//!
//! No sockets here: [`super::server`] carries the bytes.

use cmpv2::certified_key_pair::{CertOrEncCert, CertifiedKeyPair};
use cmpv2::gen::InfoTypeAndValue;
use cmpv2::header::PkiHeader;
use cmpv2::rev::RevDetails;
use cmpv2::status::PkiStatus;
use const_oid::ObjectIdentifier;
use crmf::controls::CertId;
use crmf::pop::ProofOfPossession;
use crmf::request::CertRequest;
use der::asn1::{Any, GeneralizedTime};
use der::{Decode, Encode};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{CrlReason, ExtendedKeyUsage};
use x509_cert::ext::Extensions;
use x509_cert::request::CertReq;
use x509_cert::Certificate;

use super::certs::{self, unix_now};
use super::issue::{self, IssueInput, Refusal};
use super::store::{NewCert, Store, TxRow};
use super::{Ca, CaError};
use crate::pki::holder_query::{HolderCert, HolderQuery, IT_HOLDER_CERTS};
use crate::pki::jpki_profile::{requested_profile, CertProfile, PersonalData, RegInfo, OID_REGINFO_UTF8_PAIRS};
use crate::pki::message::{
    int_to_i64, new_header, random_nonce, Body, CertRepMessage, CertReqMsg, CertResponse, CertStatus,
    ErrorMsgContent, Failure, Message, PollRepEntry, Received, RevRepContent, StatusInfo, ID_IT_CA_CERTS,
    ID_IT_IMPLICIT_CONFIRM,
};
use crate::pki::protection::{
    protect_signed, protection_kind, verify_mac, verify_signature, PbmPolicy, ProtectionError, ProtectionKind,
};
use crate::pki::{cert_hash, verify_sha256, SHA256_WITH_RSA};

/// `pkcs-9-at-extensionRequest`: where a PKCS#10 request carries its extensions.
const EXTENSION_REQUEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.14");
/// `id-regCtrl-oldCertID` (RFC 4211 §6.5): the certificate a kur renews.
const OLD_CERT_ID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.5.1.5");
const OID_REASON_CODE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.21");
const OID_INVALIDITY_DATE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.24");
/// PBM parameters accepted on requests: at most 10 000 iterations, HMAC-SHA1 only under
/// the PKIX OID.
const PBM_POLICY: PbmPolicy = PbmPolicy { max_iterations: 10_000, hmac_sha1_rsadsi: false };

/// What the HTTP layer should send back.
#[derive(Debug)]
pub enum CmpOutcome {
    /// A DER PKIMessage (a success or a CMP error): HTTP 200.
    Response(Vec<u8>),
    /// Not a PKIMessage at all: HTTP 400 with this reason.
    Malformed(&'static str),
    /// The response could not be built (a bug or a storage failure): HTTP 500.
    Internal,
}

/// Who sent a request, as its protection proves.
#[derive(Debug, Clone)]
enum Sender {
    /// Signature by an RA certificate (clientAuth EKU, issued by the infrastructure CA).
    Ra(Box<Certificate>),
    /// PBM with the shared secret (initial enrolment).
    Mac,
}

impl Sender {
    /// The audit actor: the RA certificate's serial, or the PBM reference kind.
    fn label(&self) -> String {
        match self {
            Sender::Ra(c) => format!("ra:{}", hex::encode_upper(c.tbs_certificate.serial_number.as_bytes())),
            Sender::Mac => "pbm".to_string(),
        }
    }
}

/// A refusal: failInfo bit plus text for the error message.
#[derive(Debug)]
struct Fail {
    failure: Failure,
    text: String,
}

fn fail(failure: Failure, text: impl Into<String>) -> Fail {
    Fail { failure, text: text.into() }
}

/// The CMP error for a request whose protection was not accepted. The texts are the CA's
/// own (the kiosk-worded `ProtectionError` texts are not sent).
fn refusal(e: &ProtectionError) -> Fail {
    match e {
        ProtectionError::Missing => fail(Failure::BadMessageCheck, "message is not protected"),
        ProtectionError::UnsupportedAlgorithm(_) => fail(Failure::BadAlg, "unsupported protection algorithm"),
        ProtectionError::IterationCount(_) | ProtectionError::Malformed(_) => {
            fail(Failure::BadMessageCheck, "bad PBM parameters")
        }
        ProtectionError::NoSignerCertificate => fail(Failure::SignerNotTrusted, "no signer certificate in extraCerts"),
        ProtectionError::SignerNotTrusted(_) => fail(Failure::SignerNotTrusted, "signer certificate is not trusted"),
        ProtectionError::BadSignature => fail(Failure::BadMessageCheck, "signature does not verify"),
        ProtectionError::MacMismatch => fail(Failure::BadMessageCheck, "MAC does not verify"),
        // Only the kiosk's own checks report these.
        ProtectionError::NoSecret | ProtectionError::SignerNotAuthorized => fail(Failure::BadMessageCheck, e.to_string()),
    }
}

impl From<CaError> for Fail {
    fn from(e: CaError) -> Self {
        match e {
            CaError::Refused(r) => Fail::from(r),
            other => {
                tracing::error!(error = %other, "CMP request failed inside the CA");
                fail(Failure::SystemFailure, "internal error")
            }
        }
    }
}

impl From<super::store::StoreError> for Fail {
    fn from(e: super::store::StoreError) -> Self {
        Fail::from(CaError::from(e))
    }
}

impl From<Refusal> for Fail {
    fn from(r: Refusal) -> Self {
        let failure = match &r {
            Refusal::BadTemplate(_) => Failure::BadCertTemplate,
            Refusal::BadPop(_) => Failure::BadPop,
            Refusal::BadRegInfo(_) => Failure::BadRequest,
        };
        fail(failure, r.to_string())
    }
}

/// A successful answer: the response body's DER, and whether implicitConfirm was granted.
struct Reply {
    body: Vec<u8>,
    implicit_confirm: bool,
    /// CRL scopes to re-issue once the store lock is released.
    crl_scopes: Vec<(CertProfile, Option<String>)>,
}

impl Reply {
    fn plain(body: &Body) -> Result<Self, Fail> {
        Ok(Reply { body: encode(body)?, implicit_confirm: false, crl_scopes: vec![] })
    }
}

fn encode<T: Encode>(v: &T) -> Result<Vec<u8>, Fail> {
    v.to_der().map_err(|_| fail(Failure::SystemFailure, "encoding failed"))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Ca {
    /// Handles one CMP request (DER) and returns what to send back.
    pub fn handle_cmp(&self, der: &[u8]) -> CmpOutcome {
        let Ok(rx) = Received::from_der(der) else {
            self.audit("anonymous", "cmp-malformed", "undecodable PKIMessage");
            return CmpOutcome::Malformed("undecodable PKIMessage");
        };
        let msg = &rx.message;
        let kind = msg.body.name();
        let reply = match self.process(&rx) {
            Ok((reply, who)) => {
                self.audit(&who, &format!("cmp-{kind}"), "ok");
                reply
            }
            Err(f) => {
                let bit = f.failure as u8;
                tracing::info!(body = kind, fail_bit = bit, reason = %f.text, "CMP request refused");
                self.audit("unverified", &format!("cmp-{kind}-refused"), &format!("failInfo bit {bit}: {}", f.text));
                let body = Body::Error(ErrorMsgContent {
                    pki_status_info: StatusInfo::rejection(f.failure, &f.text),
                    error_code: None,
                    error_details: None,
                });
                match encode(&body) {
                    Ok(b) => Reply { body: b, implicit_confirm: false, crl_scopes: vec![] },
                    Err(_) => return CmpOutcome::Internal,
                }
            }
        };
        for (profile, muni) in &reply.crl_scopes {
            if let Err(e) = self.reissue_crl(*profile, muni.as_deref()) {
                tracing::error!(error = %e, "CRL re-issue after revocation failed");
            }
        }
        match self.respond(&msg.header, &reply) {
            Ok(bytes) => CmpOutcome::Response(bytes),
            Err(e) => {
                tracing::error!(error = %e, "building the CMP response failed");
                CmpOutcome::Internal
            }
        }
    }

    fn respond(&self, req: &PkiHeader<'_>, reply: &Reply) -> Result<Vec<u8>, CaError> {
        let body = Body::from_der(&reply.body)?;
        let sender = GeneralName::DirectoryName(self.material.cmp_signer.name().clone());
        let tid = req.trans_id.clone().unwrap_or_else(random_nonce);
        let mut header = new_header(sender, req.sender.clone(), tid, req.sender_nonce.clone());
        if reply.implicit_confirm {
            header.general_info = Some(vec![InfoTypeAndValue { oid: ID_IT_IMPLICIT_CONFIRM, value: None }]);
        }
        let mut msg = Message { header, body, protection: None, extra_certs: None };
        let signer = &self.material.cmp_signer;
        protect_signed(&mut msg, &signer.signer, &signer.cert, std::slice::from_ref(&self.material.sign_ca.cert))?;
        Ok(msg.to_der()?)
    }

    fn process(&self, rx: &Received<'_>) -> Result<(Reply, String), Fail> {
        let msg = &rx.message;
        let Some(tid) = msg.transaction_id() else {
            return Err(fail(Failure::BadRequest, "transactionID missing"));
        };
        if msg.header.sender_nonce.is_none() {
            return Err(fail(Failure::BadSenderNonce, "senderNonce missing"));
        }
        let sender = self.authenticate(rx)?;
        let who = sender.label();
        let reply = match &msg.body {
            Body::Ir(reqs) => self.issue_crmf(msg, tid, &sender, reqs, "ip")?,
            Body::Cr(reqs) => self.issue_crmf(msg, tid, &sender, reqs, "cp")?,
            Body::Kur(reqs) => self.issue_crmf(msg, tid, &sender, reqs, "kup")?,
            Body::P10cr(csr) => self.issue_p10(msg, tid, csr)?,
            Body::CertConf(statuses) => self.cert_conf(tid, statuses)?,
            Body::Rr(details) => self.revoke_request(msg, tid, &sender, details)?,
            Body::GenM(items) => self.general_message(items, &sender)?,
            Body::PollReq(entries) => self.poll(tid, entries.iter().filter_map(|e| int_to_i64(&e.cert_req_id)).collect())?,
            other => return Err(fail(Failure::BadRequest, format!("unsupported request body {}", other.name()))),
        };
        Ok((reply, who))
    }

    fn authenticate(&self, rx: &Received<'_>) -> Result<Sender, Fail> {
        let msg = &rx.message;
        match protection_kind(msg) {
            ProtectionKind::None => Err(fail(Failure::BadMessageCheck, "message is not protected")),
            ProtectionKind::Unsupported => Err(fail(Failure::BadAlg, "unsupported protection algorithm")),
            ProtectionKind::Mac => {
                let kid = msg.header.sender_kid.as_ref().map(|k| k.as_bytes());
                if kid != Some(self.material.pbm_ref.as_slice()) {
                    return Err(fail(Failure::BadMessageCheck, "unknown MAC reference (senderKID)"));
                }
                verify_mac(rx, &self.material.pbm_secret, &PBM_POLICY).map_err(|e| refusal(&e))?;
                Ok(Sender::Mac)
            }
            ProtectionKind::Signature => {
                let signer = verify_signature(rx, std::slice::from_ref(&self.material.tls_ca.cert))
                    .map_err(|e| refusal(&e))?;
                let client_auth = signer
                    .tbs_certificate
                    .get::<ExtendedKeyUsage>()
                    .ok()
                    .flatten()
                    .is_some_and(|(_, eku)| eku.0.contains(&certs::EKU_CLIENT_AUTH));
                if !client_auth {
                    return Err(fail(Failure::NotAuthorized, "signer is not an RA certificate"));
                }
                Ok(Sender::Ra(Box::new(signer)))
            }
        }
    }

    /// Looks up a stored issuance answer for `tid`. `Ok(None)`: a new transaction.
    fn replay(&self, store: &Store, tid: &[u8], request_hash: &[u8], kind: &str) -> Result<Option<Reply>, Fail> {
        let Some(tx) = store.transaction(tid)? else {
            return Ok(None);
        };
        if tx.kind != kind || tx.request_hash != request_hash {
            return Err(fail(Failure::TransactionIdInUse, "transactionID already used for another request"));
        }
        tracing::info!("retried transaction answered from the store");
        Ok(Some(self.release_or_wait(&tx)?))
    }

    /// The final body if its time has come, else the same body with `waiting` statuses.
    fn release_or_wait(&self, tx: &TxRow) -> Result<Reply, Fail> {
        if now_ms() >= tx.ready_at_ms {
            return Ok(Reply { body: tx.response_body.clone(), implicit_confirm: false, crl_scopes: vec![] });
        }
        let body = Body::from_der(&tx.response_body).map_err(|_| fail(Failure::SystemFailure, "stored response unreadable"))?;
        let waiting = |rep: &CertRepMessage| CertRepMessage {
            ca_pubs: None,
            response: rep
                .response
                .iter()
                .map(|r| CertResponse {
                    cert_req_id: r.cert_req_id,
                    status: StatusInfo { status: PkiStatus::Waiting, status_string: None, fail_info: None },
                    certified_key_pair: None,
                    rsp_info: None,
                })
                .collect(),
        };
        let w = match &body {
            Body::Ip(r) => Body::Ip(waiting(r)),
            Body::Cp(r) => Body::Cp(waiting(r)),
            Body::Kup(r) => Body::Kup(waiting(r)),
            _ => return Ok(Reply { body: tx.response_body.clone(), implicit_confirm: false, crl_scopes: vec![] }),
        };
        Reply::plain(&w)
    }

    fn issue_crmf(
        &self,
        msg: &Message<'_>,
        tid: &[u8],
        sender: &Sender,
        reqs: &[CertReqMsg],
        rep: &'static str,
    ) -> Result<Reply, Fail> {
        if reqs.is_empty() || reqs.len() > 2 {
            return Err(fail(Failure::BadRequest, "one or two certificate requests expected"));
        }
        let mut inputs = Vec::with_capacity(reqs.len());
        for req in reqs {
            let id = int_to_i64(&req.cert_req.cert_req_id)
                .ok_or_else(|| fail(Failure::BadRequest, "certReqId out of range"))?;
            if inputs.iter().any(|(i, _, _)| *i == id) {
                return Err(fail(Failure::BadRequest, "duplicate certReqId"));
            }
            check_pop(req, sender)?;
            let template = &req.cert_req.cert_template;
            let input = checked_input(template.extensions.as_ref(), template.subject_public_key_info.clone(), reg_info(req)?)?;
            let old = self.old_cert(req, input.profile)?;
            inputs.push((id, input, old));
        }
        let request_hash = Sha256::digest(msg.body.to_der().map_err(|_| fail(Failure::BadRequest, "body"))?).to_vec();
        self.issue_all(tid, &request_hash, inputs, rep, implicit_confirm_asked(&msg.header))
    }

    fn issue_p10(&self, msg: &Message<'_>, tid: &[u8], csr: &CertReq) -> Result<Reply, Fail> {
        // The CSR's own signature is its proof of possession.
        let info = csr.info.to_der().map_err(|_| fail(Failure::BadRequest, "CSR"))?;
        let sig_ok = csr.algorithm.oid == SHA256_WITH_RSA
            && csr.signature.as_bytes().is_some_and(|s| verify_sha256(&csr.info.public_key, &info, s));
        if !sig_ok {
            return Err(fail(Failure::BadPop, "CSR signature does not verify (sha256WithRSAEncryption expected)"));
        }
        let mut extensions: Option<Extensions> = None;
        for attr in csr.info.attributes.iter() {
            if attr.oid == EXTENSION_REQUEST {
                let v = attr.values.iter().next().ok_or_else(|| fail(Failure::BadRequest, "empty extensionRequest"))?;
                extensions = Some(v.decode_as().map_err(|_| fail(Failure::BadCertTemplate, "bad extensionRequest"))?);
            }
        }
        let input = checked_input(extensions.as_ref(), Some(csr.info.public_key.clone()), RegInfo::default())?;
        let request_hash = Sha256::digest(msg.body.to_der().map_err(|_| fail(Failure::BadRequest, "body"))?).to_vec();
        // RFC 4210 §5.3.4 leaves certReqId to the CA for p10cr; OpenSSL 3.0 expects 0.
        self.issue_all(tid, &request_hash, vec![(0, input, None)], "cp", implicit_confirm_asked(&msg.header))
    }

    fn issue_all(
        &self,
        tid: &[u8],
        request_hash: &[u8],
        inputs: Vec<(i64, IssueInput, Option<String>)>,
        rep: &'static str,
        implicit: bool,
    ) -> Result<Reply, Fail> {
        {
            let store = self.store.lock().map_err(|_| fail(Failure::SystemUnavail, "store lock poisoned"))?;
            if let Some(reply) = self.replay(&store, tid, request_hash, "issue")? {
                return Ok(reply);
            }
        }
        // Sign outside the store lock so concurrent requests use every core.
        let base_url = self.base_url();
        let now = OffsetDateTime::now_utc();
        let mut built = Vec::with_capacity(inputs.len());
        for (id, input, old) in &inputs {
            let serial = certs::random_serial().map_err(CaError::from)?;
            let cert = issue::build(&self.material, input, serial.clone(), now, &base_url)?;
            built.push((*id, input, old, serial, cert));
        }
        let mut store = self.store.lock().map_err(|_| fail(Failure::SystemUnavail, "store lock poisoned"))?;
        // A concurrent retry of the same transaction may have won the race: its answer stands.
        if let Some(reply) = self.replay(&store, tid, request_hash, "issue")? {
            return Ok(reply);
        }
        let delay = self.config.poll_delay_ms;
        let final_body = store.atomically(|s| -> Result<Vec<u8>, Fail> {
            let mut responses = Vec::with_capacity(built.len());
            let mut ids = Vec::new();
            for (id, input, old, serial, cert) in built {
                let der = cert.to_der().map_err(CaError::from)?;
                let hash = cert_hash(&cert).map_err(CaError::from)?;
                let serial_hex = hex::encode_upper(serial.as_bytes());
                let holder = input.reg.resident_id.as_deref().map(|r| self.material.redacted_ref("resident", r));
                let card = input.reg.card_id.as_deref().map(|c| self.material.redacted_ref("card", c));
                s.insert_cert(&NewCert {
                    serial: &serial_hex,
                    profile: input.profile.as_str(),
                    holder_ref: holder.as_deref(),
                    card_ref: card.as_deref(),
                    transaction_id: tid,
                    cert_req_id: id,
                    municipality: input.reg.municipality_code.as_deref(),
                    not_after: cert.tbs_certificate.validity.not_after.to_unix_duration().as_secs() as i64,
                    der: &der,
                    cert_hash: hash.as_bytes(),
                    confirmed: implicit,
                    supersedes: old.as_deref(),
                })?;
                s.audit(
                    "ca",
                    "issue",
                    &format!(
                        "serial={serial_hex} profile={} holder={} municipality={}",
                        input.profile.as_str(),
                        holder.as_deref().map(|h| &h[..8]).unwrap_or("-"),
                        input.reg.municipality_code.as_deref().unwrap_or("-")
                    ),
                )?;
                tracing::info!(serial = %serial_hex, profile = input.profile.as_str(), "certificate issued");
                ids.push(id.to_string());
                responses.push(CertResponse {
                    cert_req_id: id,
                    status: StatusInfo::accepted(),
                    certified_key_pair: Some(CertifiedKeyPair {
                        cert_or_enc_cert: CertOrEncCert::Certificate(Box::new(cert)),
                        priv_key: None,
                        publication_info: None,
                    }),
                    rsp_info: None,
                });
            }
            let content = CertRepMessage { ca_pubs: None, response: responses };
            let body = match rep {
                "ip" => Body::Ip(content),
                "kup" => Body::Kup(content),
                _ => Body::Cp(content),
            };
            let body_der = encode(&body)?;
            s.put_transaction(
                tid,
                &TxRow {
                    kind: "issue".into(),
                    request_hash: request_hash.to_vec(),
                    response_body: body_der.clone(),
                    ready_at_ms: now_ms() + delay as i64,
                    cert_req_ids: ids.join(","),
                },
            )?;
            Ok(body_der)
        })?;
        if delay > 0 {
            let tx = store.transaction(tid)?.ok_or_else(|| fail(Failure::SystemFailure, "transaction vanished"))?;
            return self.release_or_wait(&tx);
        }
        Ok(Reply { body: final_body, implicit_confirm: implicit, crl_scopes: vec![] })
    }

    fn poll(&self, tid: &[u8], ids: Vec<i64>) -> Result<Reply, Fail> {
        let store = self.store.lock().map_err(|_| fail(Failure::SystemUnavail, "store lock poisoned"))?;
        let tx = store.transaction(tid)?.ok_or_else(|| fail(Failure::BadRequest, "pollReq for an unknown transaction"))?;
        if tx.kind != "issue" {
            return Err(fail(Failure::BadRequest, "nothing to poll for in this transaction"));
        }
        let remaining = tx.ready_at_ms - now_ms();
        if remaining <= 0 {
            return self.release_or_wait(&tx);
        }
        let ids = if ids.is_empty() {
            tx.cert_req_ids.split(',').filter_map(|s| s.parse().ok()).collect()
        } else {
            ids
        };
        let check_after = (remaining + 999) / 1000;
        let body = Body::PollRep(
            ids.into_iter()
                .map(|id| PollRepEntry { cert_req_id: id, check_after, reason: None })
                .collect(),
        );
        Reply::plain(&body)
    }

    fn cert_conf(&self, tid: &[u8], statuses: &[CertStatus]) -> Result<Reply, Fail> {
        let mut store = self.store.lock().map_err(|_| fail(Failure::SystemUnavail, "store lock poisoned"))?;
        let certs = store.certs_by_transaction(tid)?;
        if certs.is_empty() {
            return Err(fail(Failure::BadRequest, "certConf for a transaction without certificates"));
        }
        let mut scopes = Vec::new();
        store.atomically(|s| -> Result<(), Fail> {
            for st in statuses {
                let id = int_to_i64(&st.cert_req_id);
                let cert = certs
                    .iter()
                    .find(|c| Some(c.cert_req_id) == id)
                    .or(if certs.len() == 1 { certs.first() } else { None })
                    .ok_or_else(|| fail(Failure::BadCertId, "certConf names an unknown certReqId"))?;
                if st.cert_hash.as_bytes() != cert.cert_hash.as_slice() {
                    return Err(fail(Failure::BadCertId, "certHash does not match the issued certificate"));
                }
                let rejected = st.status_info.as_ref().is_some_and(|i| i.status == PkiStatus::Rejection);
                if rejected {
                    // Refused by the client (e.g. not written to the card): never in use, so
                    // revoke as "unspecified" (JPKI: destroyed before delivery).
                    if s.revoke(cert, 0, None, unix_now())? {
                        let profile = CertProfile::from_str_name(&cert.profile).unwrap_or(CertProfile::UserAuth);
                        scopes.push((profile, None));
                        scopes.push((profile, cert.municipality.clone()));
                    }
                    s.audit("ca", "cert-rejected-by-client", &format!("serial={}", cert.serial))?;
                } else {
                    s.confirm(&cert.serial)?;
                    s.audit("ca", "cert-confirmed", &format!("serial={}", cert.serial))?;
                    // A renewal replaces its predecessor only once the new one is on the card.
                    if let Some(old) = cert.supersedes.as_deref().map(|o| s.cert_by_serial(o)).transpose()?.flatten() {
                        if s.revoke(&old, 4, None, unix_now())? {
                            s.audit("ca", "revoke", &format!("serial={} reason=4 channel=kur superseded-by={}", old.serial, cert.serial))?;
                            let profile = CertProfile::from_str_name(&old.profile).unwrap_or(CertProfile::UserAuth);
                            scopes.push((profile, None));
                            if old.municipality.is_some() {
                                scopes.push((profile, old.municipality.clone()));
                            }
                        }
                    }
                }
            }
            Ok(())
        })?;
        scopes.dedup();
        let mut reply = Reply::plain(&Body::PkiConf(der::asn1::Null))?;
        reply.crl_scopes = scopes;
        Ok(reply)
    }

    fn revoke_request(
        &self,
        msg: &Message<'_>,
        tid: &[u8],
        sender: &Sender,
        details: &[RevDetails],
    ) -> Result<Reply, Fail> {
        if !matches!(sender, Sender::Ra(_)) {
            return Err(fail(Failure::NotAuthorized, "revocation requires RA signature protection"));
        }
        if details.is_empty() {
            return Err(fail(Failure::BadRequest, "empty revocation request"));
        }
        let request_hash = Sha256::digest(msg.body.to_der().map_err(|_| fail(Failure::BadRequest, "body"))?).to_vec();
        let mut store = self.store.lock().map_err(|_| fail(Failure::SystemUnavail, "store lock poisoned"))?;
        if let Some(reply) = self.replay(&store, tid, &request_hash, "rr")? {
            return Ok(reply);
        }
        let mut scopes = Vec::new();
        let body_der = store.atomically(|s| -> Result<Vec<u8>, Fail> {
            for d in details {
                let serial = d
                    .cert_details
                    .serial_number
                    .as_ref()
                    .ok_or_else(|| fail(Failure::BadCertId, "serialNumber missing"))?;
                let serial_hex = hex::encode_upper(serial.as_bytes());
                let cert = s
                    .cert_by_serial(&serial_hex)?
                    .ok_or_else(|| fail(Failure::BadCertId, "no such certificate"))?;
                let profile = CertProfile::from_str_name(&cert.profile).unwrap_or(CertProfile::UserAuth);
                if let Some(issuer) = &d.cert_details.issuer {
                    if issuer != self.material.issuer(profile == CertProfile::Signing).name() {
                        return Err(fail(Failure::WrongAuthority, "issuer does not match the certificate"));
                    }
                }
                let (reason, invalidity) = entry_details(d.crl_entry_details.as_ref())?;
                if !s.revoke(&cert, reason, invalidity, unix_now())? {
                    return Err(fail(Failure::CertRevoked, "certificate already revoked"));
                }
                s.audit("ra", "revoke", &format!("serial={serial_hex} reason={reason} channel=rr"))?;
                tracing::info!(serial = %serial_hex, reason, "certificate revoked");
                scopes.push((profile, None));
                if cert.municipality.is_some() {
                    scopes.push((profile, cert.municipality.clone()));
                }
            }
            let body = Body::Rp(RevRepContent {
                status: details.iter().map(|_| StatusInfo::accepted()).collect(),
                rev_certs: None,
                crls: None,
            });
            let body_der = encode(&body)?;
            s.put_transaction(
                tid,
                &TxRow {
                    kind: "rr".into(),
                    request_hash: request_hash.clone(),
                    response_body: body_der.clone(),
                    ready_at_ms: 0,
                    cert_req_ids: String::new(),
                },
            )?;
            Ok(body_der)
        })?;
        scopes.dedup();
        Ok(Reply { body: body_der, implicit_confirm: false, crl_scopes: scopes })
    }

    fn general_message(&self, items: &[InfoTypeAndValue], sender: &Sender) -> Result<Reply, Fail> {
        let wants_ca_certs = items.is_empty() || items.iter().any(|i| i.oid == ID_IT_CA_CERTS);
        let mut out = Vec::new();
        if let Some(query) = items.iter().find(|i| i.oid == IT_HOLDER_CERTS) {
            out.push(self.holder_query(query, sender)?);
        }
        if wants_ca_certs {
            let certs = vec![self.material.sign_ca.cert.clone(), self.material.auth_ca.cert.clone()];
            let value = Any::encode_from(&certs).map_err(|_| fail(Failure::SystemFailure, "encoding"))?;
            out.push(InfoTypeAndValue { oid: ID_IT_CA_CERTS, value: Some(value) });
        }
        Reply::plain(&Body::GenP(out))
    }
}

impl Ca {
    /// The holder query (`docs/ca-protocol.md`, "Holder query"): the certificates issued
    /// for a resident, a card or serials, with their revocation state. Only the RA may ask:
    /// the answer ties certificates to a resident.
    fn holder_query(&self, item: &InfoTypeAndValue, sender: &Sender) -> Result<InfoTypeAndValue, Fail> {
        if !matches!(sender, Sender::Ra(_)) {
            return Err(fail(Failure::NotAuthorized, "the holder query requires RA signature protection"));
        }
        let text = item
            .value
            .as_ref()
            .and_then(|v| v.decode_as::<der::asn1::Utf8StringRef<'_>>().ok())
            .ok_or_else(|| fail(Failure::BadRequest, "holder query is not one UTF8String"))?;
        let query = HolderQuery::parse(text.as_str()).map_err(|e| fail(Failure::BadRequest, e.to_string()))?;
        let holder = query.resident_id.as_deref().map(|r| self.material.redacted_ref("resident", r));
        let card = query.card_id.as_deref().map(|c| self.material.redacted_ref("card", c));
        let store = self.store.lock().map_err(|_| fail(Failure::SystemUnavail, "store lock poisoned"))?;
        let rows = store.certs_matching(holder.as_deref(), card.as_deref(), &query.serials)?;
        store.audit(
            &sender.label(),
            "holder-query",
            &format!(
                "resident={} card={} serials={} found={}",
                holder.as_deref().map(|h| &h[..8]).unwrap_or("-"),
                card.as_deref().map(|c| &c[..8]).unwrap_or("-"),
                query.serials.len(),
                rows.len()
            ),
        )?;
        drop(store);
        let mut entries = Vec::with_capacity(rows.len());
        for (der, revoked) in rows {
            let certificate = Certificate::from_der(&der).map_err(|_| fail(Failure::SystemFailure, "stored certificate unreadable"))?;
            entries.push(HolderCert { certificate, revoked });
        }
        let value = Any::encode_from(&entries).map_err(|_| fail(Failure::SystemFailure, "encoding"))?;
        Ok(InfoTypeAndValue { oid: IT_HOLDER_CERTS, value: Some(value) })
    }

    /// The serial of the certificate a renewal replaces (`id-regCtrl-oldCertID`), checked:
    /// issued here, same profile, not revoked.
    fn old_cert(&self, req: &CertReqMsg, profile: CertProfile) -> Result<Option<String>, Fail> {
        let Some(ctrl) = req.cert_req.controls.iter().flatten().find(|c| c.oid == OLD_CERT_ID) else {
            return Ok(None);
        };
        let id: CertId = ctrl.value.decode_as().map_err(|_| fail(Failure::BadRequest, "bad oldCertID"))?;
        let expected_issuer = GeneralName::DirectoryName(self.material.issuer(profile == CertProfile::Signing).name().clone());
        if id.issuer != expected_issuer {
            return Err(fail(Failure::WrongAuthority, "oldCertID names another issuer"));
        }
        let serial = hex::encode_upper(id.serial_number.as_bytes());
        let store = self.store.lock().map_err(|_| fail(Failure::SystemUnavail, "store lock poisoned"))?;
        match store.cert_by_serial(&serial)? {
            Some(c) if c.profile == profile.as_str() && !c.revoked => Ok(Some(serial)),
            _ => Err(fail(Failure::BadCertId, "oldCertID: no such live certificate of this profile")),
        }
    }
}

fn implicit_confirm_asked(h: &PkiHeader<'_>) -> bool {
    h.general_info.iter().flatten().any(|i| i.oid == ID_IT_IMPLICIT_CONFIRM)
}

fn checked_input(
    extensions: Option<&Extensions>,
    spki: Option<spki::SubjectPublicKeyInfoOwned>,
    reg: RegInfo,
) -> Result<IssueInput, Fail> {
    let profile = requested_profile(extensions).map_err(|_| fail(Failure::BadCertTemplate, "unreadable certificatePolicies"))?;
    let personal = PersonalData::from_extensions(extensions).map_err(|e| fail(Failure::BadCertTemplate, e.to_string()))?;
    Ok(IssueInput::check(profile, spki, personal, reg)?)
}

/// The utf8Pairs regInfo, in either wire form (see [`CertReqMsg::reg_info_utf8`]).
fn reg_info(req: &CertReqMsg) -> Result<RegInfo, Fail> {
    match req.reg_info_utf8(OID_REGINFO_UTF8_PAIRS) {
        Ok(Some(s)) => RegInfo::parse(&s).map_err(|e| fail(Failure::BadRequest, e.to_string())),
        Ok(None) => Ok(RegInfo::default()),
        Err(_) => Err(fail(Failure::BadRequest, "regInfo utf8Pairs is not one UTF8String")),
    }
}

fn check_pop(req: &CertReqMsg, sender: &Sender) -> Result<(), Fail> {
    match &req.popo {
        Some(ProofOfPossession::RaVerified(_)) if matches!(sender, Sender::Ra(_)) => Ok(()),
        Some(ProofOfPossession::RaVerified(_)) => {
            Err(fail(Failure::BadPop, "raVerified is accepted only from the RA"))
        }
        Some(ProofOfPossession::Signature(sk)) => {
            if sk.poposk_input.is_some() {
                return Err(fail(Failure::BadPop, "poposkInput is not supported"));
            }
            let spki = req
                .cert_req
                .cert_template
                .subject_public_key_info
                .as_ref()
                .ok_or_else(|| fail(Failure::BadCertTemplate, "no public key"))?;
            let data = CertRequest::to_der(&req.cert_req).map_err(|_| fail(Failure::BadRequest, "certReq"))?;
            let ok = sk.alg_id.oid == SHA256_WITH_RSA
                && sk.signature.as_bytes().is_some_and(|s| verify_sha256(spki, &data, s));
            if ok {
                Ok(())
            } else {
                Err(fail(Failure::BadPop, "POPO signature does not verify"))
            }
        }
        _ => Err(fail(Failure::BadPop, "signature POP or (from the RA) raVerified required")),
    }
}

fn entry_details(exts: Option<&Extensions>) -> Result<(u32, Option<i64>), Fail> {
    let mut reason = 0u32;
    let mut invalidity = None;
    for e in exts.into_iter().flatten() {
        if e.extn_id == OID_REASON_CODE {
            let r = CrlReason::from_der(e.extn_value.as_bytes()).map_err(|_| fail(Failure::BadRequest, "bad reasonCode"))?;
            reason = r as u32;
            if !super::crl::valid_reason(reason) {
                return Err(fail(Failure::BadRequest, "reasonCode not accepted"));
            }
        } else if e.extn_id == OID_INVALIDITY_DATE {
            let t = GeneralizedTime::from_der(e.extn_value.as_bytes()).map_err(|_| fail(Failure::BadRequest, "bad invalidityDate"))?;
            invalidity = Some(t.to_unix_duration().as_secs() as i64);
        }
    }
    Ok((reason, invalidity))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::testing;
    use crate::pki::message::int_from_i64;
    use crate::pki::protection::{protect, Protector};
    use x509_cert::name::Name;
    use zeroize::Zeroizing;

    fn request(ca: &Ca, body: Body, tid: &der::asn1::OctetString) -> Vec<u8> {
        let n = GeneralName::DirectoryName(Name::default());
        let mut msg = Message { header: new_header(n.clone(), n, tid.clone(), None), body, protection: None, extra_certs: None };
        let p = Protector::Mac {
            reference: ca.material.pbm_ref.clone(),
            secret: Zeroizing::new(ca.material.pbm_secret.to_vec()),
        };
        protect(&mut msg, &p).unwrap();
        msg.to_der().unwrap()
    }

    fn answer(ca: &Ca, der: &[u8]) -> Vec<u8> {
        match ca.handle_cmp(der) {
            CmpOutcome::Response(b) => b,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn genm_returns_both_roots_signed_by_the_responder() {
        let (_d, ca) = testing::ca();
        let tid = random_nonce();
        let bytes = answer(&ca, &request(&ca, Body::GenM(vec![]), &tid));
        let rx = Received::from_der(&bytes).unwrap();
        verify_signature(&rx, std::slice::from_ref(&ca.material.sign_ca.cert)).unwrap();
        let Body::GenP(items) = &rx.message.body else { panic!("not genp") };
        assert_eq!(items[0].oid, ID_IT_CA_CERTS);
        let certs: Vec<Certificate> = items[0].value.as_ref().unwrap().decode_as().unwrap();
        assert_eq!(certs, vec![ca.material.sign_ca.cert.clone(), ca.material.auth_ca.cert.clone()]);
    }

    #[test]
    fn holder_query_needs_the_ra_signature_and_a_well_formed_query() {
        let (_d, ca) = testing::ca();
        let query = |text: &str| {
            Body::GenM(vec![InfoTypeAndValue {
                oid: IT_HOLDER_CERTS,
                value: Some(Any::encode_from(&der::asn1::Utf8StringRef::new(text).unwrap()).unwrap()),
            }])
        };
        // MAC protection (the shared set-up secret) may not ask who holds what.
        let bytes = answer(&ca, &request(&ca, query("resident-id?R-1%"), &random_nonce()));
        let Body::Error(e) = Message::from_der(&bytes).unwrap().body else { panic!("not an error") };
        assert!(e.pki_status_info.fail_bits().contains(Failure::NotAuthorized));
        // Inside the CA, a malformed query is a bad request whoever asks.
        let ra = Sender::Mac;
        let item = InfoTypeAndValue { oid: IT_HOLDER_CERTS, value: None };
        assert!(ca.holder_query(&item, &ra).is_err());
    }

    #[test]
    fn certconf_without_certificates_or_with_a_wrong_hash_is_refused() {
        let (_d, ca) = testing::ca();
        let tid = random_nonce();
        let conf = |hash: &[u8]| {
            Body::CertConf(vec![CertStatus {
                cert_hash: der::asn1::OctetString::new(hash.to_vec()).unwrap(),
                cert_req_id: int_from_i64(0),
                status_info: None,
            }])
        };
        let bytes = answer(&ca, &request(&ca, conf(&[0; 32]), &tid));
        let Body::Error(e) = Message::from_der(&bytes).unwrap().body else { panic!("not an error") };
        assert!(e.pki_status_info.fail_bits().contains(Failure::BadRequest));
    }
}
