//! CMP `PKIMessage` (RFC 4210 §5.1) and its bodies, as the reference CA and the kiosk's
//! client both send and receive them.
//!
//! `cmpv2`/`crmf` 0.2 supply most building blocks (header, `CertRequest`, `RevDetails`,
//! `InfoTypeAndValue` …), but several of their types do not match the RFC and cannot talk
//! to OpenSSL or to each other, so this module declares the corrected ones:
//! - `PKIFailureInfo` stores bit *positions* as flag *values* and cannot decode bits 16–26
//!   (badCertTemplate, transactionIdInUse, systemUnavail …): [`FailInfo`] is a plain
//!   BIT STRING, and every structure holding a `PKIStatusInfo` ([`StatusInfo`]) is declared
//!   here: [`CertRepMessage`], [`RevRepContent`], [`CertStatus`], [`ErrorMsgContent`];
//! - `pollReq` is declared with `PollRepContent`, and neither poll body is a `SEQUENCE OF`;
//! - `ErrorMsgContent`'s fields are private;
//! - `crmf`'s `regInfo` is a `SEQUENCE OF Attribute` (type + `SET OF` values) where RFC 4211
//!   has `SEQUENCE OF AttributeTypeAndValue` ([`CertReqMsg`]).
//!
//! A received message is decoded with [`Received`], which keeps the `ProtectedPart` exactly
//! as the sender encoded it: protection is verified over those bytes, never over a
//! re-encoding. Protection itself is in [`super::protection`]; meaning (who may send what)
//! in the CA and the client. No I/O, no validation beyond decoding.

use cmpv2::body::PkiBody;
use cmpv2::certified_key_pair::CertifiedKeyPair;
use cmpv2::gen::InfoTypeAndValue;
use cmpv2::header::{PkiHeader, Pvno};
use cmpv2::rev::RevDetails;
use cmpv2::status::PkiStatus;
use const_oid::ObjectIdentifier;
use crmf::pop::ProofOfPossession;
use crmf::request::CertRequest;
use der::asn1::{
    Any, AnyRef, BitString, BitStringRef, ContextSpecific, ContextSpecificRef, GeneralizedTime, Int, Null,
    OctetString, SetOfVec, Utf8StringRef,
};
use der::{
    Decode, DecodeValue, Encode, EncodeValue, FixedTag, Header, Length, Reader, Sequence, Tag, TagMode,
    TagNumber, Writer,
};
use rand_core::RngCore;
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::request::CertReq;
use x509_cert::Certificate;

/// `id-it-caCerts` (RFC 9480 §2.7): genm/genp info type for the CA certificates.
pub const ID_IT_CA_CERTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.4.17");
/// `id-it-implicitConfirm` (RFC 4210 §5.1.1.1).
pub const ID_IT_IMPLICIT_CONFIRM: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.4.13");

/// `PKIFreeText ::= SEQUENCE SIZE (1..MAX) OF UTF8String`.
pub type FreeText = Vec<String>;

/// RFC 4210 §5.2.3 failure bits, by bit number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[allow(missing_docs)]
pub enum Failure {
    BadAlg = 0,
    BadMessageCheck = 1,
    BadRequest = 2,
    BadTime = 3,
    BadCertId = 4,
    BadDataFormat = 5,
    WrongAuthority = 6,
    IncorrectData = 7,
    MissingTimeStamp = 8,
    BadPop = 9,
    CertRevoked = 10,
    CertConfirmed = 11,
    WrongIntegrity = 12,
    BadRecipientNonce = 13,
    TimeNotAvailable = 14,
    UnacceptedPolicy = 15,
    UnacceptedExtension = 16,
    AddInfoNotAvailable = 17,
    BadSenderNonce = 18,
    BadCertTemplate = 19,
    SignerNotTrusted = 20,
    TransactionIdInUse = 21,
    UnsupportedVersion = 22,
    NotAuthorized = 23,
    SystemUnavail = 24,
    SystemFailure = 25,
    DuplicateCertReq = 26,
}

const ALL_FAILURES: [Failure; 27] = [
    Failure::BadAlg,
    Failure::BadMessageCheck,
    Failure::BadRequest,
    Failure::BadTime,
    Failure::BadCertId,
    Failure::BadDataFormat,
    Failure::WrongAuthority,
    Failure::IncorrectData,
    Failure::MissingTimeStamp,
    Failure::BadPop,
    Failure::CertRevoked,
    Failure::CertConfirmed,
    Failure::WrongIntegrity,
    Failure::BadRecipientNonce,
    Failure::TimeNotAvailable,
    Failure::UnacceptedPolicy,
    Failure::UnacceptedExtension,
    Failure::AddInfoNotAvailable,
    Failure::BadSenderNonce,
    Failure::BadCertTemplate,
    Failure::SignerNotTrusted,
    Failure::TransactionIdInUse,
    Failure::UnsupportedVersion,
    Failure::NotAuthorized,
    Failure::SystemUnavail,
    Failure::SystemFailure,
    Failure::DuplicateCertReq,
];

/// `PKIFailureInfo` (RFC 4210 §5.2.3): bit n set = failure n. Encoded as a DER named-bit
/// BIT STRING; bits beyond 31, which RFC 4210 does not define, are ignored on decoding.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct FailInfo(pub u32);

impl FailInfo {
    /// Is `f` set?
    pub fn contains(self, f: Failure) -> bool {
        self.0 & (1 << f as u32) != 0
    }

    /// The named failures that are set, in bit order.
    pub fn failures(self) -> Vec<Failure> {
        ALL_FAILURES.iter().copied().filter(|f| self.contains(*f)).collect()
    }

    /// A set with exactly these bits.
    pub fn of(failures: &[Failure]) -> Self {
        FailInfo(failures.iter().fold(0, |acc, f| acc | (1 << *f as u32)))
    }

    fn to_bit_string(self) -> der::Result<BitString> {
        // DER named-bit lists drop trailing zero bits (X.690 §11.2.2).
        let len = 32 - self.0.leading_zeros() as usize;
        let mut bytes = vec![0u8; len.div_ceil(8)];
        for i in 0..len {
            if self.0 & (1 << i) != 0 {
                bytes[i / 8] |= 0x80 >> (i % 8);
            }
        }
        let unused = ((8 - len % 8) % 8) as u8;
        BitString::new(unused, bytes)
    }
}

impl std::fmt::Display for FailInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.failures())
    }
}

impl FixedTag for FailInfo {
    const TAG: Tag = Tag::BitString;
}

impl EncodeValue for FailInfo {
    fn value_len(&self) -> der::Result<Length> {
        self.to_bit_string()?.value_len()
    }
    fn encode_value(&self, writer: &mut impl Writer) -> der::Result<()> {
        self.to_bit_string()?.encode_value(writer)
    }
}

impl<'a> DecodeValue<'a> for FailInfo {
    fn decode_value<R: Reader<'a>>(reader: &mut R, header: Header) -> der::Result<Self> {
        let bits = BitString::decode_value(reader, header)?;
        let v = bits.bits().take(32).enumerate().fold(0u32, |acc, (i, on)| if on { acc | (1 << i) } else { acc });
        Ok(FailInfo(v))
    }
}

/// `PKIStatusInfo` with owned text and a correct failInfo.
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct StatusInfo {
    /// The status.
    pub status: PkiStatus,
    /// `statusString PKIFreeText OPTIONAL`: human-readable reasons.
    pub status_string: Option<FreeText>,
    /// `failInfo PKIFailureInfo OPTIONAL`: why a request failed.
    pub fail_info: Option<FailInfo>,
}

impl StatusInfo {
    /// `accepted`, with nothing else.
    pub fn accepted() -> Self {
        StatusInfo { status: PkiStatus::Accepted, status_string: None, fail_info: None }
    }

    /// A rejection with one failInfo bit and a text.
    pub fn rejection(failure: Failure, text: &str) -> Self {
        StatusInfo {
            status: PkiStatus::Rejection,
            status_string: Some(vec![text.to_owned()]),
            fail_info: Some(FailInfo::of(&[failure])),
        }
    }

    /// The failInfo bits (empty when absent).
    pub fn fail_bits(&self) -> FailInfo {
        self.fail_info.unwrap_or_default()
    }

    /// The status strings joined by " / ".
    pub fn text(&self) -> String {
        self.status_string.as_ref().map(|t| t.join(" / ")).unwrap_or_default()
    }
}

/// `ErrorMsgContent` (RFC 4210 §5.3.21).
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct ErrorMsgContent {
    /// Status (normally rejection) and failInfo.
    pub pki_status_info: StatusInfo,
    /// Implementation-specific error code.
    pub error_code: Option<i64>,
    /// Implementation-specific details.
    pub error_details: Option<FreeText>,
}

/// `CertReqMsg` (RFC 4211 §3) with `regInfo` as the RFC has it.
///
/// Each regInfo entry is decoded as `SEQUENCE { type OID, value ANY }`, which also accepts
/// the `crmf` 0.2 form (`value` a `SET OF` with one element); [`CertReqMsg::reg_info_utf8`]
/// reads either. The entries keep their bytes, so a re-encoding equals what was received.
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct CertReqMsg {
    /// The request proper.
    pub cert_req: CertRequest,
    /// Proof of possession (`raVerified` when the kiosk acts as RA).
    pub popo: Option<ProofOfPossession>,
    /// `regInfo SEQUENCE SIZE(1..MAX) OF AttributeTypeAndValue OPTIONAL`.
    pub reg_info: Option<Vec<AttributeTypeAndValue>>,
}

impl CertReqMsg {
    /// The UTF8String value of the first regInfo entry of type `oid`, in the RFC 4211 form
    /// (`AttributeTypeAndValue`) or the `crmf` 0.2 form (one value in a `SET OF`).
    /// `Ok(None)` when there is no such entry; an error when its value is not one UTF8String.
    pub fn reg_info_utf8(&self, oid: ObjectIdentifier) -> der::Result<Option<String>> {
        let Some(entry) = self.reg_info.iter().flatten().find(|e| e.oid == oid) else {
            return Ok(None);
        };
        let single;
        let value = if der::Tagged::tag(&entry.value) == Tag::Set {
            let set: SetOfVec<Any> = entry.value.decode_as()?;
            if set.len() != 1 {
                return Err(der::Error::new(der::ErrorKind::Value { tag: Tag::Set }, Length::ZERO));
            }
            single = set.into_vec().remove(0);
            &single
        } else {
            &entry.value
        };
        let s: Utf8StringRef<'_> = value.decode_as()?;
        Ok(Some(s.as_str().to_owned()))
    }
}

/// `CertResponse` (RFC 4210 §5.3.4).
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
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
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct CertRepMessage {
    /// `caPubs [1] SEQUENCE OF CMPCertificate OPTIONAL`.
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", constructed = "true", optional = "true")]
    pub ca_pubs: Option<Vec<Certificate>>,
    /// One response per request.
    pub response: Vec<CertResponse>,
}

/// `CertStatus` (element of certConf).
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct CertStatus {
    /// Hash of the certificate, with the hash of its signature algorithm.
    pub cert_hash: OctetString,
    /// Which request. Kept as a raw INTEGER: the CA ignores entries whose id it cannot
    /// read instead of refusing the whole message.
    pub cert_req_id: Int,
    /// Absent means accepted.
    pub status_info: Option<StatusInfo>,
}

/// `RevRepContent` (RFC 4210 §5.3.10).
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
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

/// One entry of `PollReqContent`.
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct PollReqEntry {
    /// The certReqId being polled for (a raw INTEGER, as in [`CertStatus`]).
    pub cert_req_id: Int,
}

/// One entry of `PollRepContent`.
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct PollRepEntry {
    /// The certReqId answered.
    pub cert_req_id: i64,
    /// Seconds to wait before polling again.
    pub check_after: i64,
    /// Why the client must wait.
    pub reason: Option<FreeText>,
}

/// An INTEGER holding `v`, minimally encoded.
pub fn int_from_i64(v: i64) -> Int {
    // Through der's own INTEGER encoding, so the value is minimal.
    Int::from_der(&v.to_der().expect("i64 encodes")).expect("INTEGER decodes")
}

/// The value of an INTEGER, if it fits an `i64`.
pub fn int_to_i64(i: &Int) -> Option<i64> {
    i64::from_der(&i.to_der().ok()?).ok()
}

/// A `PKIBody` (RFC 4210 §5.1.2): every body the CA or the client sends or accepts, with
/// the corrected types above.
// One message at a time is in flight; boxing the larger variants would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Body {
    /// `[0] ir`.
    Ir(Vec<CertReqMsg>),
    /// `[1] ip`.
    Ip(CertRepMessage),
    /// `[2] cr`.
    Cr(Vec<CertReqMsg>),
    /// `[3] cp`.
    Cp(CertRepMessage),
    /// `[4] p10cr`.
    P10cr(CertReq),
    /// `[7] kur`.
    Kur(Vec<CertReqMsg>),
    /// `[8] kup`.
    Kup(CertRepMessage),
    /// `[11] rr`.
    Rr(Vec<RevDetails>),
    /// `[12] rp`.
    Rp(RevRepContent),
    /// `[19] pkiconf`.
    PkiConf(Null),
    /// `[21] genm`.
    GenM(Vec<InfoTypeAndValue>),
    /// `[22] genp`.
    GenP(Vec<InfoTypeAndValue>),
    /// `[23] error`.
    Error(ErrorMsgContent),
    /// `[24] certConf`.
    CertConf(Vec<CertStatus>),
    /// `[25] pollReq`.
    PollReq(Vec<PollReqEntry>),
    /// `[26] pollRep`.
    PollRep(Vec<PollRepEntry>),
    /// Any other body `cmpv2` can decode (popdecc, krr, ccr, …), kept as its TLV: nobody
    /// here handles them, but the CA answers them with a CMP error rather than HTTP 400.
    Other(Any),
}

const TAG_IR: u8 = 0;
const TAG_IP: u8 = 1;
const TAG_CR: u8 = 2;
const TAG_CP: u8 = 3;
const TAG_P10CR: u8 = 4;
const TAG_KUR: u8 = 7;
const TAG_KUP: u8 = 8;
const TAG_RR: u8 = 11;
const TAG_RP: u8 = 12;
const TAG_PKICONF: u8 = 19;
const TAG_GENM: u8 = 21;
const TAG_GENP: u8 = 22;
const TAG_ERROR: u8 = 23;
const TAG_CERT_CONF: u8 = 24;
const TAG_POLL_REQ: u8 = 25;
const TAG_POLL_REP: u8 = 26;

impl Body {
    /// The body's name as RFC 4210 spells it (for errors, logs and audit records).
    pub fn name(&self) -> &'static str {
        match self {
            Body::Ir(_) => "ir",
            Body::Ip(_) => "ip",
            Body::Cr(_) => "cr",
            Body::Cp(_) => "cp",
            Body::P10cr(_) => "p10cr",
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
            Body::Other(_) => "other",
        }
    }
}

/// The value inside an explicit context tag.
fn tagged<'a, T: Decode<'a>, R: Reader<'a>>(reader: &mut R) -> der::Result<T> {
    Ok(ContextSpecific::<T>::decode(reader)?.value)
}

impl<'a> Decode<'a> for Body {
    fn decode<R: Reader<'a>>(reader: &mut R) -> der::Result<Self> {
        let number = match reader.peek_tag()? {
            Tag::ContextSpecific { number, constructed: true } => number.value(),
            _ => u8::MAX,
        };
        Ok(match number {
            TAG_IR => Body::Ir(tagged(reader)?),
            TAG_IP => Body::Ip(tagged(reader)?),
            TAG_CR => Body::Cr(tagged(reader)?),
            TAG_CP => Body::Cp(tagged(reader)?),
            TAG_P10CR => Body::P10cr(tagged(reader)?),
            TAG_KUR => Body::Kur(tagged(reader)?),
            TAG_KUP => Body::Kup(tagged(reader)?),
            TAG_RR => Body::Rr(tagged(reader)?),
            TAG_RP => Body::Rp(tagged(reader)?),
            TAG_PKICONF => Body::PkiConf(tagged(reader)?),
            TAG_GENM => Body::GenM(tagged(reader)?),
            TAG_GENP => Body::GenP(tagged(reader)?),
            TAG_ERROR => Body::Error(tagged(reader)?),
            TAG_CERT_CONF => Body::CertConf(tagged(reader)?),
            TAG_POLL_REQ => Body::PollReq(tagged(reader)?),
            TAG_POLL_REP => Body::PollRep(tagged(reader)?),
            _ => {
                // Only what is a PKIBody at all: anything else is an undecodable message.
                let any = Any::decode(reader)?;
                PkiBody::from_der(&any.to_der()?)?;
                Body::Other(any)
            }
        })
    }
}

fn explicit<T>(n: u8, value: &T) -> ContextSpecificRef<'_, T> {
    ContextSpecificRef { tag_number: TagNumber::new(n), tag_mode: TagMode::Explicit, value }
}

/// Applies `$f` to (a reference to) the body's content wrapped in its explicit context tag.
macro_rules! with_tagged {
    ($body:expr, $f:expr) => {
        match $body {
            Body::Ir(v) => $f(&explicit(TAG_IR, v)),
            Body::Ip(v) => $f(&explicit(TAG_IP, v)),
            Body::Cr(v) => $f(&explicit(TAG_CR, v)),
            Body::Cp(v) => $f(&explicit(TAG_CP, v)),
            Body::P10cr(v) => $f(&explicit(TAG_P10CR, v)),
            Body::Kur(v) => $f(&explicit(TAG_KUR, v)),
            Body::Kup(v) => $f(&explicit(TAG_KUP, v)),
            Body::Rr(v) => $f(&explicit(TAG_RR, v)),
            Body::Rp(v) => $f(&explicit(TAG_RP, v)),
            Body::PkiConf(v) => $f(&explicit(TAG_PKICONF, v)),
            Body::GenM(v) => $f(&explicit(TAG_GENM, v)),
            Body::GenP(v) => $f(&explicit(TAG_GENP, v)),
            Body::Error(v) => $f(&explicit(TAG_ERROR, v)),
            Body::CertConf(v) => $f(&explicit(TAG_CERT_CONF, v)),
            Body::PollReq(v) => $f(&explicit(TAG_POLL_REQ, v)),
            Body::PollRep(v) => $f(&explicit(TAG_POLL_REP, v)),
            Body::Other(v) => $f(v),
        }
    };
}

impl Encode for Body {
    fn encoded_len(&self) -> der::Result<Length> {
        with_tagged!(self, |t| Encode::encoded_len(t))
    }
    fn encode(&self, writer: &mut impl Writer) -> der::Result<()> {
        with_tagged!(self, |t| Encode::encode(t, writer))
    }
}

/// `PKIMessage`.
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct Message<'a> {
    /// The header (sender, recipient, transactionID, nonces, protectionAlg, senderKID…).
    pub header: PkiHeader<'a>,
    /// The body.
    pub body: Body,
    /// The protection bits (MAC or signature over [`ProtectedPart`]).
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    pub protection: Option<BitString>,
    /// Certificates for the recipient: the signer's first, then its chain.
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", constructed = "true", optional = "true")]
    pub extra_certs: Option<Vec<Certificate>>,
}

/// `ProtectedPart ::= SEQUENCE { header, body }`: what protection covers, with header and
/// body as encoded TLVs so that it is built from the bytes actually sent or received.
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct ProtectedPart<'a> {
    /// The encoded `PKIHeader`.
    pub header: AnyRef<'a>,
    /// The encoded `PKIBody`.
    pub body: AnyRef<'a>,
}

impl<'a> Message<'a> {
    /// Decodes a DER message.
    pub fn from_der_bytes(der: &'a [u8]) -> der::Result<Self> {
        Message::from_der(der)
    }

    /// The DER of the part that protection covers, for a message being built.
    pub fn protected_part_der(&self) -> der::Result<Vec<u8>> {
        let header = self.header.to_der()?;
        let body = self.body.to_der()?;
        ProtectedPart { header: AnyRef::from_der(&header)?, body: AnyRef::from_der(&body)? }.to_der()
    }

    /// The transactionID, if any.
    pub fn transaction_id(&self) -> Option<&[u8]> {
        self.header.trans_id.as_ref().map(|t| t.as_bytes())
    }
}

/// `PKIMessage` with header and body left as TLVs: the first step of decoding [`Received`].
#[derive(Sequence)]
struct RawMessage<'a> {
    header: AnyRef<'a>,
    body: AnyRef<'a>,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    protection: Option<BitStringRef<'a>>,
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", constructed = "true", optional = "true")]
    extra_certs: Option<Vec<Certificate>>,
}

/// A received message: decoded, plus its `ProtectedPart` exactly as the sender encoded it.
#[derive(Clone, Debug)]
pub struct Received<'a> {
    /// The decoded message.
    pub message: Message<'a>,
    /// DER of `ProtectedPart` built from the received header and body bytes: the input
    /// protection is verified over.
    pub protected_part: Vec<u8>,
}

impl<'a> Received<'a> {
    /// Decodes a DER message.
    pub fn from_der(der: &'a [u8]) -> der::Result<Self> {
        let raw = RawMessage::from_der(der)?;
        let header: PkiHeader<'a> = raw.header.decode_as()?;
        let body = Body::from_der(&raw.body.to_der()?)?;
        let protection = raw.protection.map(|p| BitString::new(p.unused_bits(), p.raw_bytes())).transpose()?;
        let protected_part = ProtectedPart { header: raw.header, body: raw.body }.to_der()?;
        Ok(Received {
            message: Message { header, body, protection, extra_certs: raw.extra_certs },
            protected_part,
        })
    }
}

/// 16 fresh random bytes for a nonce or transactionID (RFC 4210 §5.1.1: 128 bits).
pub fn random_nonce() -> OctetString {
    let mut n = [0u8; 16];
    rand_core::OsRng.fill_bytes(&mut n);
    OctetString::new(n.to_vec()).expect("16 bytes fit an OCTET STRING")
}

/// A header for a new message: pvno 2, messageTime now, a fresh senderNonce.
pub fn new_header(
    sender: GeneralName,
    recipient: GeneralName,
    trans_id: OctetString,
    recip_nonce: Option<OctetString>,
) -> PkiHeader<'static> {
    let now = GeneralizedTime::from_system_time(std::time::SystemTime::now()).ok();
    PkiHeader {
        pvno: Pvno::Cmp2000,
        sender,
        recipient,
        message_time: now,
        protection_alg: None,
        sender_kid: None,
        recip_kid: None,
        trans_id: Some(trans_id),
        sender_nonce: Some(random_nonce()),
        recip_nonce,
        free_text: None,
        general_info: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_cert::name::Name;

    fn header() -> PkiHeader<'static> {
        let n = GeneralName::DirectoryName(Name::default());
        new_header(n.clone(), n, random_nonce(), None)
    }

    #[test]
    fn fail_info_encodes_named_bits() {
        // badCertTemplate = bit 19: three bytes, the last with 4 unused bits.
        let der = FailInfo::of(&[Failure::BadCertTemplate]).to_der().unwrap();
        assert_eq!(der, [0x03, 0x04, 0x04, 0x00, 0x00, 0x10]);
        let der = FailInfo::of(&[Failure::BadAlg]).to_der().unwrap();
        assert_eq!(der, [0x03, 0x02, 0x07, 0x80]);
        let both = FailInfo::of(&[Failure::BadRequest, Failure::TransactionIdInUse]);
        assert_eq!(FailInfo::from_der(&both.to_der().unwrap()).unwrap(), both);
        assert_eq!(both.failures(), [Failure::BadRequest, Failure::TransactionIdInUse]);
        assert_eq!(FailInfo::from_der(&FailInfo(0).to_der().unwrap()).unwrap(), FailInfo(0));
    }

    #[test]
    fn fail_info_bits_above_sixteen_survive_a_round_trip() {
        // badCertTemplate (19) and systemUnavail (24): cmpv2 0.2 cannot decode these. The
        // BIT STRING here is not minimal (7 unused bits of a fourth byte): still accepted.
        let mut bytes = [0u8; 4];
        for bit in [19usize, 24] {
            bytes[bit / 8] |= 0x80 >> (bit % 8);
        }
        let bits = BitString::new(7, &bytes[..]).unwrap();
        let status = [&[0x02, 0x01, 0x02][..], &bits.to_der().unwrap()].concat();
        let si = [&[0x30, status.len() as u8][..], &status].concat();
        let err = [&[0x30, si.len() as u8][..], &si].concat();
        let der = [&[0xB7, err.len() as u8][..], &err].concat();
        let Body::Error(e) = Body::from_der(&der).unwrap() else { panic!("not an error body") };
        assert_eq!(e.pki_status_info.fail_bits(), FailInfo::of(&[Failure::BadCertTemplate, Failure::SystemUnavail]));
        assert_eq!(e.pki_status_info.text(), "");
    }

    #[test]
    fn error_and_poll_bodies_round_trip() {
        let bodies = [
            Body::Error(ErrorMsgContent {
                pki_status_info: StatusInfo::rejection(Failure::BadPop, "bad POP"),
                error_code: None,
                error_details: Some(vec!["detail".into()]),
            }),
            Body::PollReq(vec![PollReqEntry { cert_req_id: Int::new(&[1]).unwrap() }]),
            Body::PollRep(vec![PollRepEntry {
                cert_req_id: 0,
                check_after: 2,
                reason: None,
            }]),
            Body::PkiConf(Null),
            Body::Rp(RevRepContent { status: vec![StatusInfo::accepted()], rev_certs: None, crls: None }),
            Body::CertConf(vec![CertStatus {
                cert_hash: OctetString::new(vec![1; 32]).unwrap(),
                cert_req_id: int_from_i64(1),
                status_info: Some(StatusInfo::rejection(Failure::BadCertTemplate, "no")),
            }]),
            Body::GenM(vec![InfoTypeAndValue { oid: ID_IT_CA_CERTS, value: None }]),
        ];
        for body in bodies {
            let msg = Message { header: header(), body, protection: None, extra_certs: None };
            let der = msg.to_der().unwrap();
            assert_eq!(Message::from_der(&der).unwrap(), msg);
            let received = Received::from_der(&der).unwrap();
            assert_eq!(received.message, msg);
            assert_eq!(received.protected_part, msg.protected_part_der().unwrap());
        }
    }

    #[test]
    fn bodies_nobody_handles_decode_as_other_and_garbage_does_not() {
        // [5] popdecc with an empty list of challenges.
        let der = [0xA5, 0x02, 0x30, 0x00];
        let body = Body::from_der(&der).unwrap();
        assert_eq!(body.name(), "other");
        assert_eq!(body.to_der().unwrap(), der);
        // [30] is no PKIBody, nor is a primitive [1].
        assert!(Body::from_der(&[0xBE, 0x02, 0x30, 0x00]).is_err());
        assert!(Body::from_der(&[0x81, 0x00]).is_err());
    }

    #[test]
    fn integers_convert_minimally() {
        assert_eq!(int_from_i64(0).as_bytes(), [0]);
        assert_eq!(int_from_i64(200).as_bytes(), [0, 200]);
        assert_eq!(int_to_i64(&int_from_i64(-5)), Some(-5));
        assert_eq!(int_to_i64(&Int::new(&[1; 9]).unwrap()), None);
    }

    #[test]
    fn poll_req_wire_form_is_sequence_of_sequence() {
        let body = Body::PollReq(vec![PollReqEntry { cert_req_id: Int::new(&[0]).unwrap() }]);
        // [25] { SEQUENCE { SEQUENCE { INTEGER 0 } } }
        assert_eq!(body.to_der().unwrap(), [0xB9, 0x07, 0x30, 0x05, 0x30, 0x03, 0x02, 0x01, 0x00]);
    }

    fn req_with_reg_info(entry_der: &[u8]) -> Vec<u8> {
        // ir { CertReqMsg { certReq { certReqId 0, certTemplate {} }, regInfo { entry } } }
        let cert_req = [0x30, 0x05, 0x02, 0x01, 0x00, 0x30, 0x00];
        let reg_info = [&[0x30, entry_der.len() as u8][..], entry_der].concat();
        let msg_body = [&cert_req[..], &reg_info[..]].concat();
        let msg = [&[0x30, msg_body.len() as u8][..], &msg_body[..]].concat();
        let seq = [&[0x30, msg.len() as u8][..], &msg[..]].concat();
        [&[0xA0, seq.len() as u8][..], &seq[..]].concat()
    }

    fn utf8_pairs_entry(set_form: bool) -> Vec<u8> {
        // id-regInfo-utf8Pairs 1.3.6.1.5.5.7.5.2.1, value UTF8String "card-id?C1%".
        let oid = [0x06, 0x09, 0x2B, 0x06, 0x01, 0x05, 0x05, 0x07, 0x05, 0x02, 0x01];
        let text = b"card-id?C1%";
        let utf8 = [&[0x0C, text.len() as u8][..], &text[..]].concat();
        let value = if set_form { [&[0x31, utf8.len() as u8][..], &utf8[..]].concat() } else { utf8 };
        let inner = [&oid[..], &value[..]].concat();
        [&[0x30, inner.len() as u8][..], &inner[..]].concat()
    }

    #[test]
    fn reg_info_decodes_in_rfc_and_set_forms_and_re_encodes_byte_for_byte() {
        let oid = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.5.2.1");
        for set_form in [false, true] {
            let der = req_with_reg_info(&utf8_pairs_entry(set_form));
            let body = Body::from_der(&der).unwrap();
            let Body::Ir(reqs) = &body else { panic!("not ir: {}", body.name()) };
            assert_eq!(reqs[0].reg_info_utf8(oid).unwrap().as_deref(), Some("card-id?C1%"), "set form {set_form}");
            assert_eq!(reqs[0].reg_info_utf8(ID_IT_CA_CERTS).unwrap(), None);
            // Protection is computed over a re-encoding: it must be the bytes received.
            assert_eq!(body.to_der().unwrap(), der);
        }
        // A SET with two values, or a value that is not a UTF8String, is refused.
        // (Entry layout: 30 L | 06 09 <oid> | value at offset 13.)
        let mut two = utf8_pairs_entry(true);
        let utf8 = two[15..].to_vec();
        two.extend_from_slice(&utf8);
        two[1] += utf8.len() as u8;
        two[14] += utf8.len() as u8;
        let Body::Ir(reqs) = Body::from_der(&req_with_reg_info(&two)).unwrap() else { panic!() };
        assert!(reqs[0].reg_info_utf8(oid).is_err());
        let mut int = utf8_pairs_entry(false);
        int[13] = 0x02;
        let Body::Ir(reqs) = Body::from_der(&req_with_reg_info(&int)).unwrap() else { panic!() };
        assert!(reqs[0].reg_info_utf8(oid).is_err());
    }

    #[test]
    fn cr_and_kur_decode_with_the_corrected_request_type() {
        let ir = req_with_reg_info(&utf8_pairs_entry(false));
        for (tag, name) in [(0xA2u8, "cr"), (0xA7, "kur")] {
            let mut der = ir.clone();
            der[0] = tag;
            let body = Body::from_der(&der).unwrap();
            assert_eq!(body.name(), name);
            assert_eq!(body.to_der().unwrap(), der);
        }
    }
}
