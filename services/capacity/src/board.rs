//! The referral board: what each provider site has been sent, built from the
//! stream. It joins provider holds with the needs they serve, keeping only
//! what a provider may see (service, units, party size, age band, languages,
//! accessibility, urgency, deadline): never the agency, never a case reference.

use refer_domain::ids::{HoldId, NeedId, OrgId, PlacementId, ProviderId};
use refer_domain::kinds::ServiceKind;
use refer_domain::need::{NeedEvent, Target};
use refer_domain::placement::{Consent, PlacementEvent, SealedPart};
use refer_domain::profile::{Accessibility, AgeBand, Language};
use refer_domain::provider::{ProviderEvent, ReleaseReason};
use refer_domain::request::Urgency;
use refer_domain::standing::{Owner, StandingEvent};
use refer_domain::{Event, Timestamp};
use refer_eventstore::Recorded;
use refer_service::read_model::{key, Changes, Model, Undecodable};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReferralStatus {
    /// The hold exists but the need has not been proposed yet: not shown.
    Offered,
    Pending,
    Accepted,
    Declined,
    Expired,
    Cancelled,
}

/// What the provider may know about the person behind a referral.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeedSummary {
    /// The person's placement: a site's referrals for one person are told
    /// apart from another's by a tag made of it (see `views::person_tag`).
    pub placement: PlacementId,
    pub party_size: u16,
    pub age_band: AgeBand,
    pub languages: BTreeSet<Language>,
    pub accessibility: BTreeSet<Accessibility>,
    pub urgency: Urgency,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Referral {
    pub hold: HoldId,
    pub provider: ProviderId,
    pub need: NeedId,
    pub service: ServiceKind,
    pub units: u32,
    pub deadline: Timestamp,
    pub status: ReferralStatus,
    pub summary: Option<NeedSummary>,
    /// Stream sequence of the latest change.
    pub position: u64,
}

impl refer_service::watch::Positioned for Referral {
    type Key = HoldId;
    fn key(&self) -> HoldId {
        self.hold
    }
    fn position(&self) -> u64 {
        self.position
    }
}

/// What an accepting provider may open: the agency's contact, a consented
/// note, the hand-off it gave. Ciphertext only (see `crates/sealed`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sealed {
    /// The requesting agency of each need (never shown; it finds the contact).
    pub agency_of: BTreeMap<NeedId, OrgId>,
    pub contacts: BTreeMap<OrgId, refer_domain::sealed::Sealed>,
    pub notes: BTreeMap<NeedId, (Consent, refer_domain::sealed::Sealed)>,
    pub handoffs: BTreeMap<NeedId, refer_domain::sealed::Sealed>,
}

/// The referrals of every site, the need summaries they show, and which
/// organisation runs which site.
#[derive(Default)]
pub struct Referrals {
    pub referrals: BTreeMap<HoldId, Referral>,
    pub by_provider: BTreeMap<ProviderId, BTreeSet<HoldId>>,
    needs: BTreeMap<NeedId, NeedSummary>,
    pub orgs: BTreeMap<OrgId, BTreeSet<ProviderId>>,
    pub sealed: Sealed,
}

impl Referrals {
    /// A provider's visible referrals with a position after `after`, in stream order.
    pub fn referrals_of(&self, provider: ProviderId, after: u64) -> Vec<Referral> {
        let mut out: Vec<Referral> = self
            .by_provider
            .get(&provider)
            .into_iter()
            .flatten()
            .filter_map(|hold| self.referrals.get(hold))
            .filter(|r| r.status != ReferralStatus::Offered && r.position > after)
            .cloned()
            .collect();
        out.sort_by_key(|r| (r.position, r.hold));
        out
    }
}

type Out = Changes<Referral>;

impl Referrals {
    fn touch(&mut self, out: &mut Out, hold: HoldId, seq: u64, change: impl FnOnce(&mut Referral)) {
        if let Some(r) = self.referrals.get_mut(&hold) {
            change(r);
            r.position = seq;
            out.write(key(b'r', &hold), r);
            if r.status != ReferralStatus::Offered {
                out.announce(r.clone());
            }
        }
    }

    fn settle(&mut self, out: &mut Out, target: Target, hold: HoldId, seq: u64, status: ReferralStatus) {
        if let Target::Provider(_) = target {
            self.touch(out, hold, seq, |r| {
                if matches!(r.status, ReferralStatus::Offered | ReferralStatus::Pending) {
                    r.status = status;
                }
            });
        }
    }
}

impl Model for Referrals {
    type Change = Referral;

    fn apply(&mut self, commit: &Recorded, out: &mut Out) {
        let state = self;
        let seq = commit.seq;
        for envelope in &commit.events {
            let id = envelope.aggregate.id;
            match &envelope.event {
                Event::Provider(ProviderEvent::Registered(profile)) => {
                    let provider = ProviderId::from_uuid(id);
                    state.orgs.entry(profile.org).or_default().insert(provider);
                    out.write(key(b'o', &(profile.org, provider)), &());
                }
                Event::Provider(ProviderEvent::HoldPlaced {
                    hold,
                    need,
                    service,
                    units,
                    expires_at,
                }) => {
                    let provider = ProviderId::from_uuid(id);
                    let referral = Referral {
                        hold: *hold,
                        provider,
                        need: *need,
                        service: *service,
                        units: *units,
                        deadline: *expires_at,
                        status: ReferralStatus::Offered,
                        summary: state.needs.get(need).cloned(),
                        position: seq,
                    };
                    state.by_provider.entry(provider).or_default().insert(*hold);
                    state.referrals.insert(*hold, referral);
                    state.touch(out, *hold, seq, |_| {});
                }
                Event::Provider(ProviderEvent::HoldConfirmed { hold }) => {
                    state.touch(out, *hold, seq, |r| r.status = ReferralStatus::Accepted);
                }
                Event::Provider(ProviderEvent::HoldReleased { hold, reason }) => {
                    let status = match reason {
                        ReleaseReason::Declined => ReferralStatus::Declined,
                        ReleaseReason::Expired => ReferralStatus::Expired,
                        ReleaseReason::Cancelled | ReleaseReason::Withdrawn => ReferralStatus::Cancelled,
                    };
                    state.touch(out, *hold, seq, |r| {
                        if matches!(r.status, ReferralStatus::Offered | ReferralStatus::Pending) {
                            r.status = status;
                        }
                    });
                }
                Event::Need(NeedEvent::Requested(request)) => {
                    let spec = &request.spec;
                    let summary = NeedSummary {
                        placement: request.placement,
                        party_size: spec.profile.party_size,
                        age_band: spec.profile.age_band,
                        languages: spec.profile.languages.clone(),
                        accessibility: spec.profile.accessibility.clone(),
                        urgency: spec.urgency,
                    };
                    let need = NeedId::from_uuid(id);
                    out.write(key(b'n', &need), &summary);
                    state.needs.insert(need, summary);
                    out.write(key(b'a', &need), &request.agency);
                    state.sealed.agency_of.insert(need, request.agency);
                }
                Event::Need(NeedEvent::HandedOff(handoff)) => {
                    let need = NeedId::from_uuid(id);
                    out.write(key(b'h', &need), handoff);
                    state.sealed.handoffs.insert(need, handoff.clone());
                }
                Event::Standing(
                    StandingEvent::Set {
                        owner: Owner::Agency(agency),
                        text,
                    }
                    | StandingEvent::Replaced {
                        owner: Owner::Agency(agency),
                        text,
                        ..
                    },
                ) => {
                    out.write(key(b'c', agency), text);
                    state.sealed.contacts.insert(*agency, text.clone());
                }
                Event::Standing(StandingEvent::Cleared {
                    owner: Owner::Agency(agency),
                }) => {
                    out.remove(key(b'c', agency));
                    state.sealed.contacts.remove(agency);
                }
                Event::Placement(PlacementEvent::NoteShared { need, consent, note }) => {
                    let entry = (consent.clone(), note.clone());
                    out.write(key(b'm', need), &entry);
                    state.sealed.notes.insert(*need, entry);
                }
                Event::Placement(PlacementEvent::Erased { parts, .. }) => {
                    for part in parts {
                        if let SealedPart::Note(need) = part {
                            out.remove(key(b'm', need));
                            state.sealed.notes.remove(need);
                        }
                    }
                }
                Event::Need(NeedEvent::Proposed(p)) => {
                    if let Target::Provider(_) = p.target {
                        let summary = state.needs.get(&NeedId::from_uuid(id)).cloned();
                        state.touch(out, p.hold, seq, |r| {
                            if r.status == ReferralStatus::Offered {
                                r.status = ReferralStatus::Pending;
                                r.summary = summary;
                            }
                        });
                    }
                }
                Event::Need(NeedEvent::Accepted(p)) => {
                    state.settle(out, p.target, p.hold, seq, ReferralStatus::Accepted)
                }
                Event::Need(NeedEvent::Declined { proposal: p, .. }) => {
                    state.settle(out, p.target, p.hold, seq, ReferralStatus::Declined)
                }
                Event::Need(NeedEvent::Expired(p)) => state.settle(out, p.target, p.hold, seq, ReferralStatus::Expired),
                Event::Need(NeedEvent::Cancelled { pending: Some(p) }) => {
                    state.settle(out, p.target, p.hold, seq, ReferralStatus::Cancelled)
                }
                _ => {}
            }
        }
    }

    fn restore(&mut self, key: &[u8], value: &[u8]) -> Result<(), Undecodable> {
        match key.first() {
            Some(b'r') => {
                let r: Referral = postcard::from_bytes(value)?;
                self.by_provider.entry(r.provider).or_default().insert(r.hold);
                self.referrals.insert(r.hold, r);
            }
            Some(b'n') => {
                self.needs
                    .insert(postcard::from_bytes(&key[1..])?, postcard::from_bytes(value)?);
            }
            Some(b'o') => {
                let (org, provider): (OrgId, ProviderId) = postcard::from_bytes(&key[1..])?;
                self.orgs.entry(org).or_default().insert(provider);
            }
            Some(b'a') => {
                self.sealed
                    .agency_of
                    .insert(postcard::from_bytes(&key[1..])?, postcard::from_bytes(value)?);
            }
            Some(b'h') => {
                self.sealed
                    .handoffs
                    .insert(postcard::from_bytes(&key[1..])?, postcard::from_bytes(value)?);
            }
            Some(b'c') => {
                self.sealed
                    .contacts
                    .insert(postcard::from_bytes(&key[1..])?, postcard::from_bytes(value)?);
            }
            Some(b'm') => {
                self.sealed
                    .notes
                    .insert(postcard::from_bytes(&key[1..])?, postcard::from_bytes(value)?);
            }
            _ => return Err(Undecodable("an entry of no known kind".into())),
        }
        Ok(())
    }
}
