//! A standing hand-off: what a party registers once and shares only at
//! acceptance. An intake agency's on-call contact ("night duty desk, phone
//! ..."), shown only to a provider that accepted one of its referrals; a
//! site's default hand-off instructions, used when an acceptance brings none;
//! a donation's instructions, shown to the agency whose need it serves.
//! Both are staff details, never a victim's, and both are sealed.

use crate::aggregate::Aggregate;
use crate::error::DomainError;
use crate::event::{AggregateKind, Event};
use crate::ids::{DonationId, OrgId, ProviderId};
use crate::sealed::Sealed;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Whose standing hand-off it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Owner {
    /// An intake agency's on-call contact.
    Agency(OrgId),
    /// A provider site's default hand-off instructions.
    Site(ProviderId),
    /// A donated resource's hand-off instructions (front desk, keys).
    Donation(DonationId),
}

impl Owner {
    /// The aggregate id: one standing hand-off per owner.
    pub fn id(self) -> Uuid {
        const SPACE: Uuid = Uuid::from_u128(0x5ef0_0000_57a1_4d1e_8a3b_7e7a_11ce_0002);
        let name = match self {
            Self::Agency(org) => format!("agency/{org}"),
            Self::Site(site) => format!("site/{site}"),
            Self::Donation(donation) => format!("donation/{donation}"),
        };
        Uuid::new_v5(&SPACE, name.as_bytes())
    }
}

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

/// Append-only: never reorder or remove variants.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StandingEvent {
    /// The first text (or the first after a clear).
    Set {
        owner: Owner,
        text: Sealed,
    },
    Cleared {
        owner: Owner,
    },
    /// A new text in place of `replaced`, whose key must be erased.
    Replaced {
        owner: Owner,
        text: Sealed,
        replaced: Sealed,
    },
}

impl StandingEvent {
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Set { .. } => "standing.set",
            Self::Cleared { .. } => "standing.cleared",
            Self::Replaced { .. } => "standing.replaced",
        }
    }

    pub fn owner(&self) -> Owner {
        match self {
            Self::Set { owner, .. } | Self::Cleared { owner } | Self::Replaced { owner, .. } => *owner,
        }
    }

    /// The text this event makes current, if any.
    pub fn text(&self) -> Option<&Sealed> {
        match self {
            Self::Set { text, .. } | Self::Replaced { text, .. } => Some(text),
            Self::Cleared { .. } => None,
        }
    }

    /// The text this event replaced, whose key is to be erased.
    pub fn replaced(&self) -> Option<&Sealed> {
        match self {
            Self::Replaced { replaced, .. } => Some(replaced),
            _ => None,
        }
    }
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
