//! The CA's SQLite store (WAL mode): issued certificates, revocations, CRL numbers,
//! transaction responses (for idempotence and polling) and the audit trail.
//!
//! Holders appear only as keyed-hash references (`holder_ref`), never as names or
//! numbers; private keys are not stored here (see [`super::material`]).

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

/// Store errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// SQLite failed (disk full, locked, corrupt file).
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// One certificate to record.
#[derive(Debug, Clone)]
pub struct NewCert<'a> {
    /// Serial, upper-case hex.
    pub serial: &'a str,
    /// `sign` or `auth`.
    pub profile: &'a str,
    /// Redacted holder reference (keyed hash), if the kiosk sent an identifier.
    pub holder_ref: Option<&'a str>,
    /// Redacted card reference (keyed hash).
    pub card_ref: Option<&'a str>,
    /// The CMP transactionID it was issued in.
    pub transaction_id: &'a [u8],
    /// certReqId within the transaction.
    pub cert_req_id: i64,
    /// Municipality code (CRL partition), if given.
    pub municipality: Option<&'a str>,
    /// notAfter (Unix seconds).
    pub not_after: i64,
    /// The certificate's DER.
    pub der: &'a [u8],
    /// SHA-256 of the DER (certConf certHash).
    pub cert_hash: &'a [u8],
    /// Already confirmed (implicitConfirm).
    pub confirmed: bool,
    /// Serial of the certificate this one renews (kur with oldCertID): revoked as
    /// superseded once this one is confirmed.
    pub supersedes: Option<&'a str>,
}

/// A certificate as read back from the store.
#[derive(Debug, Clone)]
pub struct CertRow {
    /// Serial, upper-case hex.
    pub serial: String,
    /// `sign` or `auth`.
    pub profile: String,
    /// certReqId within its transaction.
    pub cert_req_id: i64,
    /// Municipality code, if any.
    pub municipality: Option<String>,
    /// DER.
    pub der: Vec<u8>,
    /// SHA-256 of the DER.
    pub cert_hash: Vec<u8>,
    /// certConf received.
    pub confirmed: bool,
    /// Revoked already.
    pub revoked: bool,
    /// Serial of the certificate it renews, if any.
    pub supersedes: Option<String>,
}

/// A stored transaction answer.
#[derive(Debug, Clone)]
pub struct TxRow {
    /// What kind of request started it (`issue`, `rr`, …).
    pub kind: String,
    /// SHA-256 of the request body, to tell a retry from a reused transactionID.
    pub request_hash: Vec<u8>,
    /// DER of the response body.
    pub response_body: Vec<u8>,
    /// Unix milliseconds from which the answer may be released (polling).
    pub ready_at_ms: i64,
    /// certReqIds answered (for pollRep).
    pub cert_req_ids: String,
}

/// One revoked entry for a CRL.
#[derive(Debug, Clone)]
pub struct RevokedRow {
    /// Serial, upper-case hex.
    pub serial: String,
    /// RFC 5280 CRLReason value.
    pub reason: u32,
    /// Revocation time (Unix seconds).
    pub revoked_at: i64,
    /// Invalidity date (Unix seconds), if known.
    pub invalidity: Option<i64>,
}

/// The store: one SQLite connection.
pub struct Store {
    conn: Connection,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS certs (
  serial TEXT PRIMARY KEY,
  profile TEXT NOT NULL,
  holder_ref TEXT,
  card_ref TEXT,
  transaction_id BLOB NOT NULL,
  cert_req_id INTEGER NOT NULL,
  municipality TEXT,
  not_after INTEGER NOT NULL,
  issued_at INTEGER NOT NULL,
  confirmed INTEGER NOT NULL DEFAULT 0,
  der BLOB NOT NULL,
  cert_hash BLOB NOT NULL,
  supersedes TEXT
);
CREATE INDEX IF NOT EXISTS certs_tx ON certs(transaction_id);
CREATE INDEX IF NOT EXISTS certs_holder ON certs(holder_ref);
CREATE INDEX IF NOT EXISTS certs_card ON certs(card_ref);
CREATE TABLE IF NOT EXISTS revocations (
  serial TEXT PRIMARY KEY,
  profile TEXT NOT NULL,
  municipality TEXT,
  reason INTEGER NOT NULL,
  invalidity INTEGER,
  revoked_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS revocations_scope ON revocations(profile, municipality);
CREATE TABLE IF NOT EXISTS crl_numbers (scope TEXT PRIMARY KEY, number INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS transactions (
  transaction_id BLOB PRIMARY KEY,
  kind TEXT NOT NULL,
  request_hash BLOB NOT NULL,
  response_body BLOB NOT NULL,
  ready_at_ms INTEGER NOT NULL,
  cert_req_ids TEXT NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  at INTEGER NOT NULL,
  actor TEXT NOT NULL,
  action TEXT NOT NULL,
  detail TEXT NOT NULL
);
";

impl Store {
    /// Runs one statement from the connection's statement cache: the CA repeats the same
    /// few statements for every resident, and parsing them each time showed in profiles.
    fn exec(&self, sql: &str, params: impl rusqlite::Params) -> rusqlite::Result<usize> {
        self.conn.prepare_cached(sql)?.execute(params)
    }

    /// One row of a cached statement (see [`Store::exec`]).
    fn row<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        self.conn.prepare_cached(sql)?.query_row(params, f)
    }

    /// Opens (creating if needed) the database at `path`, in WAL mode.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.set_prepared_statement_cache_capacity(64);
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        Ok(Store { conn })
    }

    /// Runs `f` inside one SQLite transaction (all or nothing).
    pub fn atomically<T, E: From<StoreError>>(
        &mut self,
        f: impl FnOnce(&Store) -> Result<T, E>,
    ) -> Result<T, E> {
        self.conn.execute_batch("BEGIN IMMEDIATE").map_err(StoreError::from)?;
        match f(self) {
            Ok(v) => {
                self.conn.execute_batch("COMMIT").map_err(StoreError::from)?;
                Ok(v)
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }

    /// Appends an audit record. `detail` must hold no secrets and no personal data.
    pub fn audit(&self, actor: &str, action: &str, detail: &str) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO audit (at, actor, action, detail) VALUES (?1, ?2, ?3, ?4)",
            params![super::certs::unix_now(), actor, action, detail],
        )?;
        Ok(())
    }

    /// Number of audit records with `action` (for tests and reports).
    pub fn audit_count(&self, action: &str) -> Result<i64, StoreError> {
        Ok(self.row("SELECT COUNT(*) FROM audit WHERE action = ?1", [action], |r| r.get(0))?)
    }

    /// Records an issued certificate.
    pub fn insert_cert(&self, c: &NewCert<'_>) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO certs (serial, profile, holder_ref, card_ref, transaction_id, cert_req_id,
               municipality, not_after, issued_at, confirmed, der, cert_hash, supersedes)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            params![
                c.serial,
                c.profile,
                c.holder_ref,
                c.card_ref,
                c.transaction_id,
                c.cert_req_id,
                c.municipality,
                c.not_after,
                super::certs::unix_now(),
                c.confirmed,
                c.der,
                c.cert_hash,
                c.supersedes
            ],
        )?;
        Ok(())
    }

    fn cert_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<CertRow> {
        Ok(CertRow {
            serial: r.get(0)?,
            profile: r.get(1)?,
            cert_req_id: r.get(2)?,
            municipality: r.get(3)?,
            der: r.get(4)?,
            cert_hash: r.get(5)?,
            confirmed: r.get(6)?,
            revoked: r.get::<_, Option<String>>(7)?.is_some(),
            supersedes: r.get(8)?,
        })
    }

    const CERT_COLS: &'static str = "c.serial, c.profile, c.cert_req_id, c.municipality, c.der,
        c.cert_hash, c.confirmed, r.serial, c.supersedes FROM certs c LEFT JOIN revocations r ON r.serial = c.serial";

    /// The certificates issued in a transaction, by certReqId.
    pub fn certs_by_transaction(&self, tid: &[u8]) -> Result<Vec<CertRow>, StoreError> {
        let sql = format!("SELECT {} WHERE c.transaction_id = ?1 ORDER BY c.cert_req_id", Self::CERT_COLS);
        let mut st = self.conn.prepare_cached(&sql)?;
        let rows = st.query_map([tid], Self::cert_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One certificate by serial.
    pub fn cert_by_serial(&self, serial: &str) -> Result<Option<CertRow>, StoreError> {
        let sql = format!("SELECT {} WHERE c.serial = ?1", Self::CERT_COLS);
        Ok(self.row(&sql, [serial], Self::cert_row).optional()?)
    }

    /// Serials of unrevoked certificates of `profile` whose holder or card reference matches.
    pub fn live_serials_by_ref(
        &self,
        profile: &str,
        holder_ref: Option<&str>,
        card_ref: Option<&str>,
    ) -> Result<Vec<String>, StoreError> {
        let mut st = self.conn.prepare_cached(
            "SELECT c.serial FROM certs c LEFT JOIN revocations r ON r.serial = c.serial
             WHERE c.profile = ?1 AND r.serial IS NULL
               AND ((?2 IS NOT NULL AND c.holder_ref = ?2) OR (?3 IS NOT NULL AND c.card_ref = ?3))
             ORDER BY c.serial",
        )?;
        let rows = st.query_map(params![profile, holder_ref, card_ref], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// (DER, revoked) of every certificate whose holder reference, card reference or serial
    /// matches (the holder query); in issue order.
    pub fn certs_matching(
        &self,
        holder_ref: Option<&str>,
        card_ref: Option<&str>,
        serials: &[String],
    ) -> Result<Vec<(Vec<u8>, bool)>, StoreError> {
        let mut st = self.conn.prepare_cached(
            "SELECT c.der, r.serial IS NOT NULL, c.serial FROM certs c
             LEFT JOIN revocations r ON r.serial = c.serial
             WHERE (?1 IS NOT NULL AND c.holder_ref = ?1) OR (?2 IS NOT NULL AND c.card_ref = ?2)
             ORDER BY c.issued_at, c.serial",
        )?;
        let mut out: Vec<(Vec<u8>, bool, String)> = st
            .query_map(params![holder_ref, card_ref], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?;
        for serial in serials {
            if out.iter().any(|(_, _, s)| s == serial) {
                continue;
            }
            if let Some(c) = self.cert_by_serial(serial)? {
                out.push((c.der, c.revoked, c.serial));
            }
        }
        Ok(out.into_iter().map(|(der, revoked, _)| (der, revoked)).collect())
    }

    /// Marks a certificate confirmed (certConf accepted).
    pub fn confirm(&self, serial: &str) -> Result<(), StoreError> {
        self.exec("UPDATE certs SET confirmed = 1 WHERE serial = ?1", [serial])?;
        Ok(())
    }

    /// Number of certificates issued in a transaction (tests check idempotence with it).
    pub fn count_by_transaction(&self, tid: &[u8]) -> Result<i64, StoreError> {
        Ok(self.row("SELECT COUNT(*) FROM certs WHERE transaction_id = ?1", [tid], |r| r.get(0))?)
    }

    /// Total number of issued certificates.
    pub fn count_certs(&self) -> Result<i64, StoreError> {
        Ok(self.row("SELECT COUNT(*) FROM certs", [], |r| r.get(0))?)
    }

    /// Records a revocation; `false` when the certificate was already revoked.
    pub fn revoke(
        &self,
        cert: &CertRow,
        reason: u32,
        invalidity: Option<i64>,
        at: i64,
    ) -> Result<bool, StoreError> {
        let n = self.exec(
            "INSERT OR IGNORE INTO revocations (serial, profile, municipality, reason, invalidity, revoked_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![cert.serial, cert.profile, cert.municipality, reason, invalidity, at],
        )?;
        Ok(n == 1)
    }

    /// Inserts a revocation row directly (bulk loading for benchmarks and CRL tests).
    pub fn insert_revocation_raw(
        &self,
        serial: &str,
        profile: &str,
        municipality: Option<&str>,
        reason: u32,
        at: i64,
    ) -> Result<(), StoreError> {
        self.exec(
            "INSERT OR IGNORE INTO revocations (serial, profile, municipality, reason, invalidity, revoked_at)
             VALUES (?1, ?2, ?3, ?4, NULL, ?5)",
            params![serial, profile, municipality, reason, at],
        )?;
        Ok(())
    }

    /// Streams the revoked entries of a CRL scope to `f`, one row at a time.
    pub fn for_each_revoked<E: From<StoreError>>(
        &self,
        profile: &str,
        municipality: Option<&str>,
        mut f: impl FnMut(RevokedRow) -> Result<(), E>,
    ) -> Result<(), E> {
        let sql = |e: rusqlite::Error| E::from(StoreError::from(e));
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT serial, reason, revoked_at, invalidity FROM revocations
                 WHERE profile = ?1 AND (?2 IS NULL OR municipality = ?2)",
            )
            .map_err(sql)?;
        let mut rows = st.query(params![profile, municipality]).map_err(sql)?;
        while let Some(r) = rows.next().map_err(sql)? {
            f(RevokedRow {
                serial: r.get(0).map_err(sql)?,
                reason: r.get(1).map_err(sql)?,
                revoked_at: r.get(2).map_err(sql)?,
                invalidity: r.get(3).map_err(sql)?,
            })?;
        }
        Ok(())
    }

    /// Takes the next CRL number of a scope (starting at 1).
    pub fn next_crl_number(&self, scope: &str) -> Result<u64, StoreError> {
        self.exec(
            "INSERT INTO crl_numbers (scope, number) VALUES (?1, 1)
             ON CONFLICT(scope) DO UPDATE SET number = number + 1",
            [scope],
        )?;
        let n: i64 =
            self.row("SELECT number FROM crl_numbers WHERE scope = ?1", [scope], |r| r.get(0))?;
        Ok(n as u64)
    }

    /// The stored answer of a transaction.
    pub fn transaction(&self, tid: &[u8]) -> Result<Option<TxRow>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT kind, request_hash, response_body, ready_at_ms, cert_req_ids
                 FROM transactions WHERE transaction_id = ?1",
                [tid],
                |r| {
                    Ok(TxRow {
                        kind: r.get(0)?,
                        request_hash: r.get(1)?,
                        response_body: r.get(2)?,
                        ready_at_ms: r.get(3)?,
                        cert_req_ids: r.get(4)?,
                    })
                },
            )
            .optional()?)
    }

    /// Stores the answer of a transaction.
    pub fn put_transaction(&self, tid: &[u8], row: &TxRow) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO transactions (transaction_id, kind, request_hash, response_body, ready_at_ms,
               cert_req_ids, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                tid,
                row.kind,
                row.request_hash,
                row.response_body,
                row.ready_at_ms,
                row.cert_req_ids,
                super::certs::unix_now()
            ],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert<'a>(serial: &'a str, tid: &'a [u8]) -> NewCert<'a> {
        NewCert {
            serial,
            profile: "sign",
            holder_ref: Some("h1"),
            card_ref: None,
            transaction_id: tid,
            cert_req_id: 1,
            municipality: Some("131016"),
            not_after: 0,
            der: b"der",
            cert_hash: b"hash",
            confirmed: false,
            supersedes: None,
        }
    }

    #[test]
    fn certs_revocations_and_crl_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("ca.sqlite")).unwrap();
        s.atomically(|s| s.insert_cert(&cert("0A", b"t1"))).unwrap();
        assert!(s.insert_cert(&cert("0A", b"t2")).is_err(), "serials are unique");
        let row = s.cert_by_serial("0A").unwrap().unwrap();
        assert!(!row.confirmed && !row.revoked);
        assert_eq!(s.live_serials_by_ref("sign", Some("h1"), None).unwrap(), vec!["0A"]);
        assert_eq!(s.certs_matching(Some("h1"), None, &[]).unwrap(), vec![(b"der".to_vec(), false)]);
        assert_eq!(s.certs_matching(None, None, &["0A".into()]).unwrap().len(), 1);
        assert!(s.certs_matching(Some("h2"), Some("c9"), &["0B".into()]).unwrap().is_empty());
        assert!(s.revoke(&row, 3, None, 10).unwrap());
        assert!(!s.revoke(&row, 3, None, 11).unwrap(), "second revocation is a no-op");
        assert!(s.live_serials_by_ref("sign", Some("h1"), None).unwrap().is_empty());
        assert_eq!(s.certs_matching(Some("h1"), None, &[]).unwrap(), vec![(b"der".to_vec(), true)]);
        let mut seen = vec![];
        s.for_each_revoked("sign", Some("131016"), |r| {
            seen.push(r.serial);
            Ok::<_, StoreError>(())
        })
        .unwrap();
        assert_eq!(seen, vec!["0A"]);
        s.for_each_revoked("sign", Some("999999"), |_| -> Result<(), StoreError> { panic!("other partition") }).unwrap();
        assert_eq!(s.next_crl_number("sign").unwrap(), 1);
        assert_eq!(s.next_crl_number("sign").unwrap(), 2);
        assert_eq!(s.next_crl_number("auth").unwrap(), 1);
    }

    #[test]
    fn failed_atomic_block_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("ca.sqlite")).unwrap();
        let r: Result<(), StoreError> = s.atomically(|s| {
            s.insert_cert(&cert("01", b"t"))?;
            s.insert_cert(&cert("01", b"t"))
        });
        assert!(r.is_err());
        assert_eq!(s.count_certs().unwrap(), 0);
    }
}
