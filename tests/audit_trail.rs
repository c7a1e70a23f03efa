//! The audit trail against real SQLite files: tampering the way someone with write access
//! to the file would (triggers dropped, rows changed, removed, swapped, inserted, forged)
//! and verification naming the first bad entry; staff sign-in, lock-out and supervisor
//! approvals stored in the same file; and the logging set-up with and without a journald
//! socket, in a private mount namespace (needs root, as the CI runs).

use std::path::{Path, PathBuf};
use std::time::Instant;

use jpki_kiosk::audit::{
    self, chain, Action, Anchor, AuditError, AuditLog, Break, BreakReason, Details, ErrorCode,
    Record, VisitId,
};
use jpki_kiosk::registry::ResidentId;
use jpki_kiosk::staff::{
    ApprovalError, ApprovalPurpose, NewOperator, OperatorId, Passphrase, Role, Session,
    SignInError, StaffDirectory, StaffError,
};
use rusqlite::Connection;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const T0: OffsetDateTime = datetime!(2026-04-01 00:30 UTC);

fn op(id: &str) -> OperatorId {
    OperatorId::new(id).unwrap()
}

fn pass(s: &str) -> Passphrase {
    Passphrase::new(s.to_owned()).unwrap()
}

/// A realistic mix of records: visits with card and CA steps, some failures.
fn record(i: u64) -> Record {
    let actions = [
        Action::VisitStarted,
        Action::RegistryChecked,
        Action::IdentityRecorded,
        Action::CardDetected,
        Action::PinsSet,
        Action::KeysGenerated,
        Action::CaRequestSent,
        Action::CaAnswered,
        Action::CertificatesWritten,
        Action::CardVerified,
        Action::FeeRecorded,
        Action::ReceiptPrinted,
        Action::VisitEnded,
    ];
    let action = actions[(i % actions.len() as u64) as usize];
    let visit = VisitId::new(&format!("v-20260401-{:04}", i / actions.len() as u64)).unwrap();
    let resident = ResidentId::new(&format!("10000{:05}", i % 977)).unwrap();
    let mut rec = Record::new(T0 + Duration::seconds(i as i64), Some(&op("clerk-01")), action)
        .visit(&visit)
        .details(
            Details::new()
                .resident("resident", &resident)
                .count("step", i)
                .serial("cert_serial", &i.to_be_bytes()),
        );
    if i % 11 == 5 {
        rec = rec.failed(ErrorCode::new("sw:6983").unwrap());
    }
    rec
}

/// A log file with `n` entries, closed again.
fn log_file(dir: &Path, n: u64) -> PathBuf {
    let path = dir.join(audit::DEFAULT_FILE_NAME);
    let mut log = AuditLog::open(&path).unwrap();
    for i in 0..n {
        log.append(&record(i)).unwrap();
    }
    path
}

/// What an attacker with file access does first: remove the guards.
fn drop_triggers(conn: &Connection) {
    conn.execute_batch(
        "DROP TRIGGER audit_log_no_update;
         DROP TRIGGER audit_log_no_delete;
         DROP TRIGGER audit_log_next_link;",
    )
    .unwrap();
}

/// Builds a 20-entry log, tampers with it (triggers dropped, then put back as a careful
/// attacker would), and returns what verification says.
fn tamper(sql: &str) -> Result<audit::VerifyReport, AuditError> {
    let dir = tempfile::tempdir().unwrap();
    let path = log_file(dir.path(), 20);
    {
        let conn = Connection::open(&path).unwrap();
        drop_triggers(&conn);
        conn.execute_batch(sql).unwrap();
    }
    // The triggers are put back (as a careful attacker would): the chain alone must tell.
    drop(AuditLog::open_reinstalling_guards(&path).unwrap());
    audit::verify_file(&path)
}

fn broken_at(result: Result<audit::VerifyReport, AuditError>) -> Break {
    match result {
        Err(AuditError::Tampered(b)) => b,
        other => panic!("expected a broken chain, got {other:?}"),
    }
}

#[test]
fn an_untampered_log_of_1000_entries_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let path = log_file(dir.path(), 1000);
    let appended = started.elapsed();
    let started = Instant::now();
    let report = audit::verify_file(&path).unwrap();
    let verified = started.elapsed();
    eprintln!("1000 appends (synchronous=FULL): {appended:?}; verify_file: {verified:?}");
    assert_eq!(report.entries, 1000);
    assert_eq!(report.exit_code(), 0);
    assert_eq!(report.first_at.as_deref(), Some("2026-04-01T00:30:00.000000Z"));
    assert_eq!(report.last_at.as_deref(), Some("2026-04-01T00:46:39.000000Z"));
    let head = report.head.unwrap();
    assert_eq!(head.seq, 1000);
    assert!(report.to_string().contains(&head.to_string()));

    // The printed head parses back and anchors the chain; appending goes on from it.
    let printed: Anchor = head.to_string().parse().unwrap();
    let mut log = AuditLog::open(&path).unwrap();
    assert_eq!(log.head().unwrap(), Some(printed));
    let next = log.append(&record(1000)).unwrap();
    assert_eq!(next.seq, 1001);
    let report = audit::verify_anchored(log.connection(), &printed).unwrap();
    assert_eq!(report.entries, 1001);
}

#[test]
fn a_changed_field_is_named() {
    let b = broken_at(tamper(
        r#"UPDATE audit_log SET details = '{"resident":"*******042"}' WHERE seq = 7;"#,
    ));
    assert_eq!(b, Break { seq: 7, reason: BreakReason::HashMismatch });
    let b = broken_at(tamper("UPDATE audit_log SET operator = 'clerk-02' WHERE seq = 12;"));
    assert_eq!(b, Break { seq: 12, reason: BreakReason::HashMismatch });
    let b =
        broken_at(tamper("UPDATE audit_log SET outcome = 'ok', error_code = NULL WHERE seq = 6;"));
    assert_eq!(b, Break { seq: 6, reason: BreakReason::HashMismatch });
}

#[test]
fn a_removed_entry_is_named() {
    let b = broken_at(tamper("DELETE FROM audit_log WHERE seq = 9;"));
    assert_eq!(b, Break { seq: 9, reason: BreakReason::Missing { found: 10 } });
    // Removing and renumbering the rest breaks the link at the removed place.
    let b = broken_at(tamper(
        "DELETE FROM audit_log WHERE seq = 9;
         UPDATE audit_log SET seq = seq - 1 WHERE seq > 9;",
    ));
    assert_eq!(b, Break { seq: 9, reason: BreakReason::HashMismatch });
}

#[test]
fn swapped_contents_are_named_at_the_first_of_the_two() {
    // Every column but the number, hashes included (parked first: hashes are UNIQUE).
    let cols = "at, operator, action, visit, outcome, error_code, details, prev_hash, hash";
    let b = broken_at(tamper(&format!(
        "CREATE TEMP TABLE a AS SELECT * FROM audit_log WHERE seq = 5;
         CREATE TEMP TABLE b AS SELECT * FROM audit_log WHERE seq = 15;
         UPDATE audit_log SET hash = randomblob(32) WHERE seq IN (5, 15);
         UPDATE audit_log SET ({cols}) = (SELECT {cols} FROM b) WHERE seq = 5;
         UPDATE audit_log SET ({cols}) = (SELECT {cols} FROM a) WHERE seq = 15;"
    )));
    assert_eq!(b, Break { seq: 5, reason: BreakReason::HashMismatch });
}

#[test]
fn reordered_entries_are_named() {
    // Swap the numbers of #5 and #6: every field kept, the order changed.
    let b = broken_at(tamper(
        "UPDATE audit_log SET seq = 1005 WHERE seq = 5;
         UPDATE audit_log SET seq = 5 WHERE seq = 6;
         UPDATE audit_log SET seq = 6 WHERE seq = 1005;",
    ));
    assert_eq!(b, Break { seq: 5, reason: BreakReason::HashMismatch });
}

#[test]
fn an_appended_forged_row_is_named() {
    let b = broken_at(tamper(
        "INSERT INTO audit_log (seq, at, operator, action, visit, outcome, error_code, details, prev_hash, hash)
         SELECT 21, '2026-04-01T01:00:00.000000Z', 'clerk-01', 'fee.waived', NULL, 'ok', NULL, '{}',
                hash, randomblob(32)
         FROM audit_log WHERE seq = 20;",
    ));
    assert_eq!(b, Break { seq: 21, reason: BreakReason::HashMismatch });
}

#[test]
fn an_inserted_row_with_a_correct_hash_breaks_the_next_one() {
    // The attacker knows the format (it is public) and computes a valid hash for the
    // forged #10, but the entries after it were hashed with their old numbers.
    let dir = tempfile::tempdir().unwrap();
    let path = log_file(dir.path(), 20);
    let conn = Connection::open(&path).unwrap();
    drop_triggers(&conn);
    conn.execute_batch(
        "UPDATE audit_log SET seq = seq + 1000 WHERE seq >= 10;
         UPDATE audit_log SET seq = seq - 999 WHERE seq > 1000;",
    )
    .unwrap();
    let prev: Vec<u8> =
        conn.query_row("SELECT hash FROM audit_log WHERE seq = 9", [], |r| r.get(0)).unwrap();
    let prev: [u8; 32] = prev.try_into().unwrap();
    let forged = chain::EntryFields {
        seq: 10,
        at: "2026-04-01T00:30:09.500000Z",
        operator: Some("clerk-01"),
        action: "fee.waived",
        visit: None,
        outcome: "ok",
        error_code: None,
        details: "{}",
        prev_hash: &prev,
    };
    conn.execute(
        "INSERT INTO audit_log (seq, at, operator, action, outcome, details, prev_hash, hash)
         VALUES (10, ?1, 'clerk-01', 'fee.waived', 'ok', '{}', ?2, ?3)",
        rusqlite::params![forged.at, &prev[..], &chain::hash(&forged)[..]],
    )
    .unwrap();
    drop(conn);
    drop(AuditLog::open_reinstalling_guards(&path).unwrap());
    let b = broken_at(audit::verify_file(&path));
    assert_eq!(b, Break { seq: 11, reason: BreakReason::HashMismatch });
}

#[test]
fn a_rebuilt_or_shortened_chain_is_caught_by_the_printed_anchor() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_file(dir.path(), 20);
    let printed = audit::verify_file(&path).unwrap().head.unwrap();

    // Rewrite #4 and recompute every hash from there: the chain alone looks fine.
    let conn = Connection::open(&path).unwrap();
    drop_triggers(&conn);
    conn.execute("UPDATE audit_log SET operator = 'clerk-09' WHERE seq = 4", []).unwrap();
    rehash_from(&conn, 4);
    drop(conn);
    drop(AuditLog::open_reinstalling_guards(&path).unwrap());
    assert_eq!(audit::verify_file(&path).unwrap().entries, 20);
    let conn = Connection::open(&path).unwrap();
    let err = audit::verify_anchored(&conn, &printed).unwrap_err();
    assert!(matches!(err, AuditError::AnchorMismatch { seq: 20 }), "{err:?}");
    assert_eq!(err.exit_code(), 1);

    // Cutting the tail off is seen against the anchor too.
    let path2 = log_file(&dir.path().join("x").tap_mkdir(), 20);
    let printed2 = audit::verify_file(&path2).unwrap().head.unwrap();
    let conn = Connection::open(&path2).unwrap();
    drop_triggers(&conn);
    conn.execute("DELETE FROM audit_log WHERE seq > 17", []).unwrap();
    assert_eq!(
        audit::verify(&conn).unwrap_err().to_string(),
        "audit log guards missing: audit_log_no_update, audit_log_no_delete, audit_log_next_link"
    );
    drop(conn);
    drop(AuditLog::open_reinstalling_guards(&path2).unwrap());
    let conn = Connection::open(&path2).unwrap();
    assert!(matches!(
        audit::verify_anchored(&conn, &printed2),
        Err(AuditError::Truncated { seq: 20, entries: 17 })
    ));
}

trait TapMkdir {
    fn tap_mkdir(self) -> PathBuf;
}

impl TapMkdir for PathBuf {
    fn tap_mkdir(self) -> PathBuf {
        std::fs::create_dir_all(&self).unwrap();
        self
    }
}

/// seq, at, operator, action, visit, outcome, error_code, details.
type RawRow = (i64, String, Option<String>, String, Option<String>, String, Option<String>, String);

/// Recomputes hash and prev_hash of every row from `from` on, as a careful attacker would.
fn rehash_from(conn: &Connection, from: i64) {
    let mut prev: [u8; 32] = conn
        .query_row("SELECT hash FROM audit_log WHERE seq = ?1", [from - 1], |r| {
            r.get::<_, Vec<u8>>(0)
        })
        .unwrap()
        .try_into()
        .unwrap();
    let rows: Vec<RawRow> = conn
        .prepare(
            "SELECT seq, at, operator, action, visit, outcome, error_code, details
             FROM audit_log WHERE seq >= ?1 ORDER BY seq",
        )
        .unwrap()
        .query_map([from], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for (seq, at, operator, action, visit, outcome, error_code, details) in rows {
        let hash = chain::hash(&chain::EntryFields {
            seq: seq as u64,
            at: &at,
            operator: operator.as_deref(),
            action: &action,
            visit: visit.as_deref(),
            outcome: &outcome,
            error_code: error_code.as_deref(),
            details: &details,
            prev_hash: &prev,
        });
        conn.execute(
            "UPDATE audit_log SET prev_hash = ?2, hash = ?3 WHERE seq = ?1",
            rusqlite::params![seq, &prev[..], &hash[..]],
        )
        .unwrap();
        prev = hash;
    }
}

#[test]
fn dropped_guards_alone_fail_verification_and_files_are_checked_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_file(dir.path(), 3);
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch("DROP TRIGGER audit_log_no_delete").unwrap();
    drop(conn);
    let err = audit::verify_file(&path).unwrap_err();
    assert!(
        matches!(&err, AuditError::GuardsMissing { missing } if missing == &["audit_log_no_delete"]),
        "{err:?}"
    );
    assert_eq!(err.exit_code(), 1);

    // A trigger of the right name that no longer aborts counts as missing.
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(
        "CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log BEGIN SELECT 1; END;",
    )
    .unwrap();
    drop(conn);
    assert!(matches!(audit::verify_file(&path), Err(AuditError::GuardsMissing { .. })));

    // The kiosk refuses to carry on writing such a log; putting the guards back is an
    // explicit, recorded step.
    assert!(matches!(AuditLog::open(&path), Err(AuditError::GuardsMissing { .. })));
    let (mut log, reinstalled) = AuditLog::open_reinstalling_guards(&path).unwrap();
    assert_eq!(reinstalled, 1);
    let rec = Record::new(T0, Some(&op("sup-01")), Action::AuditVerified)
        .details(Details::new().count("guards_reinstalled", 1));
    log.append(&rec).unwrap();
    assert!(log.connection().execute("DELETE FROM audit_log WHERE seq = 1", []).is_err());
    drop(log);
    assert_eq!(audit::verify_file(&path).unwrap().entries, 4);
    assert_eq!(AuditLog::open_reinstalling_guards(&path).unwrap().1, 0);

    // A wrong path is an error (exit 2), and verification does not create the file.
    let missing = dir.path().join("nothing-here.db");
    let err = audit::verify_file(&missing).unwrap_err();
    assert_eq!(err.exit_code(), 2, "{err:?}");
    assert!(!missing.exists());

    // A database without the table is not an empty log.
    let other = dir.path().join("other.db");
    Connection::open(&other).unwrap().execute_batch("CREATE TABLE t (x)").unwrap();
    assert!(matches!(audit::verify_file(&other), Err(AuditError::NotAnAuditLog)));
}

#[test]
fn the_verify_command_prints_one_line_and_an_exit_status() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_file(dir.path(), 20);
    let ok = audit::verify_command(dir.path(), None);
    assert_eq!(ok.exit_code, 0);
    assert!(ok.text.starts_with("audit log OK: 20 entries from 2026-04-01T00:30:00.000000Z"));
    let head = audit::verify_file(&path).unwrap().head.unwrap();
    assert_eq!(audit::verify_command(dir.path(), Some(&head)).exit_code, 0);

    let conn = Connection::open(&path).unwrap();
    drop_triggers(&conn);
    conn.execute("UPDATE audit_log SET action = 'fee.waived' WHERE seq = 7", []).unwrap();
    drop(conn);
    drop(AuditLog::open_reinstalling_guards(&path).unwrap());
    let bad = audit::verify_command(dir.path(), Some(&head));
    assert_eq!(bad.exit_code, 1);
    assert!(
        bad.text.ends_with(
            "audit log broken at entry #7: contents do not match the entry's hash (changed, moved or forged)"
        ),
        "{}",
        bad.text
    );
    let absent = audit::verify_command(&dir.path().join("no-such-dir"), None);
    assert_eq!(absent.exit_code, 2, "{}", absent.text);
}

#[test]
fn jpki_kiosk_audit_verify_exits_by_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_file(dir.path(), 12);
    let run = |dir: &Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_jpki-kiosk"))
            .args(["audit", "verify", "--data"])
            .arg(dir)
            .output()
            .unwrap()
    };
    let ok = run(dir.path());
    assert_eq!(ok.status.code(), Some(0), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(String::from_utf8_lossy(&ok.stdout).starts_with("audit log OK: 12 entries"));

    let conn = Connection::open(&path).unwrap();
    drop_triggers(&conn);
    conn.execute("DELETE FROM audit_log WHERE seq = 4", []).unwrap();
    drop(conn);
    let bad = run(dir.path());
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stdout).contains("#4"), "{:?}", bad);

    let absent = run(&dir.path().join("absent"));
    assert_eq!(absent.status.code(), Some(2));
}

#[test]
fn two_writers_on_one_file_build_one_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(audit::DEFAULT_FILE_NAME);
    let mut a = AuditLog::open(&path).unwrap();
    let mut b = AuditLog::open(&path).unwrap();
    for i in 0..10 {
        let log = if i % 2 == 0 { &mut a } else { &mut b };
        assert_eq!(log.append(&record(i)).unwrap().seq, i + 1);
    }
    let entries = a.entries(1, 100).unwrap();
    assert_eq!(entries.len(), 10);
    assert_eq!(entries[3].action, "card.detected");
    assert_eq!(audit::verify_file(&path).unwrap().entries, 10);
}

// ---- staff -------------------------------------------------------------------------------

const SUP_PASS: &str = "kinmokusei autumn 2026";
const CLERK_PASS: &str = "hinoki cypress window";

struct Counter {
    _dir: tempfile::TempDir,
    path: PathBuf,
    staff: StaffDirectory,
    log: AuditLog,
}

/// A kiosk database with supervisor `sup-01` (enrolled at first set-up) and staff
/// `clerk-01`; the enrolment records are in the audit log.
fn counter() -> Counter {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(audit::DEFAULT_FILE_NAME);
    let mut staff = StaffDirectory::open(&path).unwrap();
    let mut log = AuditLog::open(&path).unwrap();
    let new_sup = NewOperator {
        id: op("sup-01"),
        display_name: "若葉 花子".into(),
        role: Role::Supervisor,
        passphrase: pass(SUP_PASS),
    };
    log.append(&staff.enrol(None, new_sup, T0).unwrap()).unwrap();
    let sup = staff.sign_in(&op("sup-01"), &pass(SUP_PASS), T0).unwrap();
    let new_clerk = NewOperator {
        id: op("clerk-01"),
        display_name: "本郷 一郎".into(),
        role: Role::Staff,
        passphrase: pass(CLERK_PASS),
    };
    log.append(&staff.enrol(Some(&sup), new_clerk, T0).unwrap()).unwrap();
    Counter { _dir: dir, path, staff, log }
}

fn sign_in(c: &mut Counter, id: &str, p: &str) -> Result<Session, SignInError> {
    c.staff.sign_in(&op(id), &pass(p), T0)
}

#[test]
fn only_the_first_supervisor_is_enrolled_without_a_supervisor() {
    let mut c = counter();
    let another = NewOperator {
        id: op("sup-02"),
        display_name: "x".into(),
        role: Role::Supervisor,
        passphrase: pass(SUP_PASS),
    };
    assert!(matches!(c.staff.enrol(None, another, T0), Err(StaffError::NotAuthorised(_))));
    let clerk = sign_in(&mut c, "clerk-01", CLERK_PASS).unwrap();
    let by_clerk = NewOperator {
        id: op("clerk-02"),
        display_name: "x".into(),
        role: Role::Staff,
        passphrase: pass(CLERK_PASS),
    };
    assert!(matches!(c.staff.enrol(Some(&clerk), by_clerk, T0), Err(StaffError::NotAuthorised(_))));
    let sup = sign_in(&mut c, "sup-01", SUP_PASS).unwrap();
    let again = NewOperator {
        id: op("clerk-01"),
        display_name: "x".into(),
        role: Role::Staff,
        passphrase: pass(CLERK_PASS),
    };
    assert!(matches!(c.staff.enrol(Some(&sup), again, T0), Err(StaffError::AlreadyEnrolled(_))));
    let entries = c.log.entries(1, 10).unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].operator, None);
    assert_eq!(entries[0].details, r#"{"enrolled":"sup-01","role":"supervisor"}"#);
    assert_eq!(entries[1].operator.as_deref(), Some("sup-01"));
}

#[test]
fn five_wrong_passphrases_lock_until_a_supervisor_unlocks() {
    let mut c = counter();
    // A success clears earlier failures.
    assert!(matches!(
        sign_in(&mut c, "clerk-01", "wrong passphrase 0"),
        Err(SignInError::WrongPassphrase { attempts_left: 4 })
    ));
    let s = sign_in(&mut c, "clerk-01", CLERK_PASS).unwrap();
    assert_eq!(s.role(), Role::Staff);
    c.log.append(&s.sign_in_record()).unwrap();
    c.log.append(&c.staff.sign_out(s, T0)).unwrap();

    for left in (1..=4).rev() {
        let err = sign_in(&mut c, "clerk-01", "wrong passphrase 1").unwrap_err();
        assert!(
            matches!(err, SignInError::WrongPassphrase { attempts_left } if attempts_left == left),
            "{err:?}"
        );
        c.log.append(&err.record(T0, Some(&op("clerk-01")))).unwrap();
    }
    assert!(matches!(sign_in(&mut c, "clerk-01", "wrong passphrase 1"), Err(SignInError::Locked)));
    // Locked means locked, for the right passphrase too, and across a restart.
    assert!(matches!(sign_in(&mut c, "clerk-01", CLERK_PASS), Err(SignInError::Locked)));
    let mut reopened = StaffDirectory::open(&c.path).unwrap();
    assert!(matches!(
        reopened.sign_in(&op("clerk-01"), &pass(CLERK_PASS), T0),
        Err(SignInError::Locked)
    ));
    assert!(reopened.operator(&op("clerk-01")).unwrap().unwrap().locked);

    // Staff cannot unlock; a supervisor can.
    let other = NewOperator {
        id: op("clerk-02"),
        display_name: "x".into(),
        role: Role::Staff,
        passphrase: pass(CLERK_PASS),
    };
    let sup = sign_in(&mut c, "sup-01", SUP_PASS).unwrap();
    c.staff.enrol(Some(&sup), other, T0).unwrap();
    let clerk2 = sign_in(&mut c, "clerk-02", CLERK_PASS).unwrap();
    assert!(matches!(
        c.staff.unlock(&clerk2, &op("clerk-01"), T0),
        Err(StaffError::NotAuthorised(_))
    ));
    let rec = c.staff.unlock(&sup, &op("clerk-01"), T0).unwrap();
    c.log.append(&rec).unwrap();
    assert!(sign_in(&mut c, "clerk-01", CLERK_PASS).is_ok());
    assert!(matches!(sign_in(&mut c, "nobody", CLERK_PASS), Err(SignInError::UnknownOperator)));

    let failures: Vec<_> = c
        .log
        .entries(1, 100)
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "staff.sign_in" && e.outcome == "failed")
        .collect();
    assert_eq!(failures.len(), 4);
    assert_eq!(failures[3].details, r#"{"attempts_left":1}"#);
    assert!(c.log.verify().is_ok());
}

#[test]
fn disabled_operators_are_refused_and_sessions_lapse() {
    let mut c = counter();
    let clerk = sign_in(&mut c, "clerk-01", CLERK_PASS).unwrap();
    let sup = sign_in(&mut c, "sup-01", SUP_PASS).unwrap();
    assert!(c.staff.still_valid(&clerk).unwrap());
    assert!(matches!(
        c.staff.disable(&clerk, &op("sup-01"), T0),
        Err(StaffError::NotAuthorised(_))
    ));
    assert!(matches!(c.staff.disable(&sup, &op("sup-01"), T0), Err(StaffError::SelfDisable)));
    assert!(matches!(c.staff.disable(&sup, &op("ghost"), T0), Err(StaffError::NoSuchOperator(_))));
    c.log.append(&c.staff.disable(&sup, &op("clerk-01"), T0).unwrap()).unwrap();
    assert!(!c.staff.still_valid(&clerk).unwrap());
    assert!(matches!(sign_in(&mut c, "clerk-01", CLERK_PASS), Err(SignInError::Disabled)));
    // The disabled operator's open session can no longer ask for approvals.
    let visit = VisitId::new("v-1").unwrap();
    assert!(matches!(
        c.staff.approve(
            &clerk,
            &op("sup-01"),
            &pass(SUP_PASS),
            ApprovalPurpose::FeeWaiver,
            &visit,
            T0
        ),
        Err(ApprovalError::RequesterNotValid)
    ));

    // A supervisor disabled by another loses their powers at once, session or not.
    let sup2 = NewOperator {
        id: op("sup-02"),
        display_name: "x".into(),
        role: Role::Supervisor,
        passphrase: pass(SUP_PASS),
    };
    c.staff.enrol(Some(&sup), sup2, T0).unwrap();
    let sup2 = sign_in(&mut c, "sup-02", SUP_PASS).unwrap();
    c.staff.disable(&sup2, &op("sup-01"), T0).unwrap();
    assert!(matches!(c.staff.unlock(&sup, &op("clerk-01"), T0), Err(StaffError::NotAuthorised(_))));
    assert!(matches!(c.staff.disable(&sup, &op("sup-02"), T0), Err(StaffError::NotAuthorised(_))));
}

#[test]
fn supervisor_approval_needs_a_second_person_and_is_recorded() {
    let mut c = counter();
    let visit = VisitId::new("v-20260401-0042").unwrap();
    let clerk = sign_in(&mut c, "clerk-01", CLERK_PASS).unwrap();
    let sup = sign_in(&mut c, "sup-01", SUP_PASS).unwrap();
    let purpose = ApprovalPurpose::FeeWaiver;

    // A supervisor cannot approve their own request.
    assert!(matches!(
        c.staff.approve(&sup, &op("sup-01"), &pass(SUP_PASS), purpose, &visit, T0),
        Err(ApprovalError::SameOperator)
    ));
    // Staff are not supervisors, whatever passphrase they give.
    let sup_as_requester = &sup;
    assert!(matches!(
        c.staff.approve(sup_as_requester, &op("clerk-01"), &pass(CLERK_PASS), purpose, &visit, T0),
        Err(ApprovalError::NotSupervisor(_))
    ));
    // A wrong supervisor passphrase counts towards the supervisor's lock-out.
    assert!(matches!(
        c.staff.approve(&clerk, &op("sup-01"), &pass("not the passphrase"), purpose, &visit, T0),
        Err(ApprovalError::Credentials(SignInError::WrongPassphrase { attempts_left: 4 }))
    ));

    for purpose in [
        ApprovalPurpose::RevocationForLoss,
        ApprovalPurpose::ProxyPinReset,
        ApprovalPurpose::FeeWaiver,
    ] {
        let approval =
            c.staff.approve(&clerk, &op("sup-01"), &pass(SUP_PASS), purpose, &visit, T0).unwrap();
        assert!(approval.covers(purpose, &visit));
        assert!(!approval.covers(purpose, &VisitId::new("v-other").unwrap()));
        assert_eq!(approval.supervisor(), &op("sup-01"));
        assert_eq!(approval.requester(), &op("clerk-01"));
        c.log.append(&approval.record()).unwrap();
    }
    let last = c.log.entries(1, 100).unwrap().pop().unwrap();
    assert_eq!(last.action, "staff.supervisor_approval");
    assert_eq!(last.operator.as_deref(), Some("clerk-01"));
    assert_eq!(last.visit.as_deref(), Some("v-20260401-0042"));
    assert_eq!(last.details, r#"{"purpose":"fee_waiver","supervisor":"sup-01"}"#);
    assert_eq!(audit::verify_file(&c.path).unwrap().entries, 5);
}

#[test]
fn no_passphrase_or_staff_name_reaches_the_database_files() {
    let mut c = counter();
    let new = pass("a brand new passphrase");
    let clerk = sign_in(&mut c, "clerk-01", CLERK_PASS).unwrap();
    let rec = c.staff.change_passphrase(&clerk, &pass(CLERK_PASS), &new, T0).unwrap();
    c.log.append(&rec).unwrap();
    assert!(sign_in(&mut c, "clerk-01", CLERK_PASS).is_err());
    assert!(sign_in(&mut c, "clerk-01", "a brand new passphrase").is_ok());
    let _ = sign_in(&mut c, "sup-01", "a wrong passphrase typed");
    drop(c.staff);
    drop(c.log);

    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(c.path.parent().unwrap()).unwrap() {
        bytes.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    assert!(bytes.len() > 4096);
    for secret in [SUP_PASS, CLERK_PASS, "a brand new passphrase", "a wrong passphrase typed"] {
        for form in [
            secret.as_bytes().to_vec(),
            secret.to_uppercase().into_bytes(),
            hex::encode(secret).into_bytes(),
        ] {
            assert!(
                !bytes.windows(form.len()).any(|w| w == form.as_slice()),
                "a passphrase is in the files"
            );
        }
    }
    // Display names live in the staff table (the staff screen shows them) but never in
    // the audit log.
    let conn = Connection::open(&c.path).unwrap();
    let details: Vec<String> = conn
        .prepare("SELECT details FROM audit_log")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(details.iter().all(|d| !d.contains("若葉") && !d.contains("本郷")));
}

// ---- logging -----------------------------------------------------------------------------

mod logging {
    use std::ffi::CString;
    use std::io::Write;
    use std::os::unix::net::UnixDatagram;
    use std::sync::{Arc, Mutex};

    use jpki_kiosk::logging::{self, LogSink, Redacted};

    /// A text sink the fallback writes into.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Buffer {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    /// Gives this thread a private mount namespace with an empty tmpfs on /run, so the
    /// journald socket is absent whatever the host has. Needs root (CAP_SYS_ADMIN).
    #[allow(unsafe_code)]
    fn private_run() {
        let c = |s: &str| CString::new(s).unwrap();
        // SAFETY: plain syscalls with valid NUL-terminated strings; they affect only this
        // thread's mount namespace (CLONE_NEWNS unshares the thread's fs context).
        unsafe {
            assert_eq!(
                libc::unshare(libc::CLONE_NEWNS),
                0,
                "unshare(CLONE_NEWNS) failed (root needed): {}",
                std::io::Error::last_os_error()
            );
            // Stop mounts from propagating back to the host before mounting anything.
            let root = c("/");
            let r = libc::mount(
                std::ptr::null(),
                root.as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            );
            assert_eq!(r, 0, "making / private: {}", std::io::Error::last_os_error());
            let (tmpfs, run) = (c("tmpfs"), c("/run"));
            let r = libc::mount(tmpfs.as_ptr(), run.as_ptr(), tmpfs.as_ptr(), 0, std::ptr::null());
            assert_eq!(r, 0, "tmpfs on /run: {}", std::io::Error::last_os_error());
        }
        assert!(!std::path::Path::new("/run/systemd/journal/socket").exists());
    }

    fn emit() {
        tracing::info!(resident = %Redacted("1000000001"), tries_left = 2, "registry checked");
        tracing::debug!("filtered out at info");
    }

    #[test]
    fn without_a_journald_socket_events_go_to_the_text_fallback() {
        private_run();
        let buf = Buffer::default();
        let b2 = buf.clone();
        let filter = logging::filter(None, "info").unwrap();
        let (dispatch, sink) = logging::dispatch(filter, move || b2.clone());
        assert_eq!(sink, LogSink::Stderr);
        tracing::dispatcher::with_default(&dispatch, emit);
        let text = buf.text();
        assert!(text.contains("registry checked"), "{text}");
        assert!(text.contains("resident=*******001"), "{text}");
        assert!(!text.contains("1000000001"), "{text}");
        assert!(!text.contains("filtered out"), "{text}");
        // The process-wide set-up takes the same path, once.
        assert_eq!(logging::init("info").unwrap(), LogSink::Stderr);
        assert!(logging::init("info").is_err());
    }

    #[test]
    fn a_journald_socket_nobody_listens_on_falls_back_too() {
        private_run();
        std::fs::create_dir_all("/run/systemd/journal").unwrap();
        // Bound and closed again: the socket file stays, nobody reads it.
        drop(UnixDatagram::bind("/run/systemd/journal/socket").unwrap());
        assert!(std::path::Path::new("/run/systemd/journal/socket").exists());
        let buf = Buffer::default();
        let b2 = buf.clone();
        let (dispatch, sink) =
            logging::dispatch(logging::filter(None, "info").unwrap(), move || b2.clone());
        assert_eq!(sink, LogSink::Stderr);
        tracing::dispatcher::with_default(&dispatch, emit);
        assert!(buf.text().contains("resident=*******001"), "{}", buf.text());
    }

    #[test]
    fn with_a_journald_socket_events_go_to_the_journal() {
        private_run();
        std::fs::create_dir_all("/run/systemd/journal").unwrap();
        let journal = UnixDatagram::bind("/run/systemd/journal/socket").unwrap();
        journal.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
        let buf = Buffer::default();
        let b2 = buf.clone();
        let filter = logging::filter(Some("info"), "trace").unwrap();
        let (dispatch, sink) = logging::dispatch(filter, move || b2.clone());
        assert_eq!(sink, LogSink::Journald);
        tracing::dispatcher::with_default(&dispatch, emit);
        // The layer's probe is an empty datagram; the event follows.
        let mut packet = vec![0u8; 65536];
        let fields = loop {
            let n = journal.recv(&mut packet).expect("no event reached the journal");
            if n > 0 {
                break journal_fields(&packet[..n]);
            }
        };
        let get = |k: &str| fields.iter().find(|(name, _)| name == k).map(|(_, v)| v.as_str());
        assert_eq!(get("MESSAGE"), Some("registry checked"));
        assert_eq!(get("F_RESIDENT"), Some("*******001"));
        assert_eq!(get("F_TRIES_LEFT"), Some("2"));
        assert_eq!(get("PRIORITY"), Some("5"));
        assert!(fields.iter().all(|(_, v)| !v.contains("1000000001")));
        assert!(buf.text().is_empty(), "the fallback must stay silent");
    }

    /// Parses journald's native datagram: `NAME=value\n`, or `NAME\n` + 64-bit
    /// little-endian length + value + `\n` for values that may hold new lines.
    fn journal_fields(mut d: &[u8]) -> Vec<(String, String)> {
        let mut out = Vec::new();
        while !d.is_empty() {
            let eol = d.iter().position(|&b| b == b'\n').expect("field without end");
            let line = &d[..eol];
            if let Some(eq) = line.iter().position(|&b| b == b'=') {
                let name = String::from_utf8(line[..eq].to_vec()).unwrap();
                out.push((name, String::from_utf8(line[eq + 1..].to_vec()).unwrap()));
                d = &d[eol + 1..];
            } else {
                let name = String::from_utf8(line.to_vec()).unwrap();
                let rest = &d[eol + 1..];
                let len = u64::from_le_bytes(rest[..8].try_into().unwrap()) as usize;
                let value = String::from_utf8(rest[8..8 + len].to_vec()).unwrap();
                assert_eq!(rest[8 + len], b'\n');
                out.push((name, value));
                d = &rest[8 + len + 1..];
            }
        }
        out
    }
}
