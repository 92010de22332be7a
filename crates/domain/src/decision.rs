//! The domain's atomic decisions: what changes several aggregates at once and
//! is written all together or not at all (one atomic commit, carried by
//! `EventStore::decide` in `crates/eventstore`). Each is pure: given the
//! aggregates it reads as they stand, and which of its own steps were
//! carried out before (their idempotency keys), it decides the events of
//! each aggregate.
//!
//! * [`AnswerAndSettle`]: a referral accepted or declined on the need, and
//!   its hold confirmed or released at the target;
//! * [`ProposeAtProviders`]: holds placed at providers and the proposals
//!   they back, never one without the other;
//! * [`ProposeAtDonation`]: a donation's units held and used, the need
//!   proposed and accepted on the business's behalf;
//! * [`Expire`]: a referral past its deadline expired, and its hold
//!   released;
//! * [`RequestPlacements`]: people's files recorded and all their needs
//!   requested, a group's all together, so the matcher meets the group
//!   whole.
//!
//! [`OneCommand`] carries a command on a single aggregate the same way, so
//! a decider (the matcher) writes through one path, with one set of checks.
//!
//! Every step carries an idempotency key derived from the hold it concerns
//! (`keys`), so a decision carried out again writes nothing twice.

use crate::aggregate::Aggregate;
use crate::donation::{Donation, DonationCommand};
use crate::error::DomainError;
use crate::event::{AggregateKind, AggregateRef, Event, IdempotencyKey};
use crate::hold::ReleaseReason;
use crate::ids::{DonationId, HoldId, NeedId, PlacementId, ProviderId};
use crate::need::{DeclineReason, Need, NeedCommand, NeedRequest, Proposal, Target};
use crate::placement::{Placement, PlacementCommand, PlacementFile};
use crate::provider::{HoldRequest, Provider, ProviderCommand};
use crate::sealed::Sealed;
use crate::time::Timestamp;
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// The idempotency keys of the steps of atomic decisions, derived from the
/// hold they concern: the same decision made again (after a crash, or by
/// another matcher) names the same keys.
pub mod keys {
    use super::*;

    fn derived(prefix: &str, hold: HoldId) -> IdempotencyKey {
        IdempotencyKey::new(format!("{prefix}-{hold}")).expect("derived keys are valid")
    }

    /// A hold placed (alone at a provider, or at a donation).
    pub fn hold(hold: HoldId) -> IdempotencyKey {
        derived("hold", hold)
    }

    /// Several holds placed in one commit at one provider: named by all of
    /// them, so every hold carries a key.
    pub fn holds(holds: &[HoldId]) -> IdempotencyKey {
        match holds {
            [one] => hold(*one),
            _ => {
                const NAMESPACE: Uuid = Uuid::from_u128(0x6b1d_33f0_2c4e_4a8b_9d17_0e5f_a3c2_7b90);
                let mut name = Vec::with_capacity(holds.len() * 16);
                for h in holds {
                    name.extend_from_slice(h.as_uuid().as_bytes());
                }
                let id = Uuid::new_v5(&NAMESPACE, &name);
                IdempotencyKey::new(format!("holds-{}", id.as_simple())).expect("derived keys are valid")
            }
        }
    }

    /// The need proposed with `hold` behind it.
    pub fn propose(hold: HoldId) -> IdempotencyKey {
        derived("propose", hold)
    }

    /// The hold confirmed or released after its need was answered or expired.
    pub fn settle(hold: HoldId) -> IdempotencyKey {
        derived("settle", hold)
    }

    /// The need expired at the end of `hold`.
    pub fn expire(hold: HoldId) -> IdempotencyKey {
        derived("expire", hold)
    }

    /// A proposal to a donation accepted on the business's behalf.
    pub fn accept(hold: HoldId) -> IdempotencyKey {
        derived("accept", hold)
    }

    /// A need requested (its placement's file names it, under the
    /// request's own key).
    pub fn requested() -> IdempotencyKey {
        IdempotencyKey::new("request").expect("a valid key")
    }
}

/// The state of an aggregate an atomic decision reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    Provider(Provider),
    Donation(Donation),
    Need(Need),
    Placement(Placement),
}

/// An aggregate an atomic decision may read and change.
pub trait Touched: Aggregate {
    fn read(state: &State) -> Option<&Self>;
    fn into_state(self) -> State;
}

impl Touched for Provider {
    fn read(state: &State) -> Option<&Self> {
        match state {
            State::Provider(p) => Some(p),
            _ => None,
        }
    }
    fn into_state(self) -> State {
        State::Provider(self)
    }
}

impl Touched for Donation {
    fn read(state: &State) -> Option<&Self> {
        match state {
            State::Donation(d) => Some(d),
            _ => None,
        }
    }
    fn into_state(self) -> State {
        State::Donation(self)
    }
}

impl Touched for Placement {
    fn read(state: &State) -> Option<&Self> {
        match state {
            State::Placement(p) => Some(p),
            _ => None,
        }
    }
    fn into_state(self) -> State {
        State::Placement(self)
    }
}

impl Touched for Need {
    fn read(state: &State) -> Option<&Self> {
        match state {
            State::Need(n) => Some(n),
            _ => None,
        }
    }
    fn into_state(self) -> State {
        State::Need(self)
    }
}

fn reference<A: Aggregate>(id: Uuid) -> AggregateRef {
    AggregateRef { kind: A::KIND, id }
}

fn target_ref(target: Target) -> AggregateRef {
    match target {
        Target::Provider(p) => reference::<Provider>(p.as_uuid()),
        Target::Donation(d) => reference::<Donation>(d.as_uuid()),
    }
}

/// What an atomic decision is given: each aggregate it reads, as it stands
/// (one not given reads as new), and which of its own steps were carried
/// out before (their keys were applied there).
#[derive(Clone, Debug, Default)]
pub struct Given {
    states: BTreeMap<AggregateRef, State>,
    done: BTreeSet<(AggregateRef, IdempotencyKey)>,
}

impl Given {
    pub fn new() -> Self {
        Self::default()
    }

    /// Aggregate `id` as `history` folds it.
    pub fn with<A: Touched>(mut self, id: Uuid, history: impl IntoIterator<Item = A::Event>) -> Self {
        let state = history.into_iter().fold(A::default(), |s, e| s.evolve(&e));
        self.insert(reference::<A>(id), state.into_state());
        self
    }

    /// The step with `key` on `aggregate` was carried out before.
    pub fn done_before(mut self, aggregate: AggregateRef, key: IdempotencyKey) -> Self {
        self.mark_done(aggregate, key);
        self
    }

    pub fn insert(&mut self, aggregate: AggregateRef, state: State) {
        self.states.insert(aggregate, state);
    }

    pub fn mark_done(&mut self, aggregate: AggregateRef, key: IdempotencyKey) {
        self.done.insert((aggregate, key));
    }

    /// Aggregate `id` as it stands.
    pub fn state<A: Touched>(&self, id: Uuid) -> A {
        self.states
            .get(&reference::<A>(id))
            .and_then(A::read)
            .cloned()
            .unwrap_or_default()
    }

    /// Whether the step with `key` on `aggregate` was carried out before.
    pub fn done(&self, aggregate: &AggregateRef, key: &IdempotencyKey) -> bool {
        self.done.contains(&(*aggregate, key.clone()))
    }
}

/// One aggregate's part of a decided atomic decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub aggregate: AggregateRef,
    /// The idempotency key its commit carries.
    pub key: IdempotencyKey,
    /// What it writes: nothing when the step was carried out before (or
    /// changes nothing).
    pub events: Vec<Event>,
    /// The aggregate after the events.
    pub state: State,
}

/// What an atomic decision decided.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decided {
    /// Each aggregate's part, in commit order.
    pub steps: Vec<Step>,
    /// Items left out (by position in the decision) and why; the others go
    /// ahead.
    pub refused: Vec<(usize, DomainError)>,
}

impl Decided {
    /// The events decided for `aggregate`.
    pub fn events_of(&self, aggregate: AggregateRef) -> Vec<Event> {
        self.steps
            .iter()
            .filter(|s| s.aggregate == aggregate)
            .flat_map(|s| s.events.clone())
            .collect()
    }

    /// Whether anything is written.
    pub fn writes(&self) -> bool {
        self.steps.iter().any(|s| !s.events.is_empty())
    }
}

/// A decision over one or more aggregates, written as one atomic commit.
pub trait AtomicDecision: Sync {
    /// Each aggregate it reads, with the keys of its own steps there (the
    /// shell says which were applied before).
    fn reads(&self) -> Vec<(AggregateRef, Vec<IdempotencyKey>)>;

    /// Decides every step at `now` on what it is given.
    fn decide(&self, given: &Given, now: Timestamp) -> Result<Decided, DomainError>;

    /// Whether it makes new aggregates, so one the shell has no copy of is
    /// most likely new: decided as such first, without a read (a guess
    /// that is wrong costs a conflict and a read).
    fn creates(&self) -> bool {
        false
    }
}

/// Decides `commands` in order on aggregate `id` as a step keyed `key`:
/// nothing when that step was carried out before.
fn step<A: Touched>(
    given: &Given,
    id: Uuid,
    key: IdempotencyKey,
    commands: &[A::Command],
    now: Timestamp,
) -> Result<Step, DomainError> {
    let aggregate = reference::<A>(id);
    let mut state = given.state::<A>(id);
    let mut events = Vec::new();
    if !given.done(&aggregate, &key) {
        for command in commands {
            for event in state.decide(command, now)? {
                state = state.evolve(&event);
                events.push(A::wrap(event));
            }
        }
    }
    Ok(Step {
        aggregate,
        key,
        events,
        state: state.into_state(),
    })
}

/// The command that settles `hold` at `target`: confirmed (`None`) or
/// released for `reason`.
fn settle(
    given: &Given,
    target: Target,
    hold: HoldId,
    release: Option<ReleaseReason>,
    now: Timestamp,
) -> Result<Step, DomainError> {
    let key = keys::settle(hold);
    match target {
        Target::Provider(p) => {
            let command = match release {
                None => ProviderCommand::ConfirmHold { hold },
                Some(reason) => ProviderCommand::ReleaseHold { hold, reason },
            };
            step::<Provider>(given, p.as_uuid(), key, &[command], now)
        }
        Target::Donation(d) => {
            let command = match release {
                None => DonationCommand::ConfirmHold { hold },
                Some(reason) => DonationCommand::ReleaseHold { hold, reason },
            };
            step::<Donation>(given, d.as_uuid(), key, &[command], now)
        }
    }
}

/// A provider's (or, for a donation, the matcher's on the business's
/// behalf) answer to a referral.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Accepted, with the hand-off sealed for the agency (a provider gives
    /// one; a donation has none).
    Accept {
        handoff: Option<Sealed>,
    },
    Decline(DeclineReason),
}

/// Answer and settle: the answer on the need and the hold confirmed
/// (accepted) or released (declined) at the target, in one commit: never an
/// answer without its settlement. At a provider, a hold already gone
/// (released by the matcher) leaves the answer alone; at a donation the
/// hold is the gift itself, so nothing is accepted without it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnswerAndSettle {
    pub need: NeedId,
    pub target: Target,
    pub hold: HoldId,
    pub answer: Answer,
    /// The answer's key on the need: the provider's own, or `keys::accept`.
    pub key: IdempotencyKey,
}

impl AtomicDecision for AnswerAndSettle {
    fn reads(&self) -> Vec<(AggregateRef, Vec<IdempotencyKey>)> {
        vec![
            (reference::<Need>(self.need.as_uuid()), vec![self.key.clone()]),
            (target_ref(self.target), vec![keys::settle(self.hold)]),
        ]
    }

    fn decide(&self, given: &Given, now: Timestamp) -> Result<Decided, DomainError> {
        let by = self.target;
        let (commands, release) = match &self.answer {
            Answer::Accept { handoff } => {
                let mut commands = vec![NeedCommand::Accept { by }];
                commands.extend(handoff.clone().map(NeedCommand::HandOff));
                (commands, None)
            }
            Answer::Decline(reason) => (
                vec![NeedCommand::Decline { by, reason: *reason }],
                Some(ReleaseReason::Declined),
            ),
        };
        let answered = step::<Need>(given, self.need.as_uuid(), self.key.clone(), &commands, now)?;
        let mut steps = vec![answered];
        match settle(given, self.target, self.hold, release, now) {
            Ok(settled) => steps.push(settled),
            Err(DomainError::UnknownHold) if matches!(self.target, Target::Provider(_)) => {}
            Err(err) => return Err(err),
        }
        Ok(Decided { steps, refused: vec![] })
    }
}

/// Expire: the need's referral past its deadline expires and its hold is
/// released, in one commit. A hold already gone leaves the need alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expire {
    pub need: NeedId,
    pub target: Target,
    pub hold: HoldId,
}

impl AtomicDecision for Expire {
    fn reads(&self) -> Vec<(AggregateRef, Vec<IdempotencyKey>)> {
        vec![
            (reference::<Need>(self.need.as_uuid()), vec![keys::expire(self.hold)]),
            (target_ref(self.target), vec![keys::settle(self.hold)]),
        ]
    }

    fn decide(&self, given: &Given, now: Timestamp) -> Result<Decided, DomainError> {
        let expired = step::<Need>(
            given,
            self.need.as_uuid(),
            keys::expire(self.hold),
            &[NeedCommand::Expire],
            now,
        )?;
        let mut steps = vec![expired];
        match settle(given, self.target, self.hold, Some(ReleaseReason::Expired), now) {
            Ok(released) => steps.push(released),
            Err(DomainError::UnknownHold) => {}
            Err(err) => return Err(err),
        }
        Ok(Decided { steps, refused: vec![] })
    }
}

/// Propose at a donation: the units held and used at once on the donation,
/// the need proposed and accepted on the business's behalf (a donation is
/// given in advance), in one commit. A proposal made before (its key
/// applied on the need) takes no units again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProposeAtDonation {
    pub need: NeedId,
    pub donation: DonationId,
    pub hold: HoldId,
    pub units: u32,
    pub expires_at: Timestamp,
}

impl AtomicDecision for ProposeAtDonation {
    fn reads(&self) -> Vec<(AggregateRef, Vec<IdempotencyKey>)> {
        vec![
            (
                reference::<Donation>(self.donation.as_uuid()),
                vec![keys::hold(self.hold)],
            ),
            (reference::<Need>(self.need.as_uuid()), vec![keys::propose(self.hold)]),
        ]
    }

    fn decide(&self, given: &Given, now: Timestamp) -> Result<Decided, DomainError> {
        let need = reference::<Need>(self.need.as_uuid());
        let proposed = keys::propose(self.hold);
        if given.done(&need, &proposed) {
            return Ok(Decided::default());
        }
        let target = Target::Donation(self.donation);
        let taking = [
            DonationCommand::PlaceHold {
                hold: self.hold,
                need: self.need,
                units: self.units,
                expires_at: self.expires_at,
            },
            DonationCommand::ConfirmHold { hold: self.hold },
        ];
        let given_units = step::<Donation>(given, self.donation.as_uuid(), keys::hold(self.hold), &taking, now)?;
        let proposal = Proposal {
            target,
            hold: self.hold,
            deadline: self.expires_at,
        };
        let accepting = [NeedCommand::Propose(proposal), NeedCommand::Accept { by: target }];
        let accepted = step::<Need>(given, self.need.as_uuid(), proposed, &accepting, now)?;
        Ok(Decided {
            steps: vec![given_units, accepted],
            refused: vec![],
        })
    }
}

/// One proposal of [`ProposeAtProviders`]: the hold at `provider` and the
/// need (`hold.need`) proposed with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AtProvider {
    pub provider: ProviderId,
    pub hold: HoldRequest,
}

/// Propose at providers: each provider's holds and every proposal they back,
/// in one commit, whichever providers they go to. Each proposal goes ahead
/// with its hold or not at all:
///
/// * a proposal made before (its key applied on the need) places no hold
///   again, whatever happened to the need since (accepted, declined,
///   expired);
/// * a need that refuses its proposal (it moved on) holds nothing, and a
///   hold that does not fit (no room, suspended) proposes nothing; the
///   others go ahead;
/// * a hold already at the provider (placed before its proposal, by a
///   matcher from before atomic commits) is proposed, not placed again; one
///   placed alone before and ended since is never placed again.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProposeAtProviders {
    pub proposals: Vec<AtProvider>,
}

impl ProposeAtProviders {
    fn providers(&self) -> BTreeMap<ProviderId, Vec<usize>> {
        let mut by_provider: BTreeMap<ProviderId, Vec<usize>> = BTreeMap::new();
        for (i, p) in self.proposals.iter().enumerate() {
            by_provider.entry(p.provider).or_default().push(i);
        }
        by_provider
    }
}

impl AtomicDecision for ProposeAtProviders {
    fn reads(&self) -> Vec<(AggregateRef, Vec<IdempotencyKey>)> {
        let mut reads: Vec<_> = self
            .providers()
            .into_iter()
            .map(|(provider, members)| {
                let placed = members.iter().map(|i| keys::hold(self.proposals[*i].hold.hold));
                (reference::<Provider>(provider.as_uuid()), placed.collect())
            })
            .collect();
        reads.extend(self.proposals.iter().map(|p| {
            (
                reference::<Need>(p.hold.need.as_uuid()),
                vec![keys::propose(p.hold.hold)],
            )
        }));
        reads
    }

    fn decide(&self, given: &Given, now: Timestamp) -> Result<Decided, DomainError> {
        let mut decided = Decided::default();
        let mut needs = Vec::new();
        // A proposal given twice is made once: two commits of one need in
        // one batch would refuse the whole batch, every time it is tried.
        let mut seen = BTreeSet::new();
        for (provider, members) in self.providers() {
            let at = reference::<Provider>(provider.as_uuid());
            let mut state = given.state::<Provider>(provider.as_uuid());
            let mut events = Vec::new();
            let mut placed = Vec::new();
            for i in members {
                let AtProvider { hold: request, .. } = &self.proposals[i];
                if !seen.insert(request.hold) {
                    continue;
                }
                let need = reference::<Need>(request.need.as_uuid());
                let proposed = keys::propose(request.hold);
                if given.done(&need, &proposed) {
                    // Made before: its hold went with it, and stays gone.
                    needs.push((i, step::<Need>(given, need.id, proposed, &[], now)?));
                    continue;
                }
                let (holding, deadline) = match state.holds.get(&request.hold) {
                    Some(held) => (vec![], held.expires_at),
                    None if given.done(&at, &keys::hold(request.hold)) => {
                        decided.refused.push((i, DomainError::DuplicateHold));
                        continue;
                    }
                    None => {
                        let place = ProviderCommand::PlaceHold {
                            hold: request.hold,
                            need: request.need,
                            service: request.service,
                            units: request.units,
                            expires_at: request.expires_at,
                        };
                        match state.decide(&place, now) {
                            Ok(holding) => (holding, request.expires_at),
                            Err(err) => {
                                decided.refused.push((i, err));
                                continue;
                            }
                        }
                    }
                };
                let proposal = NeedCommand::Propose(Proposal {
                    target: Target::Provider(provider),
                    hold: request.hold,
                    deadline,
                });
                match step::<Need>(given, need.id, proposed, &[proposal], now) {
                    Ok(proposing) => {
                        for event in holding {
                            state = state.evolve(&event);
                            events.push(Provider::wrap(event));
                            placed.push(request.hold);
                        }
                        needs.push((i, proposing));
                    }
                    Err(err) => decided.refused.push((i, err)),
                }
            }
            if !events.is_empty() {
                decided.steps.push(Step {
                    aggregate: at,
                    key: keys::holds(&placed),
                    events,
                    state: state.into_state(),
                });
            }
        }
        needs.sort_by_key(|(i, _)| *i);
        decided.steps.extend(needs.into_iter().map(|(_, s)| s));
        decided.refused.sort_by_key(|(i, _)| *i);
        Ok(decided)
    }
}

/// One command on one aggregate, carried as a decision: the decider's
/// single-aggregate writes (a waitlisting, a settlement) take the same path
/// and checks as its atomic decisions.
pub struct OneCommand<A: Aggregate> {
    pub id: Uuid,
    pub command: A::Command,
    pub key: IdempotencyKey,
}

impl<A> AtomicDecision for OneCommand<A>
where
    A: Touched,
    A::Command: Sync,
{
    fn reads(&self) -> Vec<(AggregateRef, Vec<IdempotencyKey>)> {
        vec![(reference::<A>(self.id), vec![self.key.clone()])]
    }

    fn decide(&self, given: &Given, now: Timestamp) -> Result<Decided, DomainError> {
        let one = step::<A>(
            given,
            self.id,
            self.key.clone(),
            std::slice::from_ref(&self.command),
            now,
        )?;
        Ok(Decided {
            steps: vec![one],
            refused: vec![],
        })
    }
}

/// One person's placement request: their file, recorded under the request's
/// key, and each need the file names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PersonRequest {
    pub placement: PlacementId,
    pub key: IdempotencyKey,
    pub file: PlacementFile,
    /// The needs of `file`, each with what it asks for.
    pub needs: Vec<(NeedId, NeedRequest)>,
}

/// People's placement requests, one person's or a whole group's, as one
/// commit: every file recorded and every need requested, or nothing. So
/// the matcher never meets part of a group (a group written one person at
/// a time had members proposed before the last was requested). Carried
/// out again (a client's retry), it writes nothing twice; a file recorded
/// before stands, and its needs are the ones requested.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestPlacements {
    pub people: Vec<PersonRequest>,
}

impl AtomicDecision for RequestPlacements {
    fn reads(&self) -> Vec<(AggregateRef, Vec<IdempotencyKey>)> {
        self.people
            .iter()
            .flat_map(|person| {
                std::iter::once((
                    reference::<Placement>(person.placement.as_uuid()),
                    vec![person.key.clone()],
                ))
                .chain(
                    person
                        .needs
                        .iter()
                        .map(|(need, _)| (reference::<Need>(need.as_uuid()), vec![keys::requested()])),
                )
            })
            .collect()
    }

    fn decide(&self, given: &Given, now: Timestamp) -> Result<Decided, DomainError> {
        let mut steps = Vec::new();
        for person in &self.people {
            let named: Vec<NeedId> = person.needs.iter().map(|(need, _)| *need).collect();
            let listed: Vec<NeedId> = person.file.needs.iter().map(|(need, _)| *need).collect();
            if named != listed {
                return Err(DomainError::invalid("needs", "must be the needs the file names"));
            }
            let recorded = step::<Placement>(
                given,
                person.placement.as_uuid(),
                person.key.clone(),
                &[PlacementCommand::Record(person.file.clone())],
                now,
            )?;
            // Recorded before under this key: that file's needs are the ones.
            let file = Placement::read(&recorded.state).and_then(|p| p.file.as_ref());
            if file.is_some_and(|f| f.needs != person.file.needs) {
                return Err(DomainError::invalid(
                    "needs",
                    "differ from those recorded under this idempotency key",
                ));
            }
            steps.push(recorded);
            for (need, request) in &person.needs {
                let command = NeedCommand::Request(request.clone());
                steps.push(step::<Need>(given, need.as_uuid(), keys::requested(), &[command], now)?);
            }
        }
        Ok(Decided { steps, refused: vec![] })
    }

    fn creates(&self) -> bool {
        true
    }
}

/// Whether `kind` can be read by an atomic decision.
pub fn touchable(kind: AggregateKind) -> bool {
    matches!(
        kind,
        AggregateKind::Provider | AggregateKind::Donation | AggregateKind::Need | AggregateKind::Placement
    )
}
