//! One operation carries an atomic decision of the domain
//! (`refer_domain::decision`) end to end: read each aggregate it names,
//! decide, check the caller's precondition (a leader's fence), commit every
//! part as one atomic batch, record local state, and on a lost race do it
//! all again, a bounded number of times. Every multi-aggregate write of the
//! services goes through here, so the precondition is checked on the first
//! try and on every retry, right before the commit, in one place.

use crate::atomic::{back_off, Part, COMMIT_ATTEMPTS};
use crate::error::StoreError;
use crate::store::{EventStore, Executed, Loaded, Outcome};
use refer_domain::decision::{AtomicDecision, Decided, Given, State, Touched};
use refer_domain::donation::Donation;
use refer_domain::ids::EventId;
use refer_domain::need::Need;
use refer_domain::placement::Placement;
use refer_domain::provider::Provider;
use refer_domain::{AggregateKind, AggregateRef, CommandMeta, DomainError, Envelope, IdempotencyKey, Timestamp};
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// What the caller requires before each try commits (a fence: "this
/// process still holds the lease"), given the attempt (1, 2, ...). An
/// error refuses the commit and is returned as is.
pub type Precondition<'a> = &'a (dyn Fn(u32) -> Result<(), StoreError> + Sync);

/// No precondition.
pub fn always(_attempt: u32) -> Result<(), StoreError> {
    Ok(())
}

/// One aggregate's part as committed (or found done before).
#[derive(Debug)]
pub struct Landed {
    pub aggregate: AggregateRef,
    /// Its version now: the commit's sequence, or the version it was read at.
    pub version: u64,
    pub outcome: Outcome,
    pub state: State,
    pub events: Vec<Envelope>,
}

/// What an atomic decision did.
#[derive(Debug)]
pub struct Committed {
    pub parts: Vec<Landed>,
    /// Items of the decision left out, and why (the rest was committed).
    pub refused: Vec<(usize, DomainError)>,
}

impl Committed {
    /// What the decision did to aggregate `id` of type `A`, if it touched it.
    pub fn executed<A: Touched>(&self, id: Uuid) -> Option<Executed<A>> {
        let aggregate = AggregateRef { kind: A::KIND, id };
        let part = self.parts.iter().find(|p| p.aggregate == aggregate)?;
        Some(Executed {
            state: A::read(&part.state)?.clone(),
            version: part.version,
            events: part.events.clone(),
            outcome: part.outcome,
        })
    }
}

/// A step ready to write.
struct Written {
    aggregate: AggregateRef,
    expected: u64,
    envelopes: Vec<Envelope>,
}

impl Part for Written {
    fn aggregate(&self) -> AggregateRef {
        self.aggregate
    }
    fn expected(&self) -> u64 {
        self.expected
    }
    fn envelopes(&self) -> &[Envelope] {
        &self.envelopes
    }
}

/// What was read of each aggregate: its version and the keys applied since
/// its snapshot (recorded again with the next snapshot).
type Read = BTreeMap<AggregateRef, (u64, BTreeSet<(IdempotencyKey, u64)>)>;

impl EventStore {
    /// Carries out `decision` at `now` as one atomic commit. `meta` gives
    /// each aggregate's command metadata (its key is the step's own);
    /// `check` runs before every try's commit, after the try's reads.
    ///
    /// The first try is speculative where it can be, as `execute`'s is: an
    /// aggregate this store wrote before is decided on its local snapshot,
    /// and one a decision that `creates` names without one as new (a stale
    /// guess makes the commit conflict, and the retry reads the stream); a first decision that refuses anything, leaves a step with
    /// nothing to write or meets a key is made again on the stream at once.
    /// A lost race (`Conflict`) or a batch part of which landed before
    /// (`Duplicate`) is tried again, up to `COMMIT_ATTEMPTS` times.
    pub async fn decide<D: AtomicDecision>(
        &self,
        decision: &D,
        now: Timestamp,
        meta: &(dyn Fn(&AggregateRef) -> CommandMeta + Sync),
        check: Precondition<'_>,
    ) -> Result<Committed, StoreError> {
        let reads = decision.reads();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (mut given, mut read, seen) = self.given(&reads, attempt == 1, decision.creates()).await?;
            let mut decided = decision.decide(&given, now);
            if attempt == 1 && (seen || !trusted(&decided)) {
                (given, read, _) = self.given(&reads, false, false).await?;
                decided = decision.decide(&given, now);
            }
            let decided = decided?;
            check(attempt)?;
            let written: Vec<Option<Written>> = decided
                .steps
                .iter()
                .map(|step| {
                    (!step.events.is_empty()).then(|| {
                        let meta = CommandMeta {
                            idempotency_key: Some(step.key.clone()),
                            ..meta(&step.aggregate)
                        };
                        Written {
                            aggregate: step.aggregate,
                            expected: read[&step.aggregate].0,
                            envelopes: step
                                .events
                                .iter()
                                .map(|e| {
                                    Envelope::new(EventId::from_uuid(Uuid::new_v4()), step.aggregate, &meta, e.clone())
                                })
                                .collect(),
                        }
                    })
                })
                .collect();
            let parts: Vec<&dyn Part> = written.iter().flatten().map(|w| w as &dyn Part).collect();
            match self.commit_atomic(&parts).await {
                Ok(seqs) => return self.settle(decided, written, seqs, &given, read),
                Err(StoreError::Conflict { .. } | StoreError::Duplicate) if attempt < COMMIT_ATTEMPTS => {
                    tracing::debug!(attempt, "lost a decision's commit race; reading again");
                    back_off(attempt).await
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// Reads every aggregate `reads` names and which of its keys were
    /// applied. Speculative: aggregates with a local snapshot are taken from
    /// it, unread; says whether a key was found applied locally.
    async fn given(
        &self,
        reads: &[(AggregateRef, Vec<IdempotencyKey>)],
        speculative: bool,
        creates: bool,
    ) -> Result<(Given, Read, bool), StoreError> {
        let mut given = Given::new();
        let mut read = Read::new();
        let mut seen = false;
        for (aggregate, keys) in reads {
            if read.contains_key(aggregate) {
                continue;
            }
            let (state, loaded_version, loaded_keys, applied) = match aggregate.kind {
                AggregateKind::Provider => self.read_one::<Provider>(aggregate, keys, speculative, creates).await?,
                AggregateKind::Donation => self.read_one::<Donation>(aggregate, keys, speculative, creates).await?,
                AggregateKind::Need => self.read_one::<Need>(aggregate, keys, speculative, creates).await?,
                AggregateKind::Placement => {
                    self.read_one::<Placement>(aggregate, keys, speculative, creates)
                        .await?
                }
                kind => {
                    return Err(StoreError::Setup(format!(
                        "a decision cannot read a {} aggregate",
                        kind.token()
                    )))
                }
            };
            given.insert(*aggregate, state);
            for key in applied {
                seen |= speculative;
                given.mark_done(*aggregate, key);
            }
            read.insert(*aggregate, (loaded_version, loaded_keys));
        }
        Ok((given, read, seen))
    }

    #[allow(clippy::type_complexity)]
    async fn read_one<A: Touched>(
        &self,
        aggregate: &AggregateRef,
        keys: &[IdempotencyKey],
        speculative: bool,
        creates: bool,
    ) -> Result<(State, u64, BTreeSet<(IdempotencyKey, u64)>, Vec<IdempotencyKey>), StoreError> {
        // Speculative: the local snapshot; with none, a new aggregate when
        // the decision makes new ones (one that exists after all makes the
        // commit conflict, and the next try reads the stream).
        let cached = if speculative {
            Some(self.cached::<A>(aggregate)?).filter(|c| c.version > 0 || creates)
        } else {
            None
        };
        let loaded: Loaded<A> = match cached {
            Some(cached) => cached,
            None => self.load::<A>(aggregate.id).await?,
        };
        let mut applied = Vec::new();
        for key in keys {
            if self.local().applied(aggregate, key)?.is_some() || loaded.applied(key).is_some() {
                applied.push(key.clone());
            }
        }
        let version = loaded.version;
        let state = loaded.state.clone();
        Ok((state.into_state(), version, loaded.keys_applied(), applied))
    }

    /// Records each committed step locally and says what each did.
    fn settle(
        &self,
        decided: Decided,
        written: Vec<Option<Written>>,
        seqs: Vec<Option<u64>>,
        given: &Given,
        mut read: Read,
    ) -> Result<Committed, StoreError> {
        let mut seqs = seqs.into_iter();
        let mut parts = Vec::new();
        for (step, written) in decided.steps.into_iter().zip(written) {
            let (version, keys) = read.remove(&step.aggregate).unwrap_or_default();
            let landed = match written.map(|w| (w, seqs.next().flatten())) {
                Some((w, Some(seq))) => {
                    let mut keys = keys;
                    keys.insert((step.key.clone(), seq));
                    match &step.state {
                        State::Provider(s) => self.local().record(&step.aggregate, seq, s, &keys)?,
                        State::Donation(s) => self.local().record(&step.aggregate, seq, s, &keys)?,
                        State::Need(s) => self.local().record(&step.aggregate, seq, s, &keys)?,
                        State::Placement(s) => self.local().record(&step.aggregate, seq, s, &keys)?,
                    }
                    Landed {
                        aggregate: step.aggregate,
                        version: seq,
                        outcome: Outcome::Applied,
                        state: step.state,
                        events: w.envelopes,
                    }
                }
                _ => Landed {
                    aggregate: step.aggregate,
                    version,
                    outcome: if given.done(&step.aggregate, &step.key) {
                        Outcome::Duplicate
                    } else {
                        Outcome::NoChange
                    },
                    state: step.state,
                    events: vec![],
                },
            };
            parts.push(landed);
        }
        Ok(Committed {
            parts,
            refused: decided.refused,
        })
    }
}

/// Whether a decision made on local snapshots may be committed as it is.
fn trusted(decided: &Result<Decided, DomainError>) -> bool {
    match decided {
        Ok(d) => d.refused.is_empty() && !d.steps.is_empty() && d.steps.iter().all(|s| !s.events.is_empty()),
        Err(_) => false,
    }
}
