//! Typed domain errors. Each says which kind of failure it is, so the service
//! shell maps it to the right gRPC status without parsing messages.

use crate::events::need::NeedStatus;
use crate::kinds::ServiceKind;
use thiserror::Error;

/// How a caller should treat an error (and which gRPC status it becomes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request itself is malformed: INVALID_ARGUMENT, naming the field.
    InvalidArgument,
    /// The request is well formed but a rule forbids it now: FAILED_PRECONDITION.
    FailedPrecondition,
    /// The aggregate does not exist: NOT_FOUND.
    NotFound,
    /// The aggregate exists already: ALREADY_EXISTS.
    AlreadyExists,
}

#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum DomainError {
    #[error("invalid {field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("not registered")]
    NotRegistered,
    #[error("already registered")]
    AlreadyRegistered,
    #[error("service {0:?} is not offered here")]
    ServiceNotOffered(ServiceKind),
    #[error("service {0:?} has units held for pending referrals; answer those before dropping it")]
    ServiceInUse(ServiceKind),
    #[error("only {free} unit(s) free, {requested} requested")]
    InsufficientCapacity { requested: u32, free: u32 },
    #[error("capacity {declared} would be below the {held} unit(s) held for pending referrals; answer those first")]
    CapacityBelowHeld { declared: u32, held: u32 },
    #[error("capacity would exceed {max} units")]
    CapacityTooLarge { max: u32 },
    #[error("provider is suspended")]
    Suspended,
    #[error("donation is withdrawn")]
    Withdrawn,
    #[error("no such hold")]
    UnknownHold,
    #[error("hold id is already in use")]
    DuplicateHold,
    #[error("the hold expired; the referral goes to the next candidate")]
    HoldExpired,
    #[error("the hold has not expired yet")]
    HoldNotExpired,
    #[error("outside the donation's time window")]
    OutsideWindow,
    #[error("more than {max} unit(s) per need")]
    OverPerNeedLimit { max: u32 },
    #[error("cannot {action} a need that is {from:?}")]
    InvalidTransition { from: NeedStatus, action: &'static str },
    #[error("this need was already declined by or expired at that target")]
    TargetExcluded,
    #[error("the referral is not with this target")]
    WrongTarget,
    #[error("the need already has a shared note: revoke it before sharing another")]
    NoteAlreadyShared,
}

impl DomainError {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Invalid { .. } => ErrorKind::InvalidArgument,
            Self::NotRegistered | Self::UnknownHold => ErrorKind::NotFound,
            Self::AlreadyRegistered | Self::DuplicateHold => ErrorKind::AlreadyExists,
            _ => ErrorKind::FailedPrecondition,
        }
    }

    /// The offending field, for INVALID_ARGUMENT.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::Invalid { field, .. } => Some(field),
            _ => None,
        }
    }
}
