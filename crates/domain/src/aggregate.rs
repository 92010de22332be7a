//! The shape every aggregate shares: a pure decision and a pure fold.

use crate::error::DomainError;
use crate::event::{AggregateKind, Event};
use crate::time::Timestamp;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// An aggregate is a consistency boundary: its commands are decided against
/// its own state only, and its events are appended to one subject.
///
/// `decide` never mutates; `evolve` never fails. The shell loads the events,
/// folds them with `evolve`, calls `decide` with the current time, and appends
/// what it returns under optimistic concurrency.
pub trait Aggregate: Default + Clone + Serialize + DeserializeOwned + Send + Sync + 'static {
    const KIND: AggregateKind;
    type Command;
    type Event: Clone;

    fn decide(&self, command: &Self::Command, now: Timestamp) -> Result<Vec<Self::Event>, DomainError>;
    fn evolve(self, event: &Self::Event) -> Self;

    /// Wraps this aggregate's event into the bus-wide event type.
    fn wrap(event: Self::Event) -> Event;
    /// Picks this aggregate's event out of the bus-wide event type.
    fn unwrap(event: &Event) -> Option<&Self::Event>;

    /// Folds a history into a state.
    fn replay<'a>(events: impl IntoIterator<Item = &'a Self::Event>) -> Self
    where
        Self::Event: 'a,
    {
        events.into_iter().fold(Self::default(), Self::evolve)
    }
}
