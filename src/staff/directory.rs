//! The operators in SQLite: enrolment, sign-in with lock-out, disabling and unlocking.
//!
//! One table, `staff_operators`; the failure counter is written in the same transaction
//! that reads it, so two terminals cannot both get a fifth try.

use std::path::Path;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use time::OffsetDateTime;

use super::passphrase::{self, Passphrase};
use super::{OperatorId, Role, Session, SignInError, StaffError, MAX_FAILED_SIGN_INS};
use crate::audit::{self, Action, Details, Record};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS staff_operators (
    operator_id     TEXT PRIMARY KEY NOT NULL,
    display_name    TEXT NOT NULL,
    role            TEXT NOT NULL CHECK (role IN ('staff', 'supervisor')),
    passphrase_hash TEXT NOT NULL,
    failed_sign_ins INTEGER NOT NULL DEFAULT 0 CHECK (failed_sign_ins >= 0),
    disabled        INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    enrolled_at     TEXT NOT NULL
) STRICT;
";

/// An operator to enrol. `Debug` shows the id and role only.
pub struct NewOperator {
    /// Their id.
    pub id: OperatorId,
    /// The name shown on the staff screen (never logged).
    pub display_name: String,
    /// Their role.
    pub role: Role,
    /// Their first passphrase.
    pub passphrase: Passphrase,
}

impl std::fmt::Debug for NewOperator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewOperator")
            .field("id", &self.id)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// An operator as the directory lists them (no hash).
#[derive(Clone, PartialEq, Eq)]
pub struct OperatorInfo {
    /// Their id.
    pub id: OperatorId,
    /// The name shown on the staff screen.
    pub display_name: String,
    /// Their role.
    pub role: Role,
    /// Consecutive failed sign-ins.
    pub failed_sign_ins: u32,
    /// Locked after too many failures.
    pub locked: bool,
    /// Disabled by a supervisor.
    pub disabled: bool,
}

impl std::fmt::Debug for OperatorInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The display name is a person's name: kept out of Debug like residents' data.
        f.debug_struct("OperatorInfo")
            .field("id", &self.id)
            .field("role", &self.role)
            .field("failed_sign_ins", &self.failed_sign_ins)
            .field("locked", &self.locked)
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

/// A stored row, with its hash.
struct Row {
    info: OperatorInfo,
    phc: String,
}

/// The kiosk's operators, in a SQLite file (WAL mode).
pub struct StaffDirectory {
    conn: Connection,
}

impl StaffDirectory {
    /// Opens (creating if needed) the directory at `path`; the audit log's file is fine.
    pub fn open(path: &Path) -> Result<StaffDirectory, StaffError> {
        StaffDirectory::with_connection(Connection::open(path)?)
    }

    /// Uses an open connection, creating the table if needed.
    pub fn with_connection(conn: Connection) -> Result<StaffDirectory, StaffError> {
        conn.pragma_update(None, "journal_mode", "wal")?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        Ok(StaffDirectory { conn })
    }

    /// Enrols an operator. `by` must be a signed-in supervisor, except while no enabled
    /// supervisor exists (the appliance's first set-up), when it must be `None`.
    /// Returns the audit record to append.
    pub fn enrol(
        &mut self,
        by: Option<&Session>,
        new: NewOperator,
        now: OffsetDateTime,
    ) -> Result<Record, StaffError> {
        let phc = passphrase::hash(&new.passphrase).map_err(StaffError::Hashing)?;
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let supervisors: i64 = tx.query_row(
            "SELECT count(*) FROM staff_operators WHERE role = 'supervisor' AND disabled = 0",
            [],
            |r| r.get(0),
        )?;
        match by {
            Some(s) => self_check_supervisor(&tx, s, "enrol operators")?,
            None if supervisors == 0 && new.role == Role::Supervisor => {}
            None => return Err(StaffError::NotAuthorised("enrol operators")),
        }
        let exists: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM staff_operators WHERE operator_id = ?1)",
            [new.id.as_str()],
            |r| r.get(0),
        )?;
        if exists {
            return Err(StaffError::AlreadyEnrolled(new.id));
        }
        let at = audit::format_at(now).map_err(|_| StaffError::Corrupt {
            operator: new.id.to_string(),
            what: "enrolment time",
        })?;
        tx.execute(
            "INSERT INTO staff_operators (operator_id, display_name, role, passphrase_hash, enrolled_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![new.id.as_str(), new.display_name, new.role.as_str(), phc, at],
        )?;
        tx.commit()?;
        Ok(Record::new(now, by.map(|s| &s.operator), Action::OperatorEnrolled)
            .details(Details::new().operator("enrolled", &new.id).name("role", new.role.as_str())))
    }

    /// Signs an operator in. Disabled and locked operators are refused before their
    /// passphrase is checked; a wrong passphrase counts towards the lock, a right one
    /// clears the count.
    pub fn sign_in(
        &mut self,
        id: &OperatorId,
        pass: &Passphrase,
        now: OffsetDateTime,
    ) -> Result<Session, SignInError> {
        let info = self.check_passphrase(id, pass)?;
        Ok(Session { operator: info.id, role: info.role, since: now })
    }

    /// Ends a session and returns the audit record to append.
    pub fn sign_out(&self, session: Session, now: OffsetDateTime) -> Record {
        super::sign_out_record(now, &session.operator)
    }

    /// Checks `pass` for `id` with the lock-out rules; returns the operator on success.
    pub(super) fn check_passphrase(
        &mut self,
        id: &OperatorId,
        pass: &Passphrase,
    ) -> Result<OperatorInfo, SignInError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StaffError::from)?;
        let Some(row) = read_row(&tx, id)? else {
            passphrase::waste_one_check(pass);
            return Err(SignInError::UnknownOperator);
        };
        if row.info.disabled {
            return Err(SignInError::Disabled);
        }
        if row.info.locked {
            return Err(SignInError::Locked);
        }
        let ok = passphrase::matches(pass, &row.phc).map_err(|_| StaffError::Corrupt {
            operator: id.to_string(),
            what: "passphrase hash",
        })?;
        let failed = if ok { 0 } else { row.info.failed_sign_ins + 1 };
        tx.execute(
            "UPDATE staff_operators SET failed_sign_ins = ?2 WHERE operator_id = ?1",
            params![id.as_str(), failed],
        )
        .map_err(StaffError::from)?;
        tx.commit().map_err(StaffError::from)?;
        if ok {
            Ok(OperatorInfo { failed_sign_ins: 0, ..row.info })
        } else if failed >= MAX_FAILED_SIGN_INS {
            Err(SignInError::Locked)
        } else {
            Err(SignInError::WrongPassphrase { attempts_left: MAX_FAILED_SIGN_INS - failed })
        }
    }

    /// Clears a lock-out (a supervisor only). Returns the audit record to append.
    pub fn unlock(
        &self,
        by: &Session,
        id: &OperatorId,
        now: OffsetDateTime,
    ) -> Result<Record, StaffError> {
        self_check_supervisor(&self.conn, by, "unlock operators")?;
        self.set(id, "failed_sign_ins = 0")?;
        Ok(Record::new(now, Some(&by.operator), Action::OperatorUnlocked)
            .details(Details::new().operator("unlocked", id)))
    }

    /// Disables an operator (a supervisor only, not themselves). Their sessions already
    /// open end when the kiosk next asks; new sign-ins are refused. Returns the audit
    /// record to append.
    pub fn disable(
        &self,
        by: &Session,
        id: &OperatorId,
        now: OffsetDateTime,
    ) -> Result<Record, StaffError> {
        self_check_supervisor(&self.conn, by, "disable operators")?;
        if &by.operator == id {
            return Err(StaffError::SelfDisable);
        }
        self.set(id, "disabled = 1")?;
        Ok(Record::new(now, Some(&by.operator), Action::OperatorDisabled)
            .details(Details::new().operator("disabled", id)))
    }

    /// Whether a session is still good: its operator exists, is enabled and has the same
    /// role. The kiosk asks this before each staff action.
    pub fn still_valid(&self, session: &Session) -> Result<bool, StaffError> {
        session_valid(&self.conn, session)
    }

    /// Sets a new passphrase for the signed-in operator after checking the current one.
    /// Returns the audit record to append.
    pub fn change_passphrase(
        &mut self,
        session: &Session,
        current: &Passphrase,
        new: &Passphrase,
        now: OffsetDateTime,
    ) -> Result<Record, SignInError> {
        self.check_passphrase(&session.operator, current)?;
        let phc = passphrase::hash(new).map_err(StaffError::Hashing)?;
        self.conn
            .execute(
                "UPDATE staff_operators SET passphrase_hash = ?2 WHERE operator_id = ?1",
                params![session.operator.as_str(), phc],
            )
            .map_err(StaffError::from)?;
        Ok(Record::new(now, Some(&session.operator), Action::PassphraseChanged))
    }

    /// One operator, without their hash.
    pub fn operator(&self, id: &OperatorId) -> Result<Option<OperatorInfo>, StaffError> {
        Ok(read_row(&self.conn, id)?.map(|r| r.info))
    }

    fn set(&self, id: &OperatorId, assignment: &'static str) -> Result<(), StaffError> {
        let n = self.conn.execute(
            &format!("UPDATE staff_operators SET {assignment} WHERE operator_id = ?1"),
            [id.as_str()],
        )?;
        if n == 0 {
            return Err(StaffError::NoSuchOperator(id.clone()));
        }
        Ok(())
    }
}

fn session_valid(conn: &Connection, session: &Session) -> Result<bool, StaffError> {
    Ok(read_row(conn, &session.operator)?
        .is_some_and(|r| !r.info.disabled && !r.info.locked && r.info.role == session.role))
}

/// `by` must be a supervisor's session that is still valid: a supervisor disabled or
/// locked since signing in can no longer manage operators.
fn self_check_supervisor(
    conn: &Connection,
    by: &Session,
    what: &'static str,
) -> Result<(), StaffError> {
    if by.role == Role::Supervisor && session_valid(conn, by)? {
        Ok(())
    } else {
        Err(StaffError::NotAuthorised(what))
    }
}

fn read_row(conn: &Connection, id: &OperatorId) -> Result<Option<Row>, StaffError> {
    let row = conn
        .query_row(
            "SELECT display_name, role, passphrase_hash, failed_sign_ins, disabled
             FROM staff_operators WHERE operator_id = ?1",
            [id.as_str()],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, bool>(4)?,
                ))
            },
        )
        .optional()?;
    let Some((display_name, role, phc, failed, disabled)) = row else {
        return Ok(None);
    };
    let corrupt = |what| StaffError::Corrupt { operator: id.to_string(), what };
    let role = Role::from_name(&role).ok_or_else(|| corrupt("role"))?;
    let failed = u32::try_from(failed).map_err(|_| corrupt("failure count"))?;
    Ok(Some(Row {
        info: OperatorInfo {
            id: id.clone(),
            display_name,
            role,
            failed_sign_ins: failed,
            locked: failed >= MAX_FAILED_SIGN_INS,
            disabled,
        },
        phc,
    }))
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn new_operator(id: &str, role: Role) -> NewOperator {
        NewOperator {
            id: OperatorId::new(id).unwrap(),
            display_name: "若葉 花子".into(),
            role,
            passphrase: Passphrase::new("kinmokusei autumn".into()).unwrap(),
        }
    }

    #[test]
    fn debug_output_shows_no_names_or_passphrases() {
        let n = new_operator("sup-01", Role::Supervisor);
        let text = format!("{n:?}");
        assert!(!text.contains("若葉") && !text.contains("kinmokusei"), "{text}");
        let mut dir =
            StaffDirectory::with_connection(Connection::open_in_memory().unwrap()).unwrap();
        dir.enrol(None, n, datetime!(2026-04-01 00:00 UTC)).unwrap();
        let info = dir.operator(&OperatorId::new("sup-01").unwrap()).unwrap().unwrap();
        assert_eq!(info.display_name, "若葉 花子");
        assert!(!format!("{info:?}").contains("若葉"));
    }

    #[test]
    fn the_first_enrolment_must_be_a_supervisor() {
        let mut dir =
            StaffDirectory::with_connection(Connection::open_in_memory().unwrap()).unwrap();
        let at = datetime!(2026-04-01 00:00 UTC);
        assert!(matches!(
            dir.enrol(None, new_operator("clerk-01", Role::Staff), at),
            Err(StaffError::NotAuthorised(_))
        ));
        let rec = dir.enrol(None, new_operator("sup-01", Role::Supervisor), at).unwrap();
        assert_eq!(rec.operator, None);
        assert_eq!(rec.action, Action::OperatorEnrolled);
    }
}
