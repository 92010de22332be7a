//! A standing hand-off: what a party registers once and shares only at
//! acceptance. An intake agency's on-call contact ("night duty desk, phone
//! ..."), shown only to a provider that accepted one of its referrals; a
//! site's default hand-off instructions, used when an acceptance brings none;
//! a donation's instructions, shown to the agency whose need it serves.
//! Both are staff details, never a victim's, and both are sealed.

use crate::aggregate::Aggregate;
use crate::error::DomainError;
use crate::event::{AggregateKind, Event};
pub use crate::events::standing::{Owner, StandingEvent};
use crate::sealed::Sealed;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StandingCommand {
    /// Sets (or replaces) the text. Replacing records which text it
    /// replaced ([`StandingEvent::Replaced`]): the shell erases that one's
    /// key, the one the committed event replaced, whatever it read before.
    Set {
        owner: Owner,
        text: Sealed,
    },
    Clear {
        owner: Owner,
    },
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Standing {
    pub owner: Option<Owner>,
    pub text: Option<Sealed>,
}

impl Standing {
    fn owned_by(&self, owner: Owner) -> Result<(), DomainError> {
        match self.owner {
            Some(current) if current != owner => Err(DomainError::invalid("owner", "is not this hand-off's owner")),
            _ => Ok(()),
        }
    }
}

impl Aggregate for Standing {
    const KIND: AggregateKind = AggregateKind::Standing;
    type Command = StandingCommand;
    type Event = StandingEvent;

    fn decide(&self, command: &StandingCommand, _now: Timestamp) -> Result<Vec<StandingEvent>, DomainError> {
        match command {
            StandingCommand::Set { owner, text } => {
                self.owned_by(*owner)?;
                text.validate("text")?;
                Ok(vec![match &self.text {
                    Some(current) if current.item == text.item => return Ok(vec![]),
                    Some(current) => StandingEvent::Replaced {
                        owner: *owner,
                        text: text.clone(),
                        replaced: current.clone(),
                    },
                    None => StandingEvent::Set {
                        owner: *owner,
                        text: text.clone(),
                    },
                }])
            }
            StandingCommand::Clear { owner } => {
                self.owned_by(*owner)?;
                if self.text.is_none() {
                    return Ok(vec![]);
                }
                Ok(vec![StandingEvent::Cleared { owner: *owner }])
            }
        }
    }

    fn evolve(mut self, event: &StandingEvent) -> Self {
        self.owner = Some(event.owner());
        self.text = event.text().cloned();
        self
    }

    fn wrap(event: StandingEvent) -> Event {
        Event::Standing(event)
    }

    fn unwrap(event: &Event) -> Option<&StandingEvent> {
        match event {
            Event::Standing(e) => Some(e),
            _ => None,
        }
    }
}
