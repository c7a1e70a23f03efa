//! The holder query (`docs/ca-protocol.md`, "Holder query"): a genm/genp info type by
//! which the kiosk (as RA) asks the CA which certificates it issued for a resident, a card
//! or given serials. Both ends use these types.

use const_oid::ObjectIdentifier;
use der::Sequence;
use x509_cert::Certificate;

/// The holder query's `InfoTypeAndValue` type. No OID is registered for it: this one is
/// under IANA's enterprise number for documentation (32473, RFC 5612), and a deployment
/// uses the prefecture's own.
pub const IT_HOLDER_CERTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.32473.392.1");

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
