//! CMP (RFC 4210 / RFC 9480) ASN.1 structures the kiosk's client sends and
//! receives, declared with `der`'s derive macros.
//!
//! Most types come from `cmpv2`/`crmf` 0.2, but a few of those do not match
//! the RFC and cannot talk to OpenSSL or our CA, so this module declares the
//! corrected ones (and only those):
//! - `PKIFailureInfo` is a 16-bit `FlagSet` whose flags are numbered as masks,
//!   not bit positions, and bits 16–26 (badCertTemplate, transactionIdInUse,
//!   systemUnavail …) fail to decode: we keep it as a `BIT STRING`;
//! - `pollReq` is declared with `PollRepContent`, and neither poll type is a
//!   `SEQUENCE OF`;
//! - `ErrorMsgContent`'s fields are private;
//! - crmf's `regInfo` is a `SEQUENCE OF Attribute` (with a `SET OF` values)
//!   instead of `SEQUENCE OF AttributeTypeAndValue`.
//!
//! The message envelope keeps header and body as raw TLVs ([`RawMessage`]) so
//! that protection is computed and verified over the exact bytes received,
//! never over a re-encoding. This module does no validation and no I/O.

use cmpv2::certified_key_pair::CertifiedKeyPair;
use cmpv2::gen::InfoTypeAndValue;
use cmpv2::rev::RevDetails;
use cmpv2::status::PkiStatus;
use crmf::pop::ProofOfPossession;
use crmf::request::CertRequest;
use der::asn1::{Any, AnyRef, BitString, BitStringRef, Null, OctetString};
use der::{Choice, Sequence};
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::Certificate;

/// `PKIFreeText ::= SEQUENCE SIZE (1..MAX) OF UTF8String`.
pub type FreeText = Vec<String>;

/// `PKIMessage` with header and body left as raw TLVs (RFC 4210 §5.1).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct RawMessage<'a> {
    /// The encoded `PKIHeader`.
    pub header: AnyRef<'a>,
    /// The encoded `PKIBody` (a context-tagged choice).
    pub body: AnyRef<'a>,
    /// `protection [0] PKIProtection OPTIONAL`.
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    pub protection: Option<BitStringRef<'a>>,
    /// `extraCerts [1] SEQUENCE OF CMPCertificate OPTIONAL`.
    #[asn1(
        context_specific = "1",
        tag_mode = "EXPLICIT",
        constructed = "true",
        optional = "true"
    )]
    pub extra_certs: Option<Vec<Certificate>>,
}

/// `ProtectedPart ::= SEQUENCE { header, body }`: the input of protection.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct ProtectedPart<'a> {
    /// The encoded header, byte for byte as sent.
    pub header: AnyRef<'a>,
    /// The encoded body, byte for byte as sent.
    pub body: AnyRef<'a>,
}

/// `CertReqMsg` with the RFC 4211 `regInfo` shape.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct CertReqMsg {
    /// The request proper.
    pub cert_req: CertRequest,
    /// Proof of possession (`raVerified` for the kiosk acting as RA).
    pub popo: Option<ProofOfPossession>,
    /// `regInfo SEQUENCE SIZE(1..MAX) OF AttributeTypeAndValue OPTIONAL`.
    pub reg_info: Option<Vec<AttributeTypeAndValue>>,
}

/// `PKIStatusInfo` with `failInfo` kept as a plain BIT STRING.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct StatusInfo {
    /// `status PKIStatus`.
    pub status: PkiStatus,
    /// `statusString PKIFreeText OPTIONAL`.
    pub status_string: Option<FreeText>,
    /// `failInfo PKIFailureInfo OPTIONAL`; bit n = RFC 4210 failure n.
    pub fail_info: Option<BitString>,
}

impl StatusInfo {
    /// The failInfo bits as a `u32` (bit n set = failure n), ignoring bits
    /// beyond 31, which RFC 4210 does not define.
    pub fn fail_bits(&self) -> u32 {
        let Some(bits) = &self.fail_info else {
            return 0;
        };
        bits.bits()
            .take(32)
            .enumerate()
            .fold(0u32, |acc, (i, b)| if b { acc | (1 << i) } else { acc })
    }

    /// The status strings joined by " / ".
    pub fn text(&self) -> String {
        self.status_string
            .as_ref()
            .map(|t| t.join(" / "))
            .unwrap_or_default()
    }
}

/// `CertResponse` (RFC 4210 §5.3.4).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct CertResponse {
    /// Which request this answers.
    pub cert_req_id: i64,
    /// Accepted, waiting, rejection …
    pub status: StatusInfo,
    /// The certificate, when issued.
    pub certified_key_pair: Option<CertifiedKeyPair>,
    /// `rspInfo OCTET STRING OPTIONAL`.
    pub rsp_info: Option<OctetString>,
}

/// `CertRepMessage` (body of ip/cp/kup).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct CertRepMessage {
    /// `caPubs [1] SEQUENCE OF CMPCertificate OPTIONAL`.
    #[asn1(
        context_specific = "1",
        tag_mode = "EXPLICIT",
        constructed = "true",
        optional = "true"
    )]
    pub ca_pubs: Option<Vec<Certificate>>,
    /// One response per request.
    pub response: Vec<CertResponse>,
}

/// `ErrorMsgContent` (RFC 4210 §5.3.21).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct ErrorMsgContent {
    /// Status (always rejection) and failInfo.
    pub status: StatusInfo,
    /// Implementation-specific error code.
    pub error_code: Option<i64>,
    /// Free-text details.
    pub error_details: Option<FreeText>,
}

/// `CertStatus` (element of certConf).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct CertStatus {
    /// Hash of the certificate, with the hash of its signature algorithm.
    pub cert_hash: OctetString,
    /// Which request.
    pub cert_req_id: i64,
    /// Absent means accepted.
    pub status_info: Option<StatusInfo>,
}

/// One element of `PollReqContent`.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct PollReqEntry {
    /// The request being polled for.
    pub cert_req_id: i64,
}

/// One element of `PollRepContent`.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct PollRepEntry {
    /// The request being polled for.
    pub cert_req_id: i64,
    /// Seconds to wait before the next pollReq.
    pub check_after: i64,
    /// Why it takes time.
    pub reason: Option<FreeText>,
}

/// `RevRepContent` (RFC 4210 §5.3.10).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct RevRepContent {
    /// One status per RevDetails sent.
    pub status: Vec<StatusInfo>,
    /// `revCerts [0]`, kept opaque.
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    pub rev_certs: Option<Any>,
    /// `crls [1]`, kept opaque.
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    pub crls: Option<Any>,
}

/// The part of the `PKIBody` choice the kiosk sends or accepts. Any other
/// body fails to decode and is reported as a malformed response.
#[derive(Clone, Debug, Eq, PartialEq, Choice)]
#[allow(missing_docs)]
pub enum Body {
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", constructed = "true")]
    Ir(Vec<CertReqMsg>),
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", constructed = "true")]
    Ip(CertRepMessage),
    #[asn1(context_specific = "2", tag_mode = "EXPLICIT", constructed = "true")]
    Cr(Vec<CertReqMsg>),
    #[asn1(context_specific = "3", tag_mode = "EXPLICIT", constructed = "true")]
    Cp(CertRepMessage),
    #[asn1(context_specific = "7", tag_mode = "EXPLICIT", constructed = "true")]
    Kur(Vec<CertReqMsg>),
    #[asn1(context_specific = "8", tag_mode = "EXPLICIT", constructed = "true")]
    Kup(CertRepMessage),
    #[asn1(context_specific = "11", tag_mode = "EXPLICIT", constructed = "true")]
    Rr(Vec<RevDetails>),
    #[asn1(context_specific = "12", tag_mode = "EXPLICIT", constructed = "true")]
    Rp(RevRepContent),
    #[asn1(context_specific = "19", tag_mode = "EXPLICIT", constructed = "true")]
    PkiConf(Null),
    #[asn1(context_specific = "21", tag_mode = "EXPLICIT", constructed = "true")]
    GenM(Vec<InfoTypeAndValue>),
    #[asn1(context_specific = "22", tag_mode = "EXPLICIT", constructed = "true")]
    GenP(Vec<InfoTypeAndValue>),
    #[asn1(context_specific = "23", tag_mode = "EXPLICIT", constructed = "true")]
    Error(ErrorMsgContent),
    #[asn1(context_specific = "24", tag_mode = "EXPLICIT", constructed = "true")]
    CertConf(Vec<CertStatus>),
    #[asn1(context_specific = "25", tag_mode = "EXPLICIT", constructed = "true")]
    PollReq(Vec<PollReqEntry>),
    #[asn1(context_specific = "26", tag_mode = "EXPLICIT", constructed = "true")]
    PollRep(Vec<PollRepEntry>),
}

impl Body {
    /// The RFC 4210 name of the body type, for errors and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Body::Ir(_) => "ir",
            Body::Ip(_) => "ip",
            Body::Cr(_) => "cr",
            Body::Cp(_) => "cp",
            Body::Kur(_) => "kur",
            Body::Kup(_) => "kup",
            Body::Rr(_) => "rr",
            Body::Rp(_) => "rp",
            Body::PkiConf(_) => "pkiconf",
            Body::GenM(_) => "genm",
            Body::GenP(_) => "genp",
            Body::Error(_) => "error",
            Body::CertConf(_) => "certConf",
            Body::PollReq(_) => "pollReq",
            Body::PollRep(_) => "pollRep",
        }
    }
}

/// One certificate in the CA's answer to a holder query ([`HolderQuery`]): the
/// certificate and whether it is revoked.
///
/// ```text
/// HolderCert ::= SEQUENCE { certificate Certificate, revoked BOOLEAN DEFAULT FALSE }
/// ```
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct HolderCert {
    /// The certificate as issued.
    pub certificate: Certificate,
    /// Revoked (for any reason) at the CA.
    #[asn1(default = "Default::default")]
    pub revoked: bool,
}

/// What a holder query asks for (`docs/ca-protocol.md`, "Holder query"): the
/// certificates issued with a resident id, with a card id, or with given serials. Carried
/// as one UTF8String in the regInfo pair syntax:
/// `resident-id?ID%card-id?ID%serial?HEX%serial?HEX%`. A certificate matches when it
/// matches any of the items.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct HolderQuery {
    /// The resident's registry id (as sent in regInfo `resident-id`).
    pub resident_id: Option<String>,
    /// The card's id (as sent in regInfo `card-id`).
    pub card_id: Option<String>,
    /// Serials, upper- or lower-case hex.
    pub serials: Vec<String>,
}

impl std::fmt::Debug for HolderQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The resident id is personal data: shown only as present or not.
        f.debug_struct("HolderQuery")
            .field(
                "resident_id",
                &self.resident_id.as_ref().map(|_| "<redacted>"),
            )
            .field("card_id", &self.card_id.as_ref().map(|_| "<redacted>"))
            .field("serials", &self.serials)
            .finish()
    }
}

/// Why a holder query's text does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HolderQueryError {
    /// A pair is not `name?value`, a name is unknown, or a value is not 1–64 ASCII
    /// letters, digits or `-` (hex for serials).
    #[error("holder query: bad pair {0:?}")]
    BadPair(String),
    /// No item: a query for everything is refused.
    #[error("holder query: empty")]
    Empty,
}

impl HolderQuery {
    /// The pairs text.
    pub fn to_pairs(&self) -> String {
        let mut out = String::new();
        if let Some(r) = &self.resident_id {
            out.push_str(&format!("resident-id?{r}%"));
        }
        if let Some(c) = &self.card_id {
            out.push_str(&format!("card-id?{c}%"));
        }
        for s in &self.serials {
            out.push_str(&format!("serial?{}%", s.to_ascii_uppercase()));
        }
        out
    }

    /// Parses the pairs text (unknown names are refused: a query must not mean more than
    /// it says).
    pub fn parse(text: &str) -> Result<HolderQuery, HolderQueryError> {
        let mut q = HolderQuery::default();
        let id_ok = |v: &str| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        };
        for pair in text.split('%').filter(|p| !p.is_empty()) {
            let bad = || HolderQueryError::BadPair(pair.chars().take(80).collect());
            let (name, value) = pair.split_once('?').ok_or_else(bad)?;
            match name {
                "resident-id" if id_ok(value) => q.resident_id = Some(value.to_owned()),
                "card-id" if id_ok(value) => q.card_id = Some(value.to_owned()),
                "serial"
                    if !value.is_empty()
                        && value.len() <= 64
                        && value.bytes().all(|b| b.is_ascii_hexdigit()) =>
                {
                    q.serials.push(value.to_ascii_uppercase())
                }
                _ => return Err(bad()),
            }
        }
        if q.resident_id.is_none() && q.card_id.is_none() && q.serials.is_empty() {
            return Err(HolderQueryError::Empty);
        }
        Ok(q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use der::{Decode, Encode};

    #[test]
    fn fail_info_bits_above_sixteen_survive_a_round_trip() {
        // badCertTemplate (19) and systemUnavail (24): cmpv2 0.2 cannot decode these.
        let mut bytes = [0u8; 4];
        for bit in [19usize, 24] {
            bytes[bit / 8] |= 0x80 >> (bit % 8);
        }
        let si = StatusInfo {
            status: PkiStatus::Rejection,
            status_string: Some(vec!["no".into()]),
            fail_info: Some(BitString::new(7, &bytes[..]).unwrap()),
        };
        let der = Body::Error(ErrorMsgContent {
            status: si,
            error_code: None,
            error_details: None,
        })
        .to_der()
        .unwrap();
        let Body::Error(e) = Body::from_der(&der).unwrap() else {
            panic!("not an error body")
        };
        assert_eq!(e.status.fail_bits(), (1 << 19) | (1 << 24));
        assert_eq!(e.status.text(), "no");
    }

    #[test]
    fn poll_req_is_a_sequence_of_sequences() {
        let der = Body::PollReq(vec![PollReqEntry { cert_req_id: 0 }])
            .to_der()
            .unwrap();
        // [25] { SEQUENCE { SEQUENCE { INTEGER 0 } } }
        assert_eq!(der, [0xB9, 0x07, 0x30, 0x05, 0x30, 0x03, 0x02, 0x01, 0x00]);
    }

    #[test]
    fn unknown_body_is_rejected() {
        // [4] p10cr is not something the client accepts.
        assert!(Body::from_der(&[0xA4, 0x02, 0x30, 0x00]).is_err());
    }

    #[test]
    fn holder_query_round_trips_and_refuses_what_it_does_not_know() {
        let q = HolderQuery {
            resident_id: Some("R-0042".into()),
            card_id: None,
            serials: vec!["0a1B".into()],
        };
        assert_eq!(q.to_pairs(), "resident-id?R-0042%serial?0A1B%");
        let back = HolderQuery::parse(&q.to_pairs()).unwrap();
        assert_eq!(back.serials, vec!["0A1B".to_string()]);
        assert_eq!(back.resident_id.as_deref(), Some("R-0042"));
        assert!(!format!("{back:?}").contains("R-0042"));
        assert_eq!(HolderQuery::parse(""), Err(HolderQueryError::Empty));
        assert!(HolderQuery::parse("name?x%").is_err());
        assert!(HolderQuery::parse("serial?XYZ%").is_err());
        assert!(HolderQuery::parse("resident-id?a b%").is_err());
        let entry = HolderCert {
            certificate: crate::enroll::chain::tests::root(
                &crate::enroll::chain::tests::small_key(61),
                "holder query",
            ),
            revoked: false,
        };
        let der = der::Encode::to_der(&entry).unwrap();
        assert_eq!(<HolderCert as der::Decode>::from_der(&der).unwrap(), entry);
    }
}
