//! The details of an audit entry: a small JSON object that can only hold values that are
//! not personal data and not secrets.
//!
//! There is deliberately no method that takes free text. Values are counts, flags, codes in
//! a narrow ASCII alphabet, names chosen at compile time, hex serials, operator ids and
//! redacted ids (last three characters shown). A PIN, a name or an address therefore cannot
//! be put into the log through this type. Keys are `&'static str` for the same reason.
//!
//! The JSON text is written once (keys sorted, no spaces) and hashed as stored; readers
//! never re-serialise it before checking the hash.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

use super::action::ErrorCode;
use crate::logging::redact;
use crate::registry::ResidentId;
use crate::staff::OperatorId;

/// The details of one audit entry. Later values replace earlier ones under the same key.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Details(BTreeMap<&'static str, Value>);

impl Details {
    /// No details (stored as `{}`).
    pub fn new() -> Details {
        Details::default()
    }

    /// A count or amount (tries left, yen, number of certificates…).
    pub fn count(mut self, key: &'static str, n: u64) -> Details {
        self.0.insert(key, Value::from(n));
        self
    }

    /// A yes/no fact.
    pub fn flag(mut self, key: &'static str, b: bool) -> Details {
        self.0.insert(key, Value::from(b));
        self
    }

    /// A name fixed at compile time (a document type, a purpose, a visit kind).
    pub fn name(mut self, key: &'static str, value: &'static str) -> Details {
        self.0.insert(key, Value::from(value));
        self
    }

    /// A machine-readable code (status word, CA failure info).
    pub fn code(mut self, key: &'static str, code: &ErrorCode) -> Details {
        self.0.insert(key, Value::from(code.as_str()));
        self
    }

    /// A serial number (certificate serial, CA transaction id), as lower-case hex.
    pub fn serial(mut self, key: &'static str, bytes: &[u8]) -> Details {
        self.0.insert(key, Value::from(hex::encode(bytes)));
        self
    }

    /// A resident, by redacted registry id.
    pub fn resident(mut self, key: &'static str, id: &ResidentId) -> Details {
        self.0.insert(key, Value::from(id.redacted()));
        self
    }

    /// Any other identifier (card number, case number), redacted to its last three
    /// characters.
    pub fn redacted(mut self, key: &'static str, id: &str) -> Details {
        self.0.insert(key, Value::from(redact(id)));
        self
    }

    /// A staff member (a supervisor who approved, an operator enrolled). Staff ids are not
    /// residents' data and are kept whole, as the log must say who acted.
    pub fn operator(mut self, key: &'static str, id: &OperatorId) -> Details {
        self.0.insert(key, Value::from(id.as_str()));
        self
    }

    /// Whether there are no details.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The stored form: a JSON object with sorted keys and no white space.
    pub fn to_json(&self) -> String {
        // Keys are `&'static str` and values are JSON scalars: serialising cannot fail.
        serde_json::to_string(&self.0).unwrap_or_else(|_| String::from("{}"))
    }
}

impl fmt::Debug for Details {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Nothing here is secret (see the module header), so show it.
        write!(f, "Details({})", self.to_json())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_sorted_and_compact() {
        let d = Details::new()
            .count("tries_left", 2)
            .flag("signing", true)
            .name("purpose", "fee_waiver")
            .serial("cert_serial", &[0x01, 0xab]);
        assert_eq!(
            d.to_json(),
            r#"{"cert_serial":"01ab","purpose":"fee_waiver","signing":true,"tries_left":2}"#
        );
        assert_eq!(Details::new().to_json(), "{}");
        assert!(Details::new().is_empty());
    }

    #[test]
    fn ids_are_redacted() {
        let rid = ResidentId::new("1000000001").unwrap();
        let d = Details::new().resident("resident", &rid).redacted("card", "AB12345678");
        let json = d.to_json();
        assert_eq!(json, r#"{"card":"*******678","resident":"*******001"}"#);
        assert!(!format!("{d:?}").contains("1000000001"));
    }
}
