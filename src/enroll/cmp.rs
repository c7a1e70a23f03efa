//! Building the kiosk's CMP requests and checking the CA's responses (RFC
//! 4210/9480, the Lightweight CMP Profile RFC 9483), with no I/O.
//!
//! Requests: ir/cr/kur with one CertReqMsg per wanted certificate (certReqId
//! 0 = user authentication, 1 = signing; POP `raVerified`), certConf with the
//! certificate hashes, pollReq, rr with reason code and invalidity date, and
//! genm caCerts. Every response goes through [`open`], which verifies the
//! protection, the transactionID and our nonce before the body is looked at;
//! certificate responses then go through [`check_cert_rep`], which accepts a
//! certificate only if its key is the one sent and it chains to a configured
//! root. Deciding when to send what is [`super::client`]'s job.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cmpv2::certified_key_pair::CertOrEncCert;
use cmpv2::gen::InfoTypeAndValue;
use cmpv2::header::{PkiHeader, Pvno};
use cmpv2::rev::RevDetails;
use cmpv2::status::PkiStatus;
use crmf::pop::ProofOfPossession;
use crmf::request::{CertRequest, CertTemplate};
use der::asn1::{Any, BitString, GeneralizedTime, Int, Null, ObjectIdentifier, OctetString, Utf8StringRef};
use der::Encode;
use sha2::{Digest, Sha256, Sha384, Sha512};
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::Extension;
use x509_cert::name::Name;
use x509_cert::Certificate;

use super::chain;
use super::error::{CaStatus, EnrollError};
use super::protect::{self, Credential, ProtectionError, ResponseTrust};
use crate::pki::holder_query::{HolderCert, HolderQuery, IT_HOLDER_CERTS};
use crate::pki::jpki_profile::OID_REGINFO_UTF8_PAIRS;
use crate::pki::message::{
    int_from_i64, Body, CertRepMessage, CertReqMsg, CertStatus, Message, PollReqEntry, Received, StatusInfo,
    ID_IT_CA_CERTS,
};
use crate::pki::{SHA384_WITH_RSA, SHA512_WITH_RSA};
use super::{EnrollRequest, IssuedCert, KeyRequest, RequestKind, RevokeRequest, Transaction};

const CRL_REASON: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.21");
const INVALIDITY_DATE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.24");

/// Who sends a message, to whom, in which transaction step.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// The transaction.
    pub transaction: Transaction,
    /// Which step (selects senderNonce and PBM salt).
    pub step: u32,
    /// The CA's last senderNonce, echoed as recipNonce.
    pub recip_nonce: Option<Vec<u8>>,
    /// Our name (the RA certificate's subject, or the empty DN for MAC).
    pub sender: Name,
    /// The CA's name (empty DN when not known).
    pub recipient: Name,
    /// messageTime.
    pub time: SystemTime,
}

impl Envelope {
    /// senderNonce of this message.
    pub fn nonce(&self) -> [u8; 16] {
        self.transaction.nonce(self.step)
    }
}

fn malformed(e: impl std::fmt::Display) -> EnrollError {
    EnrollError::Malformed(e.to_string())
}

fn config(e: impl std::fmt::Display) -> EnrollError {
    EnrollError::Config(e.to_string())
}

/// Encode and protect a request.
pub fn seal(env: &Envelope, body: &Body, cred: &Credential) -> Result<Vec<u8>, EnrollError> {
    let fields = protect::header_fields(cred, &env.transaction.salt(env.step)).map_err(config)?;
    // DER time has whole seconds only.
    let secs = env
        .time
        .duration_since(UNIX_EPOCH)
        .map_err(config)?
        .as_secs();
    let header = PkiHeader {
        pvno: Pvno::Cmp2000,
        sender: GeneralName::DirectoryName(env.sender.clone()),
        recipient: GeneralName::DirectoryName(env.recipient.clone()),
        message_time: Some(
            GeneralizedTime::from_unix_duration(Duration::from_secs(secs)).map_err(config)?,
        ),
        protection_alg: Some(fields.alg.clone()),
        sender_kid: fields.sender_kid,
        recip_kid: None,
        trans_id: Some(OctetString::new(env.transaction.id.to_vec()).map_err(config)?),
        sender_nonce: Some(OctetString::new(env.nonce().to_vec()).map_err(config)?),
        recip_nonce: env
            .recip_nonce
            .clone()
            .map(OctetString::new)
            .transpose()
            .map_err(config)?,
        free_text: None,
        general_info: None,
    };
    let mut msg = Message {
        header,
        body: body.clone(),
        protection: None,
        extra_certs: (!fields.extra_certs.is_empty()).then_some(fields.extra_certs),
    };
    let part = msg.protected_part_der().map_err(config)?;
    let protection = protect::protect(cred, &fields.alg, &part)?;
    msg.protection = Some(BitString::from_bytes(&protection).map_err(config)?);
    msg.to_der().map_err(config)
}

/// A response whose protection, transactionID and nonce have been checked.
#[derive(Debug, Clone)]
pub struct Opened {
    /// The body (never an `error` body: those become [`EnrollError::Rejected`]).
    pub body: Body,
    /// The CA's senderNonce (our next recipNonce).
    pub sender_nonce: Vec<u8>,
    /// extraCerts (may hold the CA chain).
    pub extra_certs: Vec<Certificate>,
}

/// Decode a response to the message sent with `sent`, and check it.
pub fn open(
    bytes: &[u8],
    sent: &Envelope,
    trust: &ResponseTrust,
    now: SystemTime,
) -> Result<Opened, EnrollError> {
    let rx = Received::from_der(bytes).map_err(malformed)?;
    let Received { message, protected_part } = rx;
    let Message { header, body, protection, extra_certs } = message;
    // Bodies only the CA receives (p10cr) or nobody handles are not answers.
    if matches!(body, Body::P10cr(_) | Body::Other(_)) {
        return Err(malformed(format!("unexpected body {}", body.name())));
    }
    let extra_certs = extra_certs.unwrap_or_default();
    let verified = protect::verify(
        header.protection_alg.as_ref(),
        header.sender_kid.as_ref(),
        protection.as_ref().and_then(|p| p.as_bytes()),
        &extra_certs,
        &protected_part,
        trust,
        now,
    );
    let authenticated = match (verified, &body) {
        (Ok(_), _) => true,
        // An unprotected error is reported (it stops the exchange) but flagged
        // as unauthenticated; anything else unprotected is refused.
        (Err(ProtectionError::Missing), Body::Error(_)) => false,
        (Err(e), _) => return Err(e.into()),
    };
    if header.trans_id.as_ref().map(|t| t.as_bytes()) != Some(&sent.transaction.id[..]) {
        return Err(EnrollError::WrongTransaction);
    }
    if header.recip_nonce.as_ref().map(|n| n.as_bytes()) != Some(&sent.nonce()[..]) {
        return Err(EnrollError::WrongNonce);
    }
    if let Body::Error(e) = &body {
        let mut text = e.pki_status_info.text();
        if let Some(d) = &e.error_details {
            if !text.is_empty() {
                text.push_str(" / ");
            }
            text.push_str(&d.join(" / "));
        }
        return Err(EnrollError::Rejected {
            status: ca_status(e.pki_status_info.status),
            fail_info: e.pki_status_info.fail_bits(),
            text,
            authenticated,
        });
    }
    let sender_nonce = header
        .sender_nonce
        .as_ref()
        .map(|n| n.as_bytes().to_vec())
        .ok_or_else(|| malformed("response without senderNonce"))?;
    Ok(Opened {
        body,
        sender_nonce,
        extra_certs,
    })
}

fn ca_status(s: PkiStatus) -> CaStatus {
    match s {
        PkiStatus::Rejection => CaStatus::Rejection,
        other => CaStatus::Other(other as u8),
    }
}

fn rejected(si: &StatusInfo) -> EnrollError {
    EnrollError::Rejected {
        status: ca_status(si.status),
        fail_info: si.fail_bits(),
        text: si.text(),
        authenticated: true,
    }
}

fn extension<T: Encode>(oid: ObjectIdentifier, value: &T) -> Result<Extension, EnrollError> {
    Ok(Extension {
        extn_id: oid,
        critical: false,
        extn_value: OctetString::new(value.to_der().map_err(config)?).map_err(config)?,
    })
}

/// The ir/cr/kur body for `req`.
pub fn cert_request_body(req: &EnrollRequest) -> Result<Body, EnrollError> {
    if req.keys.is_empty() {
        return Err(config("no key in the request"));
    }
    let mut seen = Vec::new();
    let pairs = req.reg_info.to_utf8_pairs();
    let reg_info = (!pairs.is_empty())
        .then_some(pairs)
        .map(|pairs| -> Result<_, EnrollError> {
            Ok(vec![AttributeTypeAndValue {
                oid: OID_REGINFO_UTF8_PAIRS,
                value: Any::encode_from(&Utf8StringRef::new(&pairs).map_err(config)?)
                    .map_err(config)?,
            }])
        })
        .transpose()?;
    let mut msgs = Vec::new();
    for KeyRequest {
        profile,
        public_key,
    } in &req.keys
    {
        if seen.contains(profile) {
            return Err(config("the same certificate requested twice"));
        }
        seen.push(*profile);
        let mut extensions = vec![profile.policies_extension().map_err(config)?];
        if *profile == super::CertProfile::Signing {
            let pd = req.personal_data.as_ref().ok_or_else(|| {
                EnrollError::InvalidRequest("signing certificate without personal data".into())
            })?;
            // Refuse here what the CA would refuse with badCertTemplate.
            pd.validate()
                .map_err(|e| EnrollError::InvalidRequest(e.to_string()))?;
            extensions.push(pd.subject_alt_name().map_err(config)?);
        }
        let id = profile.cert_req_id();
        msgs.push(CertReqMsg {
            cert_req: CertRequest {
                cert_req_id: Int::new(&[id]).map_err(config)?,
                cert_template: CertTemplate {
                    version: None,
                    serial_number: None,
                    signature: None,
                    issuer: None,
                    validity: None,
                    subject: None,
                    subject_public_key_info: Some(public_key.clone()),
                    issuer_unique_id: None,
                    subject_unique_id: None,
                    extensions: Some(extensions),
                },
                controls: None,
            },
            // The kiosk, as RA, watched the card generate the key.
            popo: Some(ProofOfPossession::RaVerified(Null)),
            reg_info: reg_info.clone(),
        });
    }
    Ok(match req.kind {
        RequestKind::Initial => Body::Ir(msgs),
        RequestKind::Additional => Body::Cr(msgs),
        RequestKind::KeyUpdate => Body::Kur(msgs),
    })
}

/// What a certificate response amounted to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertRepOutcome {
    /// Every requested certificate, checked, plus the path to the root(s).
    Issued {
        /// Certificates in request order.
        certificates: Vec<IssuedCert>,
        /// Intermediates and roots the certificates chain through.
        chain: Vec<Certificate>,
    },
    /// The CA is still working on these certReqIds.
    Waiting(Vec<i64>),
}

/// Does `body` answer `req`'s kind of request (ip for ir, …)?
pub fn cert_rep_of(req_kind: RequestKind, body: Body) -> Result<CertRepMessage, EnrollError> {
    match (req_kind, body) {
        (RequestKind::Initial, Body::Ip(r))
        | (RequestKind::Additional, Body::Cp(r))
        | (RequestKind::KeyUpdate, Body::Kup(r)) => Ok(r),
        (kind, other) => Err(EnrollError::UnexpectedBody {
            expected: match kind {
                RequestKind::Initial => "ip",
                RequestKind::Additional => "cp",
                RequestKind::KeyUpdate => "kup",
            },
            got: other.name(),
        }),
    }
}

/// Check a certificate response against what was asked: each certificate's
/// key must be the one sent for its certReqId, and it must chain to one of
/// `roots` (through caPubs/extraCerts intermediates) and be valid at `now`.
pub fn check_cert_rep(
    rep: &CertRepMessage,
    keys: &[KeyRequest],
    extra_certs: &[Certificate],
    roots: &[Certificate],
    now: SystemTime,
) -> Result<CertRepOutcome, EnrollError> {
    let waiting: Vec<i64> = rep
        .response
        .iter()
        .filter(|r| r.status.status == PkiStatus::Waiting)
        .map(|r| r.cert_req_id)
        .collect();
    if !waiting.is_empty() {
        return Ok(CertRepOutcome::Waiting(waiting));
    }
    if let Some(r) = rep.response.iter().find(|r| {
        !keys
            .iter()
            .any(|k| i64::from(k.profile.cert_req_id()) == r.cert_req_id)
    }) {
        return Err(malformed(format!(
            "response for certReqId {} that was not requested",
            r.cert_req_id
        )));
    }
    let mut pool: Vec<Certificate> = rep.ca_pubs.clone().unwrap_or_default();
    pool.extend(extra_certs.iter().cloned());
    let mut certificates = Vec::new();
    let mut path: Vec<Certificate> = Vec::new();
    for key in keys {
        let id = i64::from(key.profile.cert_req_id());
        let resp = rep
            .response
            .iter()
            .find(|r| r.cert_req_id == id)
            .ok_or(EnrollError::MissingCertificate { cert_req_id: id })?;
        match resp.status.status {
            PkiStatus::Accepted | PkiStatus::GrantedWithMods => {}
            _ => return Err(rejected(&resp.status)),
        }
        let cert = match resp
            .certified_key_pair
            .as_ref()
            .map(|p| &p.cert_or_enc_cert)
        {
            Some(CertOrEncCert::Certificate(c)) => (**c).clone(),
            Some(CertOrEncCert::EncryptedCert(_)) => {
                return Err(malformed("encrypted certificate not supported"))
            }
            None => return Err(EnrollError::MissingCertificate { cert_req_id: id }),
        };
        let got = cert
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .map_err(malformed)?;
        let sent = key.public_key.to_der().map_err(config)?;
        if got != sent {
            return Err(EnrollError::KeyMismatch { cert_req_id: id });
        }
        let up = chain::chain_to_anchor(&cert, &pool, roots, now).map_err(|source| {
            EnrollError::CertificateNotTrusted {
                cert_req_id: id,
                source,
            }
        })?;
        for c in up {
            if !path.contains(&c) {
                path.push(c);
            }
        }
        certificates.push(IssuedCert {
            profile: key.profile,
            certificate: cert,
        });
    }
    Ok(CertRepOutcome::Issued {
        certificates,
        chain: path,
    })
}

/// certHash: the certificate's DER hashed with its signature's hash (RFC 4210 §5.3.18).
pub fn cert_hash(cert: &Certificate) -> Result<Vec<u8>, EnrollError> {
    let der = cert.to_der().map_err(malformed)?;
    Ok(match cert.signature_algorithm.oid {
        SHA384_WITH_RSA => Sha384::digest(&der).to_vec(),
        SHA512_WITH_RSA => Sha512::digest(&der).to_vec(),
        _ => Sha256::digest(&der).to_vec(),
    })
}

/// certConf accepting every certificate, or, with `rejection`, refusing
/// them all with that (technical) reason (RFC 4210 §5.3.18: the certificates
/// never reached the card, so the CA must not consider them in use).
pub fn cert_conf_body(certs: &[IssuedCert], rejection: Option<&str>) -> Result<Body, EnrollError> {
    let status_info = rejection.map(|text| StatusInfo {
        status: PkiStatus::Rejection,
        status_string: Some(vec![text.to_owned()]),
        fail_info: None,
    });
    certs
        .iter()
        .map(|c| {
            Ok(CertStatus {
                cert_hash: OctetString::new(cert_hash(&c.certificate)?).map_err(config)?,
                cert_req_id: int_from_i64(i64::from(c.profile.cert_req_id())),
                status_info: status_info.clone(),
            })
        })
        .collect::<Result<Vec<_>, EnrollError>>()
        .map(Body::CertConf)
}

/// pollReq for these certReqIds.
pub fn poll_req_body(ids: &[i64]) -> Body {
    Body::PollReq(
        ids.iter()
            .map(|&id| PollReqEntry { cert_req_id: int_from_i64(id) })
            .collect(),
    )
}

/// rr for one certificate.
pub fn revocation_body(req: &RevokeRequest) -> Result<Body, EnrollError> {
    let mut details = vec![extension(CRL_REASON, &req.reason)?];
    if let Some(t) = req.invalidity_date {
        let secs = t.duration_since(UNIX_EPOCH).map_err(config)?.as_secs();
        details.push(extension(
            INVALIDITY_DATE,
            &GeneralizedTime::from_unix_duration(Duration::from_secs(secs)).map_err(config)?,
        )?);
    }
    Ok(Body::Rr(vec![RevDetails {
        cert_details: CertTemplate {
            version: None,
            serial_number: Some(req.serial.clone()),
            signature: None,
            issuer: Some(req.issuer.clone()),
            validity: None,
            subject: None,
            subject_public_key_info: None,
            issuer_unique_id: None,
            subject_unique_id: None,
            extensions: None,
        },
        crl_entry_details: Some(details),
    }]))
}

/// One rr for several certificates (one RevDetails each, in order), so that a visit's
/// revocation is one transaction the CA answers idempotently.
pub fn revocation_body_all(reqs: &[RevokeRequest]) -> Result<Body, EnrollError> {
    let mut details = Vec::with_capacity(reqs.len());
    for req in reqs {
        let Body::Rr(mut one) = revocation_body(req)? else {
            return Err(config("rr body"));
        };
        details.append(&mut one);
    }
    if details.is_empty() {
        return Err(config("nothing to revoke"));
    }
    Ok(Body::Rr(details))
}

/// Check an rp answering `expected` RevDetails: every status accepted.
pub fn check_revocation_all(body: Body, expected: usize) -> Result<(), EnrollError> {
    let Body::Rp(rp) = body else {
        return Err(EnrollError::UnexpectedBody {
            expected: "rp",
            got: body.name(),
        });
    };
    if rp.status.len() != expected {
        return Err(malformed("rp does not answer every certificate"));
    }
    for si in &rp.status {
        match si.status {
            PkiStatus::Accepted
            | PkiStatus::GrantedWithMods
            | PkiStatus::RevocationNotification => {}
            _ => return Err(rejected(si)),
        }
    }
    Ok(())
}

/// genm with the holder query.
pub fn holder_query_body(query: &HolderQuery) -> Result<Body, EnrollError> {
    let text = query.to_pairs();
    Ok(Body::GenM(vec![InfoTypeAndValue {
        oid: IT_HOLDER_CERTS,
        value: Some(Any::encode_from(&Utf8StringRef::new(&text).map_err(config)?).map_err(config)?),
    }]))
}

/// The certificates of a genp answering [`holder_query_body`].
pub fn parse_holder_certs(body: Body) -> Result<Vec<HolderCert>, EnrollError> {
    let Body::GenP(itavs) = body else {
        return Err(EnrollError::UnexpectedBody {
            expected: "genp",
            got: body.name(),
        });
    };
    let itav = itavs
        .iter()
        .find(|i| i.oid == IT_HOLDER_CERTS)
        .ok_or_else(|| malformed("genp without the holder query's answer"))?;
    match &itav.value {
        Some(v) => v.decode_as::<Vec<HolderCert>>().map_err(malformed),
        None => Ok(Vec::new()),
    }
}

/// Check an rp: the (single) status must be accepted or a revocation notice.
pub fn check_revocation(body: Body) -> Result<(), EnrollError> {
    let Body::Rp(rp) = body else {
        return Err(EnrollError::UnexpectedBody {
            expected: "rp",
            got: body.name(),
        });
    };
    let si = rp
        .status
        .first()
        .ok_or_else(|| malformed("rp without status"))?;
    match si.status {
        PkiStatus::Accepted | PkiStatus::GrantedWithMods | PkiStatus::RevocationNotification => {
            Ok(())
        }
        _ => Err(rejected(si)),
    }
}

/// genm asking for the CA certificates.
pub fn ca_certs_body() -> Body {
    Body::GenM(vec![InfoTypeAndValue {
        oid: ID_IT_CA_CERTS,
        value: None,
    }])
}

/// The certificates of a genp answering [`ca_certs_body`].
pub fn parse_ca_certs(body: Body) -> Result<Vec<Certificate>, EnrollError> {
    let Body::GenP(itavs) = body else {
        return Err(EnrollError::UnexpectedBody {
            expected: "genp",
            got: body.name(),
        });
    };
    let itav = itavs
        .iter()
        .find(|i| i.oid == ID_IT_CA_CERTS)
        .ok_or_else(|| malformed("genp without caCerts"))?;
    match &itav.value {
        Some(v) => v.decode_as::<Vec<Certificate>>().map_err(malformed),
        None => Ok(Vec::new()),
    }
}

/// The longest checkAfter (seconds) of a pollRep.
pub fn check_after(body: &Body) -> Option<u64> {
    match body {
        Body::PollRep(entries) => entries.iter().map(|e| e.check_after.max(0) as u64).max(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use der::Decode;
    use super::super::chain::tests::{leaf, root, small_key};
    use crate::pki::message::{CertResponse, PollRepEntry};
    use super::super::{CertProfile, PersonalData, RegInfo};
    use super::*;
    use cmpv2::certified_key_pair::CertifiedKeyPair;
    use spki::SubjectPublicKeyInfoOwned;
    use zeroize::Zeroizing;

    fn env(step: u32) -> Envelope {
        Envelope {
            transaction: Transaction {
                id: [9; 16],
                seed: [3; 16],
            },
            step,
            recip_nonce: None,
            sender: Name::default(),
            recipient: Name::default(),
            time: SystemTime::now(),
        }
    }

    fn mac() -> (Credential, ResponseTrust) {
        (
            Credential::Mac {
                reference: b"ra01".to_vec(),
                secret: Zeroizing::new(b"s3cret".to_vec()),
            },
            ResponseTrust {
                mac_secret: Some(Zeroizing::new(b"s3cret".to_vec())),
                signer_anchors: vec![],
            },
        )
    }

    /// Play the CA: answer `req_env` with `body`, MAC-protected.
    fn answer(req_env: &Envelope, body: &Body, cred: &Credential) -> Vec<u8> {
        let mut e = env(77);
        e.recip_nonce = Some(req_env.nonce().to_vec());
        e.transaction.id = req_env.transaction.id;
        seal(&e, body, cred).unwrap()
    }

    fn pollrep() -> Body {
        Body::PollRep(vec![PollRepEntry {
            cert_req_id: 0,
            check_after: 2,
            reason: None,
        }])
    }

    #[test]
    fn sealed_response_opens_and_checks_transaction_and_nonce() {
        let (cred, trust) = mac();
        let sent = env(0);
        let bytes = answer(&sent, &pollrep(), &cred);
        let opened = open(&bytes, &sent, &trust, SystemTime::now()).unwrap();
        assert_eq!(check_after(&opened.body), Some(2));

        let mut other_step = sent.clone();
        other_step.step = 1;
        assert!(matches!(
            open(&bytes, &other_step, &trust, SystemTime::now()),
            Err(EnrollError::WrongNonce)
        ));
        let mut other_tx = sent.clone();
        other_tx.transaction.id = [1; 16];
        assert!(matches!(
            open(&bytes, &other_tx, &trust, SystemTime::now()),
            Err(EnrollError::WrongTransaction)
        ));
        let wrong = ResponseTrust {
            mac_secret: Some(Zeroizing::new(b"other".to_vec())),
            signer_anchors: vec![],
        };
        assert!(matches!(
            open(&bytes, &sent, &wrong, SystemTime::now()),
            Err(EnrollError::Protection(_))
        ));
        // One flipped byte anywhere in the body breaks the MAC (or the DER).
        let mut tampered = bytes.clone();
        let n = tampered.len();
        tampered[n - 40] ^= 1;
        assert!(open(&tampered, &sent, &trust, SystemTime::now()).is_err());
        assert!(matches!(
            open(&bytes[..n - 1], &sent, &trust, SystemTime::now()),
            Err(EnrollError::Malformed(_))
        ));
    }

    #[test]
    fn cert_request_carries_policy_san_and_reg_info() {
        let key = small_key(21).to_public_key();
        let spki = SubjectPublicKeyInfoOwned::from_key(key).unwrap();
        let pd = PersonalData {
            name: "総務　太郎".into(),
            name_substitute_positions: "00000".into(),
            sex: "1".into(),
            birth_date: "319800217".into(),
            address: "東京都".into(),
            address_substitute_positions: "000".into(),
        };
        let mut req = EnrollRequest {
            kind: RequestKind::Initial,
            keys: vec![
                KeyRequest {
                    profile: CertProfile::UserAuth,
                    public_key: spki.clone(),
                },
                KeyRequest {
                    profile: CertProfile::Signing,
                    public_key: spki.clone(),
                },
            ],
            personal_data: Some(pd),
            reg_info: RegInfo::parse("jpki-birth-date?319800217%card-expiry?20350217%").unwrap(),
            transaction: Transaction::random(),
        };
        let Body::Ir(msgs) = cert_request_body(&req).unwrap() else {
            panic!("not ir")
        };
        assert_eq!(msgs.len(), 2);
        assert_eq!(msgs[0].cert_req.cert_req_id.as_bytes(), [0]);
        assert_eq!(
            msgs[0]
                .cert_req
                .cert_template
                .extensions
                .as_ref()
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            msgs[1]
                .cert_req
                .cert_template
                .extensions
                .as_ref()
                .unwrap()
                .len(),
            2
        );
        let ri = &msgs[1].reg_info.as_ref().unwrap()[0];
        assert_eq!(ri.oid, OID_REGINFO_UTF8_PAIRS);
        assert_eq!(
            Utf8StringRef::try_from(&ri.value).unwrap().as_str(),
            "jpki-birth-date?319800217%card-expiry?20350217%"
        );
        // Round trip through DER.
        let der = Body::Ir(msgs.clone()).to_der().unwrap();
        assert_eq!(Body::from_der(&der).unwrap(), Body::Ir(msgs));
        req.personal_data = None;
        assert!(matches!(
            cert_request_body(&req),
            Err(EnrollError::InvalidRequest(_))
        ));
    }

    fn response(id: i64, cert: &Certificate) -> CertResponse {
        CertResponse {
            cert_req_id: id,
            status: StatusInfo {
                status: PkiStatus::Accepted,
                status_string: None,
                fail_info: None,
            },
            certified_key_pair: Some(CertifiedKeyPair {
                cert_or_enc_cert: CertOrEncCert::Certificate(Box::new(cert.clone())),
                priv_key: None,
                publication_info: None,
            }),
            rsp_info: None,
        }
    }

    #[test]
    fn cert_rep_accepts_only_matching_key_and_trusted_chain() {
        let ca_key = small_key(31);
        let ca = root(&ca_key, "Test Auth CA");
        let card_key = small_key(32).to_public_key();
        let other_key = small_key(33).to_public_key();
        let keys = vec![KeyRequest {
            profile: CertProfile::UserAuth,
            public_key: SubjectPublicKeyInfoOwned::from_key(card_key.clone()).unwrap(),
        }];
        let now = SystemTime::now();
        let good = leaf(&ca_key, &ca, &card_key, "ee");
        let rep = CertRepMessage {
            ca_pubs: None,
            response: vec![response(0, &good)],
        };
        let CertRepOutcome::Issued {
            certificates,
            chain,
        } = check_cert_rep(&rep, &keys, &[], std::slice::from_ref(&ca), now).unwrap()
        else {
            panic!("not issued")
        };
        assert_eq!(certificates[0].certificate, good);
        assert_eq!(chain, vec![ca.clone()]);

        let swapped = leaf(&ca_key, &ca, &other_key, "ee");
        let rep = CertRepMessage {
            ca_pubs: None,
            response: vec![response(0, &swapped)],
        };
        assert!(matches!(
            check_cert_rep(&rep, &keys, &[], std::slice::from_ref(&ca), now),
            Err(EnrollError::KeyMismatch { cert_req_id: 0 })
        ));

        let rogue_key = small_key(34);
        let rogue = root(&rogue_key, "Test Auth CA");
        let forged = leaf(&rogue_key, &rogue, &card_key, "ee");
        let rep = CertRepMessage {
            ca_pubs: Some(vec![rogue]),
            response: vec![response(0, &forged)],
        };
        assert!(matches!(
            check_cert_rep(&rep, &keys, &[], std::slice::from_ref(&ca), now),
            Err(EnrollError::CertificateNotTrusted { cert_req_id: 0, .. })
        ));

        let mut waiting = response(0, &good);
        waiting.status.status = PkiStatus::Waiting;
        waiting.certified_key_pair = None;
        let rep = CertRepMessage {
            ca_pubs: None,
            response: vec![waiting],
        };
        assert_eq!(
            check_cert_rep(&rep, &keys, &[], std::slice::from_ref(&ca), now).unwrap(),
            CertRepOutcome::Waiting(vec![0])
        );

        let rep = CertRepMessage {
            ca_pubs: None,
            response: vec![],
        };
        assert!(matches!(
            check_cert_rep(&rep, &keys, &[], &[ca], now),
            Err(EnrollError::MissingCertificate { cert_req_id: 0 })
        ));
    }

    #[test]
    fn cert_conf_hashes_with_sha256() {
        let k = small_key(41);
        let c = root(&k, "x");
        let issued = [IssuedCert {
            profile: CertProfile::Signing,
            certificate: c.clone(),
        }];
        let Body::CertConf(st) = cert_conf_body(&issued, None).unwrap() else {
            panic!("not certConf")
        };
        assert_eq!(crate::pki::message::int_to_i64(&st[0].cert_req_id), Some(1));
        assert_eq!(st[0].status_info, None);
        let Body::CertConf(rej) = cert_conf_body(&issued, Some("card write failed")).unwrap()
        else {
            panic!("not certConf")
        };
        let si = rej[0].status_info.as_ref().unwrap();
        assert_eq!(si.status, PkiStatus::Rejection);
        assert_eq!(si.text(), "card write failed");
        assert_eq!(rej[0].cert_hash, st[0].cert_hash);
        assert_eq!(
            st[0].cert_hash.as_bytes(),
            Sha256::digest(c.to_der().unwrap()).as_slice()
        );
    }

    #[test]
    fn revocation_carries_reason_and_invalidity_date() {
        use x509_cert::ext::pkix::crl::CrlReason;
        let req = RevokeRequest {
            serial: x509_cert::serial_number::SerialNumber::from(42u32),
            issuer: Name::default(),
            reason: CrlReason::KeyCompromise,
            invalidity_date: Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
            transaction: Transaction::random(),
        };
        let Body::Rr(rr) = revocation_body(&req).unwrap() else {
            panic!("not rr")
        };
        let ext = rr[0].crl_entry_details.as_ref().unwrap();
        assert_eq!(ext[0].extn_id, CRL_REASON);
        assert_eq!(
            CrlReason::from_der(ext[0].extn_value.as_bytes()).unwrap(),
            CrlReason::KeyCompromise
        );
        assert_eq!(ext[1].extn_id, INVALIDITY_DATE);
        assert_eq!(
            rr[0].cert_details.serial_number,
            Some(x509_cert::serial_number::SerialNumber::from(42u32))
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        /// Any flipped byte or truncation of a protected response is refused,
        /// or (a flip outside the protected part) yields the original body.
        #[test]
        fn damaged_responses_never_panic_or_change_the_body(
            pos in 0usize..10_000,
            xor in 1u8..=255,
            cut in proptest::prelude::any::<bool>(),
        ) {
            let (cred, trust) = mac();
            let sent = env(0);
            let good = answer(&sent, &pollrep(), &cred);
            let mut bad = good.clone();
            let pos = pos % bad.len();
            if cut { bad.truncate(pos) } else { bad[pos] ^= xor }
            if let Ok(opened) = open(&bad, &sent, &trust, SystemTime::now()) {
                proptest::prop_assert_eq!(opened.body, pollrep());
            }
        }
    }
}
