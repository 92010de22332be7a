//! Referrals sent to a site: list, watch, accept, decline.

use crate::board::{Referral, ReferralStatus};
use crate::views::referral_view;
use crate::CapacityService;
use refer_domain::decision;
use refer_domain::ids::{HoldId, OrgId, ProviderId};
use refer_domain::need::{DeclineReason, Need, Target};
use refer_domain::provider::Provider;
use refer_domain::standing::{Owner, Standing};
use refer_domain::DomainError;
use refer_eventstore::{always, Executed, Outcome, StoreError};
use refer_proto::capacity::v1 as pb;
use refer_service::convert::decline_reason;
use refer_service::convert::id;
use refer_service::reads::{About, ItemKind, Trail};
use refer_service::sealing::{self, purpose, HandoffText, Opened};
use refer_service::watch::WatchStream;
use refer_service::{caller, page, store_status};
use tonic::{Request, Response, Status};

pub async fn list(
    service: &CapacityService,
    request: Request<pb::ListReferralsRequest>,
) -> Result<Response<pb::ListReferralsResponse>, Status> {
    let who = caller(&request)?;
    let r = request.get_ref();
    let size = page::size(r.page_size)?;
    let after: u64 = page::after(&r.page_token)?.unwrap_or(0);
    let (pid, site, _) = service.owned(&who, &r.provider_id).await?;
    let referrals: Vec<Referral> = service
        .board
        .read()
        .referrals_of(ProviderId::from_uuid(pid), after)
        .into_iter()
        .filter(|x| !r.pending_only || x.status == ReferralStatus::Pending)
        .take(size + 1)
        .collect();
    let (referrals, next_page_token) = page::cut(referrals, size, |r| r.position);
    let owner = site_org(&site);
    let (views, trail) = refer_service::reads::open_page(&who, &referrals, |referral, mut trail| async move {
        let view = full_view_with(service, referral, None, owner, &mut Contacts::new(), &mut trail).await?;
        Ok((view, trail))
    })
    .await?;
    // One record for every sealed item the page opened, before it leaves.
    service.shell.reads.record(trail, service.shell.clock.now()).await?;
    Ok(Response::new(pb::ListReferralsResponse {
        referrals: views,
        next_page_token,
    }))
}

pub async fn watch(
    service: &CapacityService,
    request: Request<pb::WatchReferralsRequest>,
) -> Result<Response<WatchStream<pb::Referral>>, Status> {
    let who = caller(&request)?;
    let r = request.get_ref();
    let (pid, _, _) = service.owned(&who, &r.provider_id).await?;
    let provider = ProviderId::from_uuid(pid);
    Ok(Response::new(service.board.watch(
        r.after_position,
        move |board, after| board.referrals_of(provider, after),
        move |referral: &Referral| referral.provider == provider,
        referral_view,
    )))
}

pub async fn accept(
    service: &CapacityService,
    request: Request<pb::AcceptReferralRequest>,
) -> Result<Response<pb::Referral>, Status> {
    let r = request.get_ref();
    let handoff = match r.handoff.trim() {
        "" => None,
        text => Some(sealing::text(text, "handoff")?),
    };
    let view = answer(
        service,
        &request,
        &r.provider_id,
        &r.referral_id,
        &r.idempotency_key,
        Answer::Accept { handoff },
    )
    .await?;
    Ok(Response::new(view))
}

pub async fn get(
    service: &CapacityService,
    request: Request<pb::GetReferralRequest>,
) -> Result<Response<pb::Referral>, Status> {
    let who = caller(&request)?;
    let r = request.get_ref();
    let (pid, site, _) = service.owned(&who, &r.provider_id).await?;
    let hold = HoldId::from_uuid(id(&r.referral_id, "referral_id")?);
    let referral = service
        .board
        .read()
        .referrals
        .get(&hold)
        .filter(|x| x.provider == ProviderId::from_uuid(pid) && x.status != ReferralStatus::Offered)
        .cloned()
        .ok_or_else(|| Status::not_found("no such referral at this provider"))?;
    let mut trail = Trail::new(&who);
    let view = full_view(service, &referral, None, site_org(&site), &mut trail).await?;
    service.shell.reads.record(trail, service.shell.clock.now()).await?;
    Ok(Response::new(view))
}

/// The organisation a site belongs to (whose its hand-offs are).
pub(crate) fn site_org(site: &Provider) -> OrgId {
    site.profile.as_ref().map_or(OrgId::from_u128(0), |p| p.org)
}

/// A referral as its provider sees it; once accepted, with what the agency
/// shares: its on-call contact, a consented note (while the consent lasts),
/// and the hand-off the provider gave. An admin sees the referral, never
/// these. Every item opened goes on `trail`.
/// (`given`: a hand-off just committed, which the board may not hold yet;
/// `owner`: the organisation of the site, whose the hand-off is.)
pub(crate) async fn full_view(
    service: &CapacityService,
    referral: &Referral,
    given: Option<&refer_domain::sealed::Sealed>,
    owner: OrgId,
    trail: &mut Trail,
) -> Result<pb::Referral, Status> {
    full_view_with(service, referral, given, owner, &mut Contacts::new(), trail).await
}

/// Agencies' contacts opened so far for one answer.
type Contacts = std::collections::BTreeMap<OrgId, String>;

/// [`full_view`], opening each agency's contact once for all the referrals
/// of one answer (`contacts`).
async fn full_view_with(
    service: &CapacityService,
    referral: &Referral,
    given: Option<&refer_domain::sealed::Sealed>,
    owner: OrgId,
    contacts: &mut Contacts,
    trail: &mut Trail,
) -> Result<pb::Referral, Status> {
    let mut view = referral_view(referral);
    if referral.status != ReferralStatus::Accepted || !trail.shows_content() {
        return Ok(view);
    }
    let need = referral.need;
    let (agency, contact, note, handoff) = {
        let board = service.board.read();
        let sealed = &board.sealed;
        let agency = sealed.agency_of.get(&need).copied();
        (
            agency,
            agency.and_then(|a| sealed.contacts.get(&a).cloned()),
            sealed.notes.get(&need).cloned(),
            sealed.handoffs.get(&need).or(given).cloned(),
        )
    };
    let mut shared = pb::AgencyHandoff::default();
    if let (Some(agency), Some(contact)) = (agency, contact) {
        shared.agency_contact = match contacts.get(&agency) {
            Some(opened) => opened.clone(),
            None => {
                let about = About {
                    kind: ItemKind::AgencyContact,
                    of: agency.as_uuid(),
                    owner: agency,
                };
                let opened = sealing::open(
                    &service.shell.vault,
                    &contact,
                    &purpose::agency_contact(agency),
                    trail,
                    about,
                )
                .await?
                .text()
                .unwrap_or_default();
                contacts.insert(agency, opened.clone());
                opened
            }
        };
    }
    let now = service.shell.clock.now();
    if let (Some(agency), Some((consent, note))) = (agency, note.filter(|(consent, _)| consent.until > now)) {
        let about = About {
            kind: ItemKind::Note,
            of: need.as_uuid(),
            owner: agency,
        };
        shared.note = sealing::open(&service.shell.vault, &note, &purpose::note(need), trail, about)
            .await?
            .text()
            .unwrap_or_default();
        if !shared.note.is_empty() {
            shared.note_until_ms = consent.until.millis();
        }
    }
    if let Some(handoff) = handoff {
        if let Opened::Text(given) = sealing::open_handoff(&service.shell.vault, need, owner, &handoff, trail).await? {
            shared.instructions = given.instructions;
        }
    }
    view.handoff = Some(shared);
    Ok(view)
}

impl CapacityService {
    /// The hand-off instructions of an acceptance: those given, or the
    /// site's default; refused when there is neither.
    async fn instructions_for(
        &self,
        site: ProviderId,
        owner: OrgId,
        given: Option<&str>,
        trail: &mut Trail,
    ) -> Result<String, Status> {
        Ok(match given {
            Some(text) => text.to_owned(),
            None => {
                let standing = self.shell.load::<Standing>(Owner::Site(site).id()).await?;
                let about = About {
                    kind: ItemKind::SiteHandoff,
                    of: site.as_uuid(),
                    owner,
                };
                let default = match &standing.state.text {
                    // Copied into the hand-off, also on an admin's acceptance
                    // (who is not shown it).
                    Some(sealed) => {
                        sealing::open_to_copy(&self.shell.vault, sealed, &purpose::site_default(site), trail, about)
                            .await?
                    }
                    None => Opened::Erased,
                };
                match default.text() {
                    Some(text) => text,
                    None => {
                        return Err(Status::failed_precondition(
                            "handoff: say where to bring the person, who meets them and a phone, \
                             or register the site's default hand-off (SetSiteHandoff)",
                        ))
                    }
                }
            }
        })
    }
}

/// What an answer to a referral says.
enum Answer {
    Accept { handoff: Option<String> },
    Decline(DeclineReason),
}

pub async fn decline(
    service: &CapacityService,
    request: Request<pb::DeclineReferralRequest>,
) -> Result<Response<pb::Referral>, Status> {
    let r = request.get_ref();
    let reason = decline_reason(r.reason, "reason")?;
    let view = answer(
        service,
        &request,
        &r.provider_id,
        &r.referral_id,
        &r.idempotency_key,
        Answer::Decline(reason),
    )
    .await?;
    Ok(Response::new(view))
}

/// Accepts (with the hand-off) or declines a referral.
async fn answer<T: prost::Message>(
    service: &CapacityService,
    request: &Request<T>,
    provider: &str,
    referral: &str,
    key: &str,
    decision: Answer,
) -> Result<pb::Referral, Status> {
    let call = service.shell.command(request, key)?;
    let who = &call.who;
    let (pid, state, _) = service.owned(who, provider).await?;
    let hold = HoldId::from_uuid(id(referral, "referral_id")?);
    let site = ProviderId::from_uuid(pid);
    let owner = site_org(&state);
    let known = service.board.read().referrals.get(&hold).cloned();
    // The hold names the need while pending; afterwards the board still
    // knows it, so a retried answer finds its idempotency record.
    let need = match (state.holds.get(&hold), &known) {
        (Some(h), _) => h.need,
        (None, Some(r)) if r.provider == ProviderId::from_uuid(pid) => r.need,
        _ => return Err(Status::not_found("no such referral at this provider")),
    };
    let mut trail = Trail::new(who);
    // Checked before the key is bound: a refusal here leaves the key unused.
    let instructions = match &decision {
        Answer::Accept { handoff } => Some(
            service
                .instructions_for(site, owner, handoff.as_deref(), &mut trail)
                .await?,
        ),
        Answer::Decline(_) => None,
    };
    let meta = call.bind().await?;
    let key = call.key().clone();
    let by = Target::Provider(site);
    let (answer, status, sealed) = match (decision, instructions) {
        (Answer::Accept { .. }, Some(instructions)) => {
            // Sealed for the agency with the site's display name, before the
            // commit; erased again if the commit writes nothing.
            let handoff = HandoffText {
                site_name: state.profile.as_ref().map(|p| p.name.clone()).unwrap_or_default(),
                instructions,
            };
            let sealed = sealing::seal_handoff(&service.shell.vault, need, &handoff).await?;
            (
                decision::Answer::Accept {
                    handoff: Some(sealed.clone()),
                },
                ReferralStatus::Accepted,
                Some(sealed),
            )
        }
        (Answer::Accept { .. }, None) => unreachable!("an acceptance has its instructions"),
        (Answer::Decline(reason), _) => (decision::Answer::Decline(reason), ReferralStatus::Declined, None),
    };
    // The answer on the need and the hold settled on the provider are one
    // atomic decision: never an answer without its settlement.
    let answering = decision::AnswerAndSettle {
        need,
        target: by,
        hold,
        answer,
        key,
    };
    let store = &service.shell.store;
    let answered = store
        .decide(&answering, meta.occurred_at, &|_| meta.clone(), &always)
        .await
        .map(|committed| {
            committed
                .executed::<Need>(need.as_uuid())
                .expect("an answer touches its need")
        });
    // A retry, or a refusal: this hand-off was never recorded.
    sealing::erase_if_unwritten(&service.shell.vault, sealed.as_ref(), &answered).await?;
    let answered: Executed<Need> = match answered {
        Ok(done) => done,
        Err(StoreError::Domain(DomainError::InvalidTransition { from, .. })) => {
            return Err(Status::failed_precondition(format!(
                "the referral is no longer pending (the need is {from:?})"
            )))
        }
        Err(err) => return Err(store_status(err)),
    };
    let mut view = match (known, state.holds.get(&hold)) {
        (Some(known), _) => known,
        (None, Some(h)) => Referral {
            hold,
            provider: ProviderId::from_uuid(pid),
            need,
            service: h.service,
            units: h.units,
            deadline: h.expires_at,
            status,
            summary: None,
            position: answered.version,
        },
        (None, None) => unreachable!("the need was resolved from one of them"),
    };
    view.status = status;
    view.position = view.position.max(answered.version);
    // The provider's next list shows the answer.
    service.board.read_your_write(answered.version).await;
    // The board may not have folded the hand-off in yet.
    let fresh = sealed.filter(|_| answered.outcome == Outcome::Applied);
    let view = full_view(service, &view, fresh.as_ref(), owner, &mut trail).await?;
    service.shell.reads.record(trail, service.shell.clock.now()).await?;
    Ok(view)
}
