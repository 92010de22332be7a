//! A placement's file: what intake keeps about one person beyond the needs
//! the matcher sees. The agency's case reference and any consented note are
//! sealed (`crate::sealed`); the file records what was shared, with whom and
//! until when, and that an erasure happened, never what was erased. The
//! decisions' audit trail (the needs' events) is never touched by erasure.

use crate::aggregate::Aggregate;
use crate::error::DomainError;
use crate::event::{AggregateKind, Event};
pub use crate::events::placement::{Consent, ErasureReason, PlacementEvent, PlacementFile, SealedPart};
use crate::ids::NeedId;
use crate::sealed::Sealed;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// How long a consent may last unless the coalition configures otherwise.
pub const DEFAULT_LONGEST_CONSENT_MS: i64 = 72 * 3600 * 1000;
/// The longest description of what a consent shares ("first name").
pub const MAX_CONSENT_SHARES: usize = 80;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PlacementCommand {
    Record(PlacementFile),
    ShareNote {
        need: NeedId,
        consent: Consent,
        note: Sealed,
        /// The coalition's limit on how long a consent may last.
        longest_ms: i64,
    },
    /// Records that these parts' keys were erased (the shell erases first).
    Erase {
        parts: Vec<SealedPart>,
        reason: ErasureReason,
    },
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    pub file: Option<PlacementFile>,
    /// Live notes, by the need whose accepting provider may read them.
    pub notes: BTreeMap<NeedId, (Consent, Sealed)>,
    /// Every part erased so far (the case reference, notes, hand-offs), and why.
    pub erased: BTreeMap<SealedPart, ErasureReason>,
}

/// What the sweeper knows of one need of the placement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeedClock {
    pub need: NeedId,
    /// When the need became final (cancelled or fulfilled), if it is.
    pub final_at: Option<Timestamp>,
    /// Whether a hand-off was given for it.
    pub handed_off: bool,
}

/// A consent given `now` to share a note: it says what is shared (1 to
/// `MAX_CONSENT_SHARES` characters) and ends in the future, at most
/// `longest_ms` from now. Intake checks it before a request's key is bound
/// (a refused consent is corrected and sent again under the same key), and
/// `ShareNote` again as it commits.
pub fn check_consent(consent: &Consent, now: Timestamp, longest_ms: i64) -> Result<(), DomainError> {
    let shares = consent.shares.trim();
    if shares.is_empty() || shares.chars().count() > MAX_CONSENT_SHARES {
        return Err(DomainError::invalid(
            "consent.shares",
            format!("must say what is shared, in 1 to {MAX_CONSENT_SHARES} characters"),
        ));
    }
    if consent.until <= now {
        return Err(DomainError::invalid("consent.until_ms", "must be in the future"));
    }
    if consent.until.millis() > now.millis().saturating_add(longest_ms) {
        return Err(DomainError::invalid(
            "consent.until_ms",
            format!("must be at most {} hours from now", longest_ms / 3_600_000),
        ));
    }
    Ok(())
}

impl Placement {
    /// Whether a note may be shared for `need` under `consent`, given at
    /// `now`: the consent ([`check_consent`]), then the placement (the need
    /// is one of its own and has no note yet).
    fn may_share_note(
        &self,
        need: NeedId,
        consent: &Consent,
        now: Timestamp,
        longest_ms: i64,
    ) -> Result<(), DomainError> {
        check_consent(consent, now, longest_ms)?;
        let file = self.file.as_ref().ok_or(DomainError::NotRegistered)?;
        if !file.needs.iter().any(|(n, _)| *n == need) {
            return Err(DomainError::invalid("need_id", "is not a need of this placement"));
        }
        if self.notes.contains_key(&need) {
            return Err(DomainError::NoteAlreadyShared);
        }
        Ok(())
    }

    fn live(&self, part: SealedPart) -> bool {
        let Some(file) = &self.file else { return false };
        match part {
            SealedPart::CaseReference => file.case_reference.is_some(),
            SealedPart::Note(need) => self.notes.contains_key(&need),
            SealedPart::Handoff(need) => file.needs.iter().any(|(n, _)| *n == need) && !self.erased.contains_key(&part),
        }
    }

    /// What must be erased now, and why: a note whose consent ended; a
    /// hand-off whose need was final for `retention_ms`; and once every need
    /// was final for `retention_ms`, everything left (case reference, notes).
    pub fn due(&self, needs: &[NeedClock], now: Timestamp, retention_ms: i64) -> Vec<(SealedPart, ErasureReason)> {
        let retained =
            |at: Option<Timestamp>| at.is_some_and(|t| t.millis().saturating_add(retention_ms) <= now.millis());
        let mut due = BTreeMap::new();
        for (need, (consent, _)) in &self.notes {
            if consent.until <= now {
                due.insert(SealedPart::Note(*need), ErasureReason::ConsentExpired);
            }
        }
        for clock in needs.iter().filter(|c| c.handed_off && retained(c.final_at)) {
            due.entry(SealedPart::Handoff(clock.need))
                .or_insert(ErasureReason::Retention);
        }
        let file_needs = self.file.as_ref().map_or(0, |f| f.needs.len());
        let all_done = needs.len() == file_needs && needs.iter().all(|c| retained(c.final_at));
        if all_done {
            due.entry(SealedPart::CaseReference).or_insert(ErasureReason::Retention);
            for need in self.notes.keys() {
                due.entry(SealedPart::Note(*need)).or_insert(ErasureReason::Retention);
            }
        }
        due.into_iter().filter(|(part, _)| self.live(*part)).collect()
    }
}

impl Aggregate for Placement {
    const KIND: AggregateKind = AggregateKind::Placement;
    type Command = PlacementCommand;
    type Event = PlacementEvent;

    fn decide(&self, command: &PlacementCommand, now: Timestamp) -> Result<Vec<PlacementEvent>, DomainError> {
        use PlacementCommand as C;
        use PlacementEvent as E;
        match command {
            C::Record(file) => {
                if self.file.is_some() {
                    return Err(DomainError::AlreadyRegistered);
                }
                if file.needs.is_empty() {
                    return Err(DomainError::invalid("needs", "must name at least one need"));
                }
                if let Some(case) = &file.case_reference {
                    case.validate("case_reference")?;
                }
                Ok(vec![E::Recorded(file.clone())])
            }
            C::ShareNote {
                need,
                consent,
                note,
                longest_ms,
            } => {
                self.may_share_note(*need, consent, now, *longest_ms)?;
                note.validate("note")?;
                let shares = consent.shares.trim();
                Ok(vec![E::NoteShared {
                    need: *need,
                    consent: Consent {
                        shares: shares.to_owned(),
                        given_at: now,
                        until: consent.until,
                    },
                    note: note.clone(),
                }])
            }
            C::Erase { parts, reason } => {
                if self.file.is_none() {
                    return Err(DomainError::NotRegistered);
                }
                let live: Vec<SealedPart> = parts
                    .iter()
                    .copied()
                    .filter(|p| self.live(*p))
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect();
                if live.is_empty() {
                    return Ok(vec![]);
                }
                Ok(vec![E::Erased {
                    parts: live,
                    reason: *reason,
                }])
            }
        }
    }

    fn evolve(mut self, event: &PlacementEvent) -> Self {
        match event {
            PlacementEvent::Recorded(file) => self.file = Some(file.clone()),
            PlacementEvent::NoteShared { need, consent, note } => {
                self.notes.insert(*need, (consent.clone(), note.clone()));
            }
            PlacementEvent::Erased { parts, reason } => {
                for part in parts {
                    match part {
                        SealedPart::CaseReference => {
                            if let Some(file) = &mut self.file {
                                file.case_reference = None;
                            }
                        }
                        SealedPart::Note(need) => {
                            self.notes.remove(need);
                        }
                        SealedPart::Handoff(_) => {}
                    }
                    self.erased.insert(*part, *reason);
                }
            }
        }
        self
    }

    fn wrap(event: PlacementEvent) -> Event {
        Event::Placement(event)
    }

    fn unwrap(event: &Event) -> Option<&PlacementEvent> {
        match event {
            Event::Placement(e) => Some(e),
            _ => None,
        }
    }
}
