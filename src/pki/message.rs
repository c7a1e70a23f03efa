//! CMP `PKIMessage` (RFC 4210 §5.1) on top of the `cmpv2` 0.2 types, with the bodies that
//! crate models wrongly replaced by correct ones.
//!
//! `cmpv2` 0.2 decodes `pollReq` as a `PollRepContent` and both poll bodies without their
//! outer `SEQUENCE OF`; its `ErrorMsgContent` has private fields; and its `PKIFailureInfo`
//! flag set stores bit *positions* as flag *values*, so no failInfo bit encodes correctly.
//! `crmf` 0.2 models `regInfo` as `SEQUENCE OF Attribute` (type + `SET OF` values) where
//! RFC 4211 §3 has `SEQUENCE SIZE(1..MAX) OF AttributeTypeAndValue` (type + one value), so
//! it cannot decode a request carrying RFC regInfo. [`Body`] therefore takes over the tags
//! `[0]` (ir), `[2]` (cr), `[7]` (kur) with [`CertReqMsg`], `[23]` (error), `[25]` (pollReq)
//! and `[26]` (pollRep), and hands every other body to `cmpv2::body::PkiBody`.
//!
//! This module only models and encodes messages; protection is in
//! [`super::protection`], meaning (who may send what) in the CA and the client.

use cmpv2::body::PkiBody;
use cmpv2::header::{PkiHeader, Pvno};
use cmpv2::status::PkiStatus;
use const_oid::ObjectIdentifier;
use crmf::pop::ProofOfPossession;
use crmf::request::CertRequest;
use der::asn1::{
    Any, BitString, ContextSpecific, ContextSpecificRef, GeneralizedTime, Int, OctetString, SetOfVec,
    Utf8StringRef,
};
use der::{
    Decode, DecodeValue, Encode, EncodeValue, FixedTag, Header, Length, Reader, Sequence, Tag,
    TagMode, TagNumber, Writer,
};
use rand_core::RngCore;
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::Certificate;

/// `id-it-caCerts` (RFC 9480 §2.7): genm/genp info type for the CA certificates.
pub const ID_IT_CA_CERTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.4.17");
/// `id-it-implicitConfirm` (RFC 4210 §5.1.1.1).
pub const ID_IT_IMPLICIT_CONFIRM: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.4.13");

/// `PKIFailureInfo` (RFC 4210 §5.2.3) as a set of named bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FailInfo(pub u32);

#[allow(missing_docs)]
impl FailInfo {
    pub const BAD_ALG: u8 = 0;
    pub const BAD_MESSAGE_CHECK: u8 = 1;
    pub const BAD_REQUEST: u8 = 2;
    pub const BAD_TIME: u8 = 3;
    pub const BAD_CERT_ID: u8 = 4;
    pub const BAD_DATA_FORMAT: u8 = 5;
    pub const WRONG_AUTHORITY: u8 = 6;
    pub const INCORRECT_DATA: u8 = 7;
    pub const MISSING_TIME_STAMP: u8 = 8;
    pub const BAD_POP: u8 = 9;
    pub const CERT_REVOKED: u8 = 10;
    pub const CERT_CONFIRMED: u8 = 11;
    pub const WRONG_INTEGRITY: u8 = 12;
    pub const BAD_RECIPIENT_NONCE: u8 = 13;
    pub const TIME_NOT_AVAILABLE: u8 = 14;
    pub const UNACCEPTED_POLICY: u8 = 15;
    pub const UNACCEPTED_EXTENSION: u8 = 16;
    pub const ADD_INFO_NOT_AVAILABLE: u8 = 17;
    pub const BAD_SENDER_NONCE: u8 = 18;
    pub const BAD_CERT_TEMPLATE: u8 = 19;
    pub const SIGNER_NOT_TRUSTED: u8 = 20;
    pub const TRANSACTION_ID_IN_USE: u8 = 21;
    pub const UNSUPPORTED_VERSION: u8 = 22;
    pub const NOT_AUTHORIZED: u8 = 23;
    pub const SYSTEM_UNAVAIL: u8 = 24;
    pub const SYSTEM_FAILURE: u8 = 25;
    pub const DUPLICATE_CERT_REQ: u8 = 26;
}

impl FailInfo {
    /// The set holding one bit.
    pub fn bit(bit: u8) -> Self {
        FailInfo(1 << bit)
    }

    /// Whether `bit` is set.
    pub fn has(self, bit: u8) -> bool {
        self.0 & (1 << bit) != 0
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
        let mut v = 0u32;
        for (i, on) in bits.bits().enumerate() {
            if on {
                // Bits beyond the ones RFC 4210 names cannot be represented: ignore them.
                if i < 32 {
                    v |= 1 << i;
                }
            }
        }
        Ok(FailInfo(v))
    }
}

/// `PKIStatusInfo` with owned text and a correct failInfo.
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct StatusInfo {
    /// The status.
    pub status: PkiStatus,
    /// `PKIFreeText`: human-readable reasons.
    pub status_string: Option<Vec<String>>,
    /// Why a request failed.
    pub fail_info: Option<FailInfo>,
}

impl StatusInfo {
    /// A rejection with one failInfo bit and a text.
    pub fn rejection(bit: u8, text: &str) -> Self {
        StatusInfo {
            status: PkiStatus::Rejection,
            status_string: Some(vec![text.to_owned()]),
            fail_info: Some(FailInfo::bit(bit)),
        }
    }
}

/// `ErrorMsgContent` (RFC 4210 §5.3.21).
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct ErrorContent {
    /// Status (normally rejection) and failInfo.
    pub pki_status_info: StatusInfo,
    /// Implementation-specific error code.
    pub error_code: Option<u64>,
    /// Implementation-specific details.
    pub error_details: Option<Vec<String>>,
}

/// One entry of `PollReqContent`.
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct PollReqEntry {
    /// The certReqId being polled for.
    pub cert_req_id: Int,
}

/// One entry of `PollRepContent`.
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct PollRepEntry {
    /// The certReqId answered.
    pub cert_req_id: Int,
    /// Seconds to wait before polling again.
    pub check_after: u64,
    /// Why the client must wait.
    pub reason: Option<Vec<String>>,
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
    /// Proof of possession.
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

const TAG_IR: u8 = 0;
const TAG_CR: u8 = 2;
const TAG_KUR: u8 = 7;
const TAG_ERROR: u8 = 23;
const TAG_POLL_REQ: u8 = 25;
const TAG_POLL_REP: u8 = 26;

/// A `PKIBody`: the `cmpv2` bodies plus correct error and polling bodies.
// One message at a time is in flight; boxing the large cmpv2 body would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Body<'a> {
    /// Every body `cmpv2` models correctly (ip, cp, p10cr, kup, rr, rp, certConf, pkiConf,
    /// genm, genp, …). Its ir/cr/kur still encode (with `crmf`'s regInfo form) but decode
    /// as [`Body::Ir`], [`Body::Cr`], [`Body::Kur`].
    Cmp(PkiBody<'a>),
    /// `[0] ir`.
    Ir(Vec<CertReqMsg>),
    /// `[2] cr`.
    Cr(Vec<CertReqMsg>),
    /// `[7] kur`.
    Kur(Vec<CertReqMsg>),
    /// `[23] error`.
    Error(ErrorContent),
    /// `[25] pollReq`.
    PollReq(Vec<PollReqEntry>),
    /// `[26] pollRep`.
    PollRep(Vec<PollRepEntry>),
}

impl Body<'_> {
    /// The body's name as RFC 4210 spells it (for logs and audit records).
    pub fn name(&self) -> &'static str {
        match self {
            Body::Ir(_) => "ir",
            Body::Cr(_) => "cr",
            Body::Kur(_) => "kur",
            Body::Error(_) => "error",
            Body::PollReq(_) => "pollReq",
            Body::PollRep(_) => "pollRep",
            Body::Cmp(b) => match b {
                PkiBody::Ir(_) => "ir",
                PkiBody::Ip(_) => "ip",
                PkiBody::Cr(_) => "cr",
                PkiBody::Cp(_) => "cp",
                PkiBody::P10cr(_) => "p10cr",
                PkiBody::KUr(_) => "kur",
                PkiBody::Kup(_) => "kup",
                PkiBody::Rr(_) => "rr",
                PkiBody::Rp(_) => "rp",
                PkiBody::CertConf(_) => "certConf",
                PkiBody::PkiConf(_) => "pkiConf",
                PkiBody::GenM(_) => "genm",
                PkiBody::GenP(_) => "genp",
                _ => "other",
            },
        }
    }
}

fn ctx(n: u8) -> TagNumber {
    TagNumber::new(n)
}

impl<'a> Decode<'a> for Body<'a> {
    fn decode<R: Reader<'a>>(reader: &mut R) -> der::Result<Self> {
        let tag = reader.peek_tag()?;
        match tag {
            Tag::ContextSpecific { number, constructed: true } if number == ctx(TAG_IR) => {
                Ok(Body::Ir(ContextSpecific::<Vec<CertReqMsg>>::decode(reader)?.value))
            }
            Tag::ContextSpecific { number, constructed: true } if number == ctx(TAG_CR) => {
                Ok(Body::Cr(ContextSpecific::<Vec<CertReqMsg>>::decode(reader)?.value))
            }
            Tag::ContextSpecific { number, constructed: true } if number == ctx(TAG_KUR) => {
                Ok(Body::Kur(ContextSpecific::<Vec<CertReqMsg>>::decode(reader)?.value))
            }
            Tag::ContextSpecific { number, constructed: true } if number == ctx(TAG_ERROR) => {
                let c = ContextSpecific::<ErrorContent>::decode(reader)?;
                Ok(Body::Error(c.value))
            }
            Tag::ContextSpecific { number, constructed: true } if number == ctx(TAG_POLL_REQ) => {
                let c = ContextSpecific::<Vec<PollReqEntry>>::decode(reader)?;
                Ok(Body::PollReq(c.value))
            }
            Tag::ContextSpecific { number, constructed: true } if number == ctx(TAG_POLL_REP) => {
                let c = ContextSpecific::<Vec<PollRepEntry>>::decode(reader)?;
                Ok(Body::PollRep(c.value))
            }
            _ => Ok(Body::Cmp(PkiBody::decode(reader)?)),
        }
    }
}

fn explicit<T>(n: u8, value: &T) -> ContextSpecificRef<'_, T> {
    ContextSpecificRef { tag_number: ctx(n), tag_mode: TagMode::Explicit, value }
}

impl Encode for Body<'_> {
    fn encoded_len(&self) -> der::Result<Length> {
        match self {
            Body::Cmp(b) => b.encoded_len(),
            Body::Ir(r) => explicit(TAG_IR, r).encoded_len(),
            Body::Cr(r) => explicit(TAG_CR, r).encoded_len(),
            Body::Kur(r) => explicit(TAG_KUR, r).encoded_len(),
            Body::Error(e) => explicit(TAG_ERROR, e).encoded_len(),
            Body::PollReq(p) => explicit(TAG_POLL_REQ, p).encoded_len(),
            Body::PollRep(p) => explicit(TAG_POLL_REP, p).encoded_len(),
        }
    }
    fn encode(&self, writer: &mut impl Writer) -> der::Result<()> {
        match self {
            Body::Cmp(b) => b.encode(writer),
            Body::Ir(r) => explicit(TAG_IR, r).encode(writer),
            Body::Cr(r) => explicit(TAG_CR, r).encode(writer),
            Body::Kur(r) => explicit(TAG_KUR, r).encode(writer),
            Body::Error(e) => explicit(TAG_ERROR, e).encode(writer),
            Body::PollReq(p) => explicit(TAG_POLL_REQ, p).encode(writer),
            Body::PollRep(p) => explicit(TAG_POLL_REP, p).encode(writer),
        }
    }
}

/// `PKIMessage`.
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct Message<'a> {
    /// The header (sender, recipient, transactionID, nonces, protectionAlg, senderKID…).
    pub header: PkiHeader<'a>,
    /// The body.
    pub body: Body<'a>,
    /// The protection bits (MAC or signature over [`ProtectedPart`]).
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    pub protection: Option<BitString>,
    /// Certificates for the recipient: the signer's first, then its chain.
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    pub extra_certs: Option<Vec<Certificate>>,
}

/// `ProtectedPart ::= SEQUENCE { header, body }`: what protection covers.
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct ProtectedPart<'a> {
    /// The header, with protectionAlg and senderKID already set.
    pub header: PkiHeader<'a>,
    /// The body.
    pub body: Body<'a>,
}

impl<'a> Message<'a> {
    /// Decodes a DER message.
    pub fn from_der_bytes(der: &'a [u8]) -> der::Result<Self> {
        Message::from_der(der)
    }

    /// The DER of the part that protection covers.
    pub fn protected_part_der(&self) -> der::Result<Vec<u8>> {
        ProtectedPart { header: self.header.clone(), body: self.body.clone() }.to_der()
    }

    /// The transactionID, if any.
    pub fn transaction_id(&self) -> Option<&[u8]> {
        self.header.trans_id.as_ref().map(|t| t.as_bytes())
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
        let der = FailInfo::bit(FailInfo::BAD_CERT_TEMPLATE).to_der().unwrap();
        assert_eq!(der, [0x03, 0x04, 0x04, 0x00, 0x00, 0x10]);
        let der = FailInfo::bit(FailInfo::BAD_ALG).to_der().unwrap();
        assert_eq!(der, [0x03, 0x02, 0x07, 0x80]);
        let both = FailInfo(FailInfo::bit(2).0 | FailInfo::bit(21).0);
        assert_eq!(FailInfo::from_der(&both.to_der().unwrap()).unwrap(), both);
        assert_eq!(FailInfo::from_der(&FailInfo(0).to_der().unwrap()).unwrap(), FailInfo(0));
    }

    #[test]
    fn error_and_poll_bodies_round_trip() {
        let bodies = [
            Body::Error(ErrorContent {
                pki_status_info: StatusInfo::rejection(FailInfo::BAD_POP, "bad POP"),
                error_code: None,
                error_details: Some(vec!["detail".into()]),
            }),
            Body::PollReq(vec![PollReqEntry { cert_req_id: Int::new(&[1]).unwrap() }]),
            Body::PollRep(vec![PollRepEntry {
                cert_req_id: Int::new(&[0]).unwrap(),
                check_after: 2,
                reason: None,
            }]),
            Body::Cmp(PkiBody::PkiConf(der::asn1::Null)),
        ];
        for body in bodies {
            let msg = Message { header: header(), body, protection: None, extra_certs: None };
            let der = msg.to_der().unwrap();
            assert_eq!(Message::from_der(&der).unwrap(), msg);
        }
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
