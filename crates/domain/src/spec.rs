//! A given-when-then kit for aggregate rules, in the style of esrs/cqrs-es:
//!
//! ```
//! use refer_domain::spec::given;
//! use refer_domain::need::{Need, NeedCommand};
//! use refer_domain::{DomainError, Timestamp};
//!
//! given::<Need>([]).when(&NeedCommand::Fulfil, Timestamp(0)).then_error(DomainError::NotRegistered);
//! ```

use crate::aggregate::Aggregate;
use crate::error::DomainError;
use crate::time::Timestamp;
use std::fmt::Debug;

pub struct Given<A: Aggregate> {
    state: A,
}

/// Starts from the state that `history` folds into.
pub fn given<A: Aggregate>(history: impl IntoIterator<Item = A::Event>) -> Given<A> {
    Given {
        state: history
            .into_iter()
            .fold(A::default(), |state, event| state.evolve(&event)),
    }
}

impl<A: Aggregate> Given<A> {
    pub fn when(self, command: &A::Command, now: Timestamp) -> Then<A> {
        let outcome = self.state.decide(command, now);
        Then {
            state: self.state,
            outcome,
        }
    }
}

pub struct Then<A: Aggregate> {
    state: A,
    outcome: Result<Vec<A::Event>, DomainError>,
}

impl<A: Aggregate> Then<A>
where
    A::Event: PartialEq + Debug,
{
    /// Asserts the exact events and returns the state after them.
    #[track_caller]
    pub fn then_expect(self, expected: impl IntoIterator<Item = A::Event>) -> A {
        let expected: Vec<_> = expected.into_iter().collect();
        match self.outcome {
            Ok(events) => {
                assert_eq!(events, expected, "unexpected events");
                events.iter().fold(self.state, |state, event| state.evolve(event))
            }
            Err(err) => panic!("expected events {expected:?}, got error: {err}"),
        }
    }

    #[track_caller]
    pub fn then_error(self, expected: DomainError) {
        match self.outcome {
            Ok(events) => panic!("expected error {expected:?}, got events {events:?}"),
            Err(err) => assert_eq!(err, expected),
        }
    }

    /// Asserts an INVALID_ARGUMENT naming `field`.
    #[track_caller]
    pub fn then_invalid(self, field: &str) {
        match self.outcome {
            Ok(events) => panic!("expected invalid {field}, got events {events:?}"),
            Err(err) => assert_eq!(err.field(), Some(field), "{err}"),
        }
    }
}
