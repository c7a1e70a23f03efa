//! The hash chain: the canonical byte encoding of an entry and its SHA-256.
//!
//! Pure functions, no storage. `docs/audit.md` gives the same format byte by byte; change
//! neither without the other, and never change v1 (logs in the field are hashed with it):
//! a new format gets a new domain tag.
//!
//! Every variable-length field is length-prefixed, so no two different entries share an
//! encoding (moving a byte from one field into the next changes a length).

use sha2::{Digest, Sha256};

/// Domain tag that opens every encoding: hashes of this log are never valid anywhere else.
pub const DOMAIN_TAG: &str = "jpki-kiosk audit v1";

/// The `prev_hash` of entry #1.
pub const GENESIS: [u8; 32] = [0; 32];

/// The fields of an entry exactly as stored (text as written, hashes as raw bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryFields<'a> {
    /// Sequence number, from 1.
    pub seq: u64,
    /// UTC time, `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
    pub at: &'a str,
    /// Operator id; `None` for the kiosk itself.
    pub operator: Option<&'a str>,
    /// Stable action name.
    pub action: &'a str,
    /// Visit id, if the act belongs to a visit.
    pub visit: Option<&'a str>,
    /// `ok` or `failed`.
    pub outcome: &'a str,
    /// Error code of a failure.
    pub error_code: Option<&'a str>,
    /// Details JSON as stored.
    pub details: &'a str,
    /// Hash of the previous entry ([`GENESIS`] for #1).
    pub prev_hash: &'a [u8; 32],
}

/// The canonical encoding of an entry (the input of its hash).
pub fn encode(e: &EntryFields<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(128 + e.details.len());
    put_str(&mut out, DOMAIN_TAG);
    out.extend_from_slice(&e.seq.to_be_bytes());
    put_str(&mut out, e.at);
    put_opt(&mut out, e.operator);
    put_str(&mut out, e.action);
    put_opt(&mut out, e.visit);
    put_str(&mut out, e.outcome);
    put_opt(&mut out, e.error_code);
    put_str(&mut out, e.details);
    out.extend_from_slice(e.prev_hash);
    out
}

/// SHA-256 of [`encode`].
pub fn hash(e: &EntryFields<'_>) -> [u8; 32] {
    Sha256::digest(encode(e)).into()
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    // Stored fields are far below 4 GiB (details are a few hundred bytes); saturate
    // rather than wrap so an absurd field can never alias a short one.
    let len = u32::try_from(s.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_opt(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => out.push(0),
        Some(s) => {
            out.push(1);
            put_str(out, s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> EntryFields<'static> {
        EntryFields {
            seq: 1,
            at: "2026-04-01T00:00:00.000000Z",
            operator: Some("op1"),
            action: "staff.sign_in",
            visit: None,
            outcome: "ok",
            error_code: None,
            details: "{}",
            prev_hash: &GENESIS,
        }
    }

    #[test]
    fn encoding_is_byte_exact() {
        let bytes = encode(&sample());
        let mut expected = Vec::new();
        expected.extend_from_slice(&[0, 0, 0, 19]);
        expected.extend_from_slice(b"jpki-kiosk audit v1");
        expected.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 1]);
        expected.extend_from_slice(&[0, 0, 0, 27]);
        expected.extend_from_slice(b"2026-04-01T00:00:00.000000Z");
        expected.extend_from_slice(&[1, 0, 0, 0, 3]);
        expected.extend_from_slice(b"op1");
        expected.extend_from_slice(&[0, 0, 0, 13]);
        expected.extend_from_slice(b"staff.sign_in");
        expected.push(0);
        expected.extend_from_slice(&[0, 0, 0, 2]);
        expected.extend_from_slice(b"ok");
        expected.push(0);
        expected.extend_from_slice(&[0, 0, 0, 2]);
        expected.extend_from_slice(b"{}");
        expected.extend_from_slice(&[0; 32]);
        assert_eq!(bytes, expected);
        // Pinned (and printed in docs/audit.md): a change to the encoding cannot go unnoticed.
        assert_eq!(
            hex::encode(hash(&sample())),
            "97f1956c0226877f48e402c1ec631e6bd6090db9fff617f68a1c592a28447b68"
        );
    }

    #[test]
    fn every_field_is_covered() {
        let base = hash(&sample());
        static OTHER_PREV: [u8; 32] = [7; 32];
        let edits: [fn(&mut EntryFields<'static>); 9] = [
            |e| e.seq = 2,
            |e| e.at = "2026-04-01T00:00:00.000001Z",
            |e| e.operator = None,
            |e| e.action = "staff.sign_out",
            |e| e.visit = Some(""),
            |e| e.outcome = "failed",
            |e| e.error_code = Some("x"),
            |e| e.details = "{ }",
            |_| {},
        ];
        for (i, edit) in edits.iter().enumerate() {
            let mut e = sample();
            edit(&mut e);
            if i == 8 {
                e.prev_hash = &OTHER_PREV;
            }
            assert_ne!(hash(&e), base, "edit {i} not covered");
        }
    }

    #[test]
    fn field_boundaries_cannot_shift() {
        // "ab" + "c" and "a" + "bc" must differ.
        let mut a = sample();
        a.action = "ab";
        a.outcome = "c";
        let mut b = sample();
        b.action = "a";
        b.outcome = "bc";
        assert_ne!(encode(&a), encode(&b));
        // An absent visit differs from an empty one.
        let mut c = sample();
        c.visit = Some("");
        assert_ne!(encode(&c), encode(&sample()));
    }

    type Fields = (
        u64,
        String,
        Option<String>,
        String,
        Option<String>,
        String,
        Option<String>,
        String,
        [u8; 32],
    );

    fn fields(f: &Fields) -> EntryFields<'_> {
        EntryFields {
            seq: f.0,
            at: &f.1,
            operator: f.2.as_deref(),
            action: &f.3,
            visit: f.4.as_deref(),
            outcome: &f.5,
            error_code: f.6.as_deref(),
            details: &f.7,
            prev_hash: &f.8,
        }
    }

    fn any_fields() -> impl proptest::strategy::Strategy<Value = Fields> {
        use proptest::prelude::*;
        // Any printable text, Japanese included; empty and absent both occur.
        let t = || "\\PC{0,12}";
        let o = || proptest::option::of("\\PC{0,12}");
        (any::<u64>(), t(), o(), t(), o(), t(), o(), t(), any::<[u8; 32]>())
    }

    /// Reads an encoding back: if this always recovers the fields, no two different
    /// entries can share an encoding (and so a hash input).
    fn decode(mut d: &[u8]) -> Option<Fields> {
        fn take<'a>(d: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
            let (head, tail) = (d.get(..n)?, d.get(n..)?);
            *d = tail;
            Some(head)
        }
        fn string(d: &mut &[u8]) -> Option<String> {
            let len = u32::from_be_bytes(take(d, 4)?.try_into().ok()?) as usize;
            String::from_utf8(take(d, len)?.to_vec()).ok()
        }
        fn opt(d: &mut &[u8]) -> Option<Option<String>> {
            match take(d, 1)? {
                [0] => Some(None),
                [1] => string(d).map(Some),
                _ => None,
            }
        }
        if string(&mut d)? != DOMAIN_TAG {
            return None;
        }
        let seq = u64::from_be_bytes(take(&mut d, 8)?.try_into().ok()?);
        let f = (
            seq,
            string(&mut d)?,
            opt(&mut d)?,
            string(&mut d)?,
            opt(&mut d)?,
            string(&mut d)?,
            opt(&mut d)?,
            string(&mut d)?,
            take(&mut d, 32)?.try_into().ok()?,
        );
        d.is_empty().then_some(f)
    }

    proptest::proptest! {
        #[test]
        fn the_encoding_reads_back_exactly(a in any_fields()) {
            proptest::prop_assert_eq!(decode(&encode(&fields(&a))), Some(a));
        }
    }
}
