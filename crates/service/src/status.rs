//! Typed errors to gRPC statuses. Messages say what went wrong and, for bad
//! input, which field; they never carry identity (there is none to carry).

use refer_eventstore::StoreError;
use tonic::Status;

pub use refer_client::wire::{domain_status, invalid};

pub fn store_status(err: StoreError) -> Status {
    match &err {
        StoreError::Domain(domain) => domain_status(domain),
        StoreError::Conflict { .. } => Status::aborted(format!("{err}; read the current version and retry")),
        StoreError::Duplicate => Status::aborted(format!("{err}; retry with the same idempotency key")),
        StoreError::Unavailable(_) => Status::unavailable(format!("{err}; retry with the same idempotency key")),
        StoreError::Encode(_) => Status::invalid_argument(err.to_string()),
        StoreError::Precondition(_) => Status::failed_precondition(err.to_string()),
        StoreError::Corrupt { .. } | StoreError::Local(_) | StoreError::Setup(_) => {
            tracing::error!(error = %err, "internal store error");
            Status::internal("internal error; see the service log")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use refer_domain::{AggregateKind, AggregateRef, DomainError};
    use tonic::Code;

    #[test]
    fn each_error_gets_its_status() {
        let aggregate = AggregateRef {
            kind: AggregateKind::Provider,
            id: uuid::Uuid::nil(),
        };
        let cases = [
            (
                StoreError::Domain(DomainError::invalid("spec.name", "empty")),
                Code::InvalidArgument,
            ),
            (StoreError::Domain(DomainError::HoldExpired), Code::FailedPrecondition),
            (StoreError::Domain(DomainError::NotRegistered), Code::NotFound),
            (StoreError::Domain(DomainError::AlreadyRegistered), Code::AlreadyExists),
            (
                StoreError::Conflict {
                    aggregate,
                    expected: 3,
                    actual: 5,
                },
                Code::Aborted,
            ),
            (StoreError::Unavailable("timed out".into()), Code::Unavailable),
            (StoreError::Setup("x".into()), Code::Internal),
        ];
        for (err, code) in cases {
            assert_eq!(store_status(err).code(), code);
        }
        let status = store_status(StoreError::Domain(DomainError::invalid("spec.name", "empty")));
        assert!(status.message().contains("spec.name"), "{}", status.message());
    }
}
