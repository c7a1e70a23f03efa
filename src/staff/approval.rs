//! Supervisor approval: the second person for acts that must not rest on one operator.
//!
//! A [`SupervisorApproval`] can only be made by [`StaffDirectory::approve`], after a
//! supervisor who is not the asking operator typed their passphrase. It names its purpose
//! and its visit, so the workflow can demand "an approval for a fee waiver in this visit"
//! and one approval cannot be spent on another visit. The caller appends
//! [`SupervisorApproval::record`] to the audit log.

use time::OffsetDateTime;

use super::directory::StaffDirectory;
use super::passphrase::Passphrase;
use super::{OperatorId, Role, Session, SignInError};
use crate::audit::{Action, Details, Record, VisitId};

/// What a supervisor approves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ApprovalPurpose {
    /// Revoking certificates because the card was lost or stolen.
    RevocationForLoss,
    /// Resetting a PIN for a proxy (任意代理人).
    ProxyPinReset,
    /// Waiving a fee.
    FeeWaiver,
}

impl ApprovalPurpose {
    /// The stable name recorded in the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalPurpose::RevocationForLoss => "revocation_for_loss",
            ApprovalPurpose::ProxyPinReset => "proxy_pin_reset",
            ApprovalPurpose::FeeWaiver => "fee_waiver",
        }
    }
}

/// Proof that a supervisor approved `purpose` for `visit`. Not `Clone`: one approval
/// covers one act.
#[derive(Debug, PartialEq, Eq)]
pub struct SupervisorApproval {
    purpose: ApprovalPurpose,
    visit: VisitId,
    requester: OperatorId,
    supervisor: OperatorId,
    at: OffsetDateTime,
}

impl SupervisorApproval {
    /// What was approved.
    pub fn purpose(&self) -> ApprovalPurpose {
        self.purpose
    }

    /// For which visit.
    pub fn visit(&self) -> &VisitId {
        &self.visit
    }

    /// The operator who asked.
    pub fn requester(&self) -> &OperatorId {
        &self.requester
    }

    /// The supervisor who approved.
    pub fn supervisor(&self) -> &OperatorId {
        &self.supervisor
    }

    /// When.
    pub fn at(&self) -> OffsetDateTime {
        self.at
    }

    /// Whether this approval covers `purpose` in `visit`.
    pub fn covers(&self, purpose: ApprovalPurpose, visit: &VisitId) -> bool {
        self.purpose == purpose && &self.visit == visit
    }

    /// The audit record of the approval: by the asking operator, in the visit, naming the
    /// purpose and the supervisor.
    pub fn record(&self) -> Record {
        Record::new(self.at, Some(&self.requester), Action::SupervisorApproval)
            .visit(&self.visit)
            .details(
                Details::new()
                    .name("purpose", self.purpose.as_str())
                    .operator("supervisor", &self.supervisor),
            )
    }
}

/// Why an approval was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApprovalError {
    /// The supervisor named is the operator asking: approval needs a second person.
    #[error("the approving supervisor must be someone other than the operator")]
    SameOperator,
    /// The asking operator's session is no longer valid (disabled or locked since signing
    /// in).
    #[error("the asking operator's session is no longer valid")]
    RequesterNotValid,
    /// The person named is not a supervisor.
    #[error("operator {0} is not a supervisor")]
    NotSupervisor(OperatorId),
    /// The supervisor's id or passphrase was refused (counts towards their lock-out).
    #[error("supervisor sign-in refused: {0}")]
    Credentials(#[from] SignInError),
}

impl StaffDirectory {
    /// Checks a supervisor's passphrase to approve `purpose` in `visit` for the operator of
    /// `requester`.
    pub fn approve(
        &mut self,
        requester: &Session,
        supervisor: &OperatorId,
        pass: &Passphrase,
        purpose: ApprovalPurpose,
        visit: &VisitId,
        now: OffsetDateTime,
    ) -> Result<SupervisorApproval, ApprovalError> {
        if supervisor == requester.operator() {
            return Err(ApprovalError::SameOperator);
        }
        if !self.still_valid(requester).map_err(SignInError::from)? {
            return Err(ApprovalError::RequesterNotValid);
        }
        // Roles are not secret; refusing a non-supervisor before the hash spares a
        // pointless failure on their count.
        match self.operator(supervisor).map_err(SignInError::from)? {
            Some(o) if o.role != Role::Supervisor => {
                return Err(ApprovalError::NotSupervisor(supervisor.clone()))
            }
            _ => {}
        }
        let info = self.check_passphrase(supervisor, pass)?;
        Ok(SupervisorApproval {
            purpose,
            visit: visit.clone(),
            requester: requester.operator().clone(),
            supervisor: info.id,
            at: now,
        })
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn the_record_names_purpose_supervisor_and_visit() {
        let visit = VisitId::new("v-1").unwrap();
        let a = SupervisorApproval {
            purpose: ApprovalPurpose::RevocationForLoss,
            visit: visit.clone(),
            requester: OperatorId::new("clerk-01").unwrap(),
            supervisor: OperatorId::new("sup-01").unwrap(),
            at: datetime!(2026-04-01 00:00 UTC),
        };
        assert!(a.covers(ApprovalPurpose::RevocationForLoss, &visit));
        assert!(!a.covers(ApprovalPurpose::FeeWaiver, &visit));
        let rec = a.record();
        assert_eq!(rec.action, Action::SupervisorApproval);
        assert_eq!(rec.operator.as_ref().map(|o| o.as_str()), Some("clerk-01"));
        assert_eq!(rec.visit, Some(visit));
        assert_eq!(
            rec.details.to_json(),
            r#"{"purpose":"revocation_for_loss","supervisor":"sup-01"}"#
        );
        assert_eq!(ApprovalPurpose::ProxyPinReset.as_str(), "proxy_pin_reset");
    }
}
