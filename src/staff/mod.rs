//! Counter staff: operators, their roles, sign-in, and supervisor approvals.
//!
//! What it is:
//! - [`StaffDirectory`], the operators in SQLite (the same file as the audit log is fine):
//!   enrol, disable, unlock, sign in (typed refusals, lock-out after
//!   [`MAX_FAILED_SIGN_INS`] consecutive failures until a supervisor unlocks), sign out;
//! - [`Session`], proof of a sign-in, which only [`StaffDirectory::sign_in`] can make;
//! - [`SupervisorApproval`], proof that a supervisor other than the asking operator gave
//!   their passphrase for a named purpose in a named visit, which only
//!   [`StaffDirectory::approve`] can make;
//! - [`Passphrase`], zeroizing, stored only as an Argon2id hash (parameters in
//!   [`passphrase`]).
//!
//! What it is not: it writes no audit entries itself. Callers append the record that
//! [`Session::sign_in_record`], [`SupervisorApproval::record`] and friends build, so the
//! audit log stays the one place that orders events. It keeps no session table: a session
//! lives as long as the kiosk process holds the [`Session`] value.

use std::fmt;

use time::OffsetDateTime;

use crate::audit::{Action, Details, ErrorCode, Record};

mod approval;
mod directory;
pub mod passphrase;

pub use approval::{ApprovalError, ApprovalPurpose, SupervisorApproval};
pub use directory::{NewOperator, OperatorInfo, StaffDirectory};
pub use passphrase::{BadPassphrase, Passphrase};

/// Consecutive failed sign-ins after which an operator is locked until a supervisor
/// unlocks them.
pub const MAX_FAILED_SIGN_INS: u32 = 5;

/// A staff member's id (職員番号 or a login name): 1–32 of `A–Z a–z 0–9 . _ -`.
///
/// Staff ids are recorded whole in the audit log: the log must say who acted.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OperatorId(String);

impl OperatorId {
    /// Checks the form of an id.
    pub fn new(id: &str) -> Option<OperatorId> {
        let ok = (1..=32).contains(&id.len())
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        ok.then(|| OperatorId(id.to_owned()))
    }

    /// The id as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OperatorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What an operator may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Counter staff: runs visits.
    Staff,
    /// A supervisor: also approves revocation for loss, PIN reset for a proxy and fee
    /// waivers, and manages operators.
    Supervisor,
}

impl Role {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Staff => "staff",
            Role::Supervisor => "supervisor",
        }
    }

    pub(crate) fn from_name(s: &str) -> Option<Role> {
        match s {
            "staff" => Some(Role::Staff),
            "supervisor" => Some(Role::Supervisor),
            _ => None,
        }
    }
}

/// A signed-in operator. Made only by [`StaffDirectory::sign_in`]; ended by
/// [`StaffDirectory::sign_out`].
#[derive(Debug, PartialEq, Eq)]
pub struct Session {
    operator: OperatorId,
    role: Role,
    since: OffsetDateTime,
}

impl Session {
    /// Who is signed in.
    pub fn operator(&self) -> &OperatorId {
        &self.operator
    }

    /// Their role at sign-in.
    pub fn role(&self) -> Role {
        self.role
    }

    /// When they signed in.
    pub fn since(&self) -> OffsetDateTime {
        self.since
    }

    /// The audit record of this sign-in.
    pub fn sign_in_record(&self) -> Record {
        Record::new(self.since, Some(&self.operator), Action::SignIn)
            .details(Details::new().name("role", self.role.as_str()))
    }
}

/// Why a sign-in (or a supervisor's passphrase check) was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignInError {
    /// No operator has this id (a typo, or someone trying ids).
    #[error("unknown operator")]
    UnknownOperator,
    /// The passphrase is wrong; after `attempts_left` more failures the operator is locked.
    #[error("wrong passphrase ({attempts_left} attempts left)")]
    WrongPassphrase {
        /// Failures left before the lock.
        attempts_left: u32,
    },
    /// Locked after too many failures (now or before); a supervisor must unlock.
    #[error("operator locked after {MAX_FAILED_SIGN_INS} failed sign-ins")]
    Locked,
    /// A supervisor disabled this operator.
    #[error("operator disabled")]
    Disabled,
    /// The staff database failed.
    #[error(transparent)]
    Store(#[from] StaffError),
}

impl SignInError {
    /// The code to record in the audit log for this refusal.
    pub fn audit_code(&self) -> ErrorCode {
        let code = match self {
            SignInError::UnknownOperator => "staff.unknown_operator",
            SignInError::WrongPassphrase { .. } => "staff.wrong_passphrase",
            SignInError::Locked => "staff.locked",
            SignInError::Disabled => "staff.disabled",
            SignInError::Store(_) => "staff.store_error",
        };
        ErrorCode::new(code).unwrap_or_else(|| unreachable!("static codes fit the alphabet"))
    }

    /// The audit record of this refused sign-in by `operator` (the id typed in, if it is
    /// well-formed, so that guessing shows up in the log).
    pub fn record(&self, at: OffsetDateTime, operator: Option<&OperatorId>) -> Record {
        let mut details = Details::new();
        if let SignInError::WrongPassphrase { attempts_left } = self {
            details = details.count("attempts_left", u64::from(*attempts_left));
        }
        Record::new(at, operator, Action::SignIn).failed(self.audit_code()).details(details)
    }
}

/// Why the staff directory could not do what was asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StaffError {
    /// The database could not be opened, read or written.
    #[error("staff database: {0}")]
    Database(#[from] rusqlite::Error),
    /// A stored row is unreadable (bad role, bad hash string): the file was edited.
    #[error("staff record for operator {operator} is corrupt: {what}")]
    Corrupt {
        /// The operator's id as stored.
        operator: String,
        /// What is wrong.
        what: &'static str,
    },
    /// The passphrase could not be hashed (the OS random source failed).
    #[error("passphrase hashing failed: {0}")]
    Hashing(argon2::password_hash::Error),
    /// Only a signed-in supervisor, still enabled and not locked, may do this (the first
    /// supervisor is the exception: it is enrolled while no enabled supervisor exists).
    #[error("only a supervisor may {0}")]
    NotAuthorised(&'static str),
    /// A supervisor may not disable themselves (the kiosk would be left without one).
    #[error("a supervisor cannot disable themselves")]
    SelfDisable,
    /// An operator with this id exists already.
    #[error("operator {0} is already enrolled")]
    AlreadyEnrolled(OperatorId),
    /// No operator has this id.
    #[error("no operator {0}")]
    NoSuchOperator(OperatorId),
}

/// The audit record of an operator signing out.
pub fn sign_out_record(at: OffsetDateTime, operator: &OperatorId) -> Record {
    Record::new(at, Some(operator), Action::SignOut)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_ids_are_checked() {
        assert_eq!(OperatorId::new("clerk-01").unwrap().as_str(), "clerk-01");
        for bad in ["", "a b", "職員", &"x".repeat(33)] {
            assert!(OperatorId::new(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn roles_round_trip() {
        for r in [Role::Staff, Role::Supervisor] {
            assert_eq!(Role::from_name(r.as_str()), Some(r));
        }
        assert_eq!(Role::from_name("admin"), None);
    }

    #[test]
    fn refusals_have_codes_and_records() {
        let at = time::macros::datetime!(2026-04-01 00:00 UTC);
        let op = OperatorId::new("clerk-01").unwrap();
        let rec = SignInError::WrongPassphrase { attempts_left: 3 }.record(at, Some(&op));
        assert_eq!(rec.action, Action::SignIn);
        assert_eq!(rec.outcome.code().unwrap().as_str(), "staff.wrong_passphrase");
        assert_eq!(rec.details.to_json(), r#"{"attempts_left":3}"#);
        assert_eq!(SignInError::Locked.audit_code().as_str(), "staff.locked");
    }
}
