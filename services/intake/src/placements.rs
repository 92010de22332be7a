//! Placements: request one person's or a group's, read, list, watch.

use crate::board::{Files, NeedView};
use crate::views::{cohesion, cohesion_pb, group_id, need_status_pb, person, update_pb, Person};
use crate::IntakeService;
use refer_domain::decision::{PersonRequest, RequestPlacements};
use refer_domain::donation::Donation;
use refer_domain::ids::{DonationId, OrgId, PlacementId, ProviderId};
use refer_domain::need::{GroupMembership, NeedRequest, Target};
use refer_domain::placement::{Placement, PlacementFile, SealedPart};
use refer_domain::request::{PlacementRequest, MAX_GROUP_SIZE};
use refer_domain::standing::{Owner, Standing};
use refer_domain::CommandMeta;
use refer_eventstore::{always, Outcome};
use refer_proto::intake::v1 as pb;
use refer_service::convert::{self as cv, id_pb};
use refer_service::reads::{About, ItemKind, Trail};
use refer_service::sealing::{self, purpose, Opened};
use refer_service::watch::WatchStream;
use refer_service::{caller, invalid, page, store_status, Principal};
use tonic::{Request, Response, Status};

/// Donations' hand-offs read so far for one answer.
type Donations = std::collections::BTreeMap<DonationId, Option<pb::Handoff>>;

impl IntakeService {
    /// Records each person's file (the case reference sealed) under the
    /// request's key and requests every need it names, all in one commit
    /// (`RequestPlacements`): a group's people reach the matcher together.
    /// A retry, even after intake lost its data, finds the files recorded
    /// (the ids come from the key) and gets them back: their needs, not the
    /// retry's, are the ones requested. Returns each person's placement with
    /// whether it was recorded now, from this very request, and the
    /// position of the commit.
    async fn request_people(
        &self,
        meta: &CommandMeta,
        agency: OrgId,
        people: &[Person],
        group: Option<GroupMembership>,
    ) -> Result<(Vec<(Placement, bool)>, u64), Status> {
        let key = meta.idempotency_key.clone().expect("a placement request has a key");
        let mut sealed: Vec<Option<refer_domain::sealed::Sealed>> = Vec::with_capacity(people.len());
        for person in people {
            let case = match person.case_reference.as_str() {
                "" => None,
                case => {
                    let purpose = purpose::case_reference(person.request.placement);
                    match sealing::seal(&self.shell.vault, "case", case, &purpose).await {
                        Ok(case) => Some(case),
                        Err(status) => {
                            // Nothing is written: the keys sealed for the
                            // people before wrap nothing stored. Erased at
                            // once; if the bus refuses that too, they stay
                            // unused (nothing they could open exists).
                            let earlier: Vec<&str> = sealed.iter().flatten().map(|c| c.item.as_str()).collect();
                            let _ = sealing::erase(&self.shell.vault, earlier).await;
                            return Err(status);
                        }
                    }
                }
            };
            sealed.push(case);
        }
        let decision = RequestPlacements {
            people: people
                .iter()
                .zip(&sealed)
                .map(|(person, case_reference)| {
                    let placement = person.request.placement;
                    let file = PlacementFile {
                        agency,
                        group: group.map(|g| g.group),
                        needs: person.request.needs.clone(),
                        requested_at: meta.occurred_at,
                        case_reference: case_reference.clone(),
                    };
                    let needs = file
                        .needs
                        .iter()
                        .map(|(need, kind)| {
                            let spec = refer_domain::request::NeedSpec {
                                kind: *kind,
                                urgency: person.request.urgency,
                                profile: person.request.profile.clone(),
                                constraints: person.request.constraints.clone(),
                                units_per_person: 1,
                            };
                            let request = NeedRequest {
                                placement,
                                group,
                                agency,
                                spec,
                            };
                            (*need, request)
                        })
                        .collect();
                    PersonRequest {
                        placement,
                        key: key.clone(),
                        file,
                        needs,
                    }
                })
                .collect(),
        };
        let done = self
            .shell
            .store
            .decide(&decision, meta.occurred_at, &|_| meta.clone(), &always)
            .await;
        // Case references sealed for nothing: a retry's (the first
        // attempt's stand), or a request refused.
        let cases = people
            .iter()
            .zip(&sealed)
            .filter_map(|(person, case)| Some((person.request.placement.as_uuid(), case.as_ref()?)));
        sealing::erase_unwritten_parts::<Placement>(&self.shell.vault, cases, &done).await?;
        let committed = done.map_err(store_status)?;
        let position = committed.parts.iter().map(|p| p.version).max().unwrap_or(0);
        let mut placements = Vec::with_capacity(people.len());
        for person in people {
            let done = committed
                .executed::<Placement>(person.request.placement.as_uuid())
                .expect("every person's file is a step of the decision");
            // The store reads a file recorded before from a copy of the
            // stream that has the write; should one ever lack it, the
            // caller retries.
            let file = done.state.file.as_ref().ok_or_else(|| {
                Status::unavailable("the placement's file is not readable yet; retry with the same key")
            })?;
            if file.agency != agency {
                return Err(Status::internal("a placement id collided with another agency's"));
            }
            placements.push((done.state, done.outcome == Outcome::Applied));
        }
        Ok((placements, position))
    }

    /// What the agency is told of the donation that serves a need: what
    /// was donated, and the hand-off its business registered (opened for
    /// the reader of `trail`), or `given` false when there is none yet.
    async fn donation_handoff(&self, donation: DonationId, trail: &mut Trail) -> Result<Option<pb::Handoff>, Status> {
        let offer = self
            .shell
            .store
            .load::<Donation>(donation.as_uuid())
            .await
            .map_err(store_status)?
            .state
            .offer;
        let named = pb::Handoff {
            site_name: offer.as_ref().map_or("a donation", |o| o.kind.described()).to_owned(),
            resource: offer.as_ref().map_or(0, |o| cv::resource_kind_pb(o.kind)),
            ..Default::default()
        };
        let standing = self
            .shell
            .store
            .load::<Standing>(Owner::Donation(donation).id())
            .await
            .map_err(store_status)?;
        let Some(sealed) = standing.state.text else {
            return Ok(Some(named));
        };
        let about = About {
            kind: ItemKind::DonationHandoff,
            of: donation.as_uuid(),
            owner: offer.as_ref().map_or(OrgId::from_u128(0), |o| o.org),
        };
        Ok(Some(
            match sealing::open(&self.shell.vault, &sealed, &purpose::donation(donation), trail, about).await? {
                Opened::Text(instructions) => pb::Handoff {
                    given: true,
                    instructions,
                    ..named
                },
                Opened::Erased => pb::Handoff {
                    given: true,
                    erased: true,
                    ..named
                },
                Opened::Withheld => pb::Handoff { given: true, ..named },
            },
        ))
    }

    /// The organisation of `site` (whose its hand-offs are), read once.
    async fn site_org(&self, site: ProviderId) -> Result<OrgId, Status> {
        if let Some(org) = self.site_orgs.lock().expect("site orgs").get(&site) {
            return Ok(*org);
        }
        let loaded = self
            .shell
            .store
            .load::<refer_domain::provider::Provider>(site.as_uuid())
            .await
            .map_err(store_status)?;
        let org = loaded.state.profile.map_or(OrgId::from_u128(0), |p| p.org);
        self.site_orgs.lock().expect("site orgs").insert(site, org);
        Ok(org)
    }

    /// A placement as `who` is shown it, its reads recorded before it leaves.
    pub(crate) async fn placement_view(
        &self,
        who: &Principal,
        id: PlacementId,
        known: Option<Placement>,
    ) -> Result<pb::Placement, Status> {
        let mut trail = Trail::new(who);
        let view = self
            .placement_view_with(id, known, None, &mut Donations::new(), &mut trail)
            .await?;
        self.shell.reads.record(trail, self.shell.clock.now()).await?;
        Ok(view)
    }

    /// A placement as its agency sees it: the case reference, each need's
    /// latest status with the hand-off once accepted, notes and erasures,
    /// opened from the sealed store; each item opened goes on `trail`. An
    /// admin (who only forgets placements) is shown statuses and erasures,
    /// nothing sealed. A need whose hand-off was erased (its placement
    /// forgotten, or retention) shows it erased, never opened: also a
    /// hand-off given after `ForgetPlacement`. (`known`: the placement as
    /// just read or written, newer than the files or not in them yet;
    /// `sent`: the case reference the request itself carried, shown back
    /// without opening the stored one, so a request reads nothing sealed;
    /// `donations`: each donation's hand-off, read once per answer.)
    async fn placement_view_with(
        &self,
        id: PlacementId,
        known: Option<Placement>,
        sent: Option<&str>,
        donations: &mut Donations,
        trail: &mut Trail,
    ) -> Result<pb::Placement, Status> {
        let (placement, needs) = {
            let files = self.board.read();
            let placement = known.or_else(|| files.placement(id).cloned()).unwrap_or_default();
            let needs: Vec<Option<NeedView>> = placement
                .file
                .iter()
                .flat_map(|f| &f.needs)
                .map(|(need, _)| files.needs.get(need).cloned())
                .collect();
            (placement, needs)
        };
        let file = placement
            .file
            .as_ref()
            .ok_or_else(|| Status::not_found("no such placement"))?;
        let agency = file.agency;
        let mut view = pb::Placement {
            placement_id: id_pb(id.as_uuid()),
            group_id: file.group.map(|g| id_pb(g.as_uuid())).unwrap_or_default(),
            requested_at_ms: file.requested_at.millis(),
            case_reference_erased: placement.erased.contains_key(&SealedPart::CaseReference),
            ..Default::default()
        };
        if let (Some(_), Some(sent)) = (&file.case_reference, sent) {
            // The caller's own words, bound to this request by its key.
            view.case_reference = sent.to_owned();
        } else if let Some(sealed) = &file.case_reference {
            let about = About {
                kind: ItemKind::CaseReference,
                of: id.as_uuid(),
                owner: agency,
            };
            let opened = sealing::open(&self.shell.vault, sealed, &purpose::case_reference(id), trail, about).await?;
            view.case_reference = opened.text().unwrap_or_default();
        }
        for ((need, kind), seen) in file.needs.iter().zip(needs) {
            let mut update = match &seen {
                Some(seen) => update_pb(seen),
                // Not folded in yet: it shows as requested.
                None => pb::NeedUpdate {
                    placement_id: id_pb(id.as_uuid()),
                    need_id: id_pb(need.as_uuid()),
                    kind: cv::need_kind_pb(*kind),
                    status: need_status_pb(refer_domain::need::NeedStatus::Requested),
                    ..Default::default()
                },
            };
            let placed_with = seen.as_ref().and_then(|s| s.placed_with);
            if placement.erased.contains_key(&SealedPart::Handoff(*need)) {
                // Erased for good, and whatever comes later with it.
                if update.handoff.is_some() || matches!(placed_with, Some(Target::Donation(_))) {
                    update.handoff = Some(pb::Handoff {
                        given: true,
                        erased: true,
                        ..Default::default()
                    });
                }
                view.needs.push(update);
                continue;
            }
            if let Some(Target::Donation(donation)) = placed_with {
                // A donation is accepted by the matcher: its hand-off is the
                // business's standing one.
                update.handoff = match donations.get(&donation) {
                    Some(known) => known.clone(),
                    None => {
                        let read = self.donation_handoff(donation, trail).await?;
                        donations.insert(donation, read.clone());
                        read
                    }
                };
            }
            if let (Some(handoff), Some(sealed)) = (update.handoff.as_mut(), seen.and_then(|s| s.handoff)) {
                let owner = match placed_with {
                    Some(Target::Provider(site)) => self.site_org(site).await?,
                    _ => OrgId::from_u128(0),
                };
                match sealing::open_handoff(&self.shell.vault, *need, owner, &sealed, trail).await? {
                    Opened::Text(given) => {
                        handoff.site_name = given.site_name;
                        handoff.instructions = given.instructions;
                    }
                    Opened::Erased => handoff.erased = true,
                    Opened::Withheld => {}
                }
            }
            view.needs.push(update);
        }
        for (need, (consent, note)) in &placement.notes {
            let about = About {
                kind: ItemKind::Note,
                of: need.as_uuid(),
                owner: agency,
            };
            if let Opened::Text(text) =
                sealing::open(&self.shell.vault, note, &purpose::note(*need), trail, about).await?
            {
                view.notes.push(pb::Note {
                    need_id: id_pb(need.as_uuid()),
                    consent: Some(crate::views::consent_pb(consent)),
                    text,
                });
            }
        }
        view.erasures = placement
            .erased
            .iter()
            .map(|(part, reason)| crate::views::erasure_pb(*part, *reason))
            .collect();
        Ok(view)
    }
}

pub async fn request_one(
    service: &IntakeService,
    request: Request<pb::RequestPlacementRequest>,
) -> Result<Response<pb::Placement>, Status> {
    let r = request.get_ref();
    let call = service.shell.command(&request, &r.idempotency_key)?;
    let who = &call.who;
    let person = person(r.person.as_ref(), "person", who.org, call.key(), 0)?;
    let meta = call.bind().await?;
    let placement = person.request.placement;
    let (mut recorded, position) = service
        .request_people(&meta, who.org, std::slice::from_ref(&person), None)
        .await?;
    let (recorded, fresh) = recorded.pop().expect("one person, one placement");
    service.board.read_your_write(position).await;
    let mut trail = Trail::new(who);
    let view = service
        .placement_view_with(
            placement,
            Some(recorded),
            fresh.then_some(person.case_reference.as_str()),
            &mut Donations::new(),
            &mut trail,
        )
        .await?;
    service.shell.reads.record(trail, service.shell.clock.now()).await?;
    Ok(Response::new(view))
}

pub async fn request_group(
    service: &IntakeService,
    request: Request<pb::RequestGroupRequest>,
) -> Result<Response<pb::Group>, Status> {
    let r = request.get_ref();
    let call = service.shell.command(&request, &r.idempotency_key)?;
    let (who, key) = (&call.who, call.key());
    if r.people.is_empty() || r.people.len() > MAX_GROUP_SIZE {
        return Err(invalid("people", format!("must hold 1 to {MAX_GROUP_SIZE} people")));
    }
    let cohesion = cohesion(r.cohesion, "cohesion")?;
    let people: Vec<Person> = r
        .people
        .iter()
        .enumerate()
        .map(|(i, p)| person(Some(p), &format!("people[{i}]"), who.org, key, i))
        .collect::<Result<_, _>>()?;
    PlacementRequest::one_origin(people.iter().map(|p| &p.request), "people").map_err(|e| cv::domain_invalid("", e))?;
    let meta = call.bind().await?;
    let group = group_id(who.org, key);
    let membership = GroupMembership {
        group,
        cohesion,
        people: people.len() as u16,
    };
    let (files, position) = service
        .request_people(&meta, who.org, &people, Some(membership))
        .await?;
    service.board.read_your_write(position).await;
    let mut views = Vec::with_capacity(people.len());
    let (mut donations, mut trail) = (Donations::new(), Trail::new(who));
    for (person, (recorded, fresh)) in people.iter().zip(files) {
        let placement = person.request.placement;
        views.push(
            service
                .placement_view_with(
                    placement,
                    Some(recorded),
                    fresh.then_some(person.case_reference.as_str()),
                    &mut donations,
                    &mut trail,
                )
                .await?,
        );
    }
    service.shell.reads.record(trail, service.shell.clock.now()).await?;
    Ok(Response::new(pb::Group {
        group_id: id_pb(group.as_uuid()),
        cohesion: cohesion_pb(cohesion),
        people: views,
    }))
}

pub async fn get(
    service: &IntakeService,
    request: Request<pb::GetPlacementRequest>,
) -> Result<Response<pb::Placement>, Status> {
    let who = caller(&request)?;
    let (id, placement) = service.owned_placement(&who, &request.get_ref().placement_id).await?;
    Ok(Response::new(service.placement_view(&who, id, Some(placement)).await?))
}

pub async fn list(
    service: &IntakeService,
    request: Request<pb::ListPlacementsRequest>,
) -> Result<Response<pb::ListPlacementsResponse>, Status> {
    let who = caller(&request)?;
    let r = request.get_ref();
    let size = page::size(r.page_size)?;
    let after: Option<(i64, PlacementId)> = page::after(&r.page_token)?;
    let found: Vec<(i64, PlacementId)> = {
        let files = service.board.read();
        files
            .by_agency
            .get(&who.org)
            .into_iter()
            .flat_map(|listed| listed.iter().rev())
            .map(|(at, id)| (at.millis(), *id))
            .filter(|entry| after.is_none_or(|after| *entry < after))
            .take(size + 1)
            .collect()
    };
    let (found, next_page_token) = page::cut(found, size, |entry| *entry);
    let (placements, trail) = refer_service::reads::open_page(&who, found, |(_, id), mut trail| async move {
        let view = service
            .placement_view_with(id, None, None, &mut Donations::new(), &mut trail)
            .await?;
        Ok((view, trail))
    })
    .await?;
    // One record for every sealed item the page opened, before it leaves.
    service.shell.reads.record(trail, service.shell.clock.now()).await?;
    Ok(Response::new(pb::ListPlacementsResponse {
        placements,
        next_page_token,
    }))
}

pub async fn watch(
    service: &IntakeService,
    request: Request<pb::WatchPlacementRequest>,
) -> Result<Response<WatchStream<pb::NeedUpdate>>, Status> {
    let who = caller(&request)?;
    let r = request.get_ref();
    let (placement, file) = service.owned_placement(&who, &r.placement_id).await?;
    let needs: Vec<_> = file.file.iter().flat_map(|f| f.needs.iter().map(|(n, _)| *n)).collect();
    let current = move |files: &Files, after: u64| -> Vec<NeedView> {
        let mut views: Vec<NeedView> = needs
            .iter()
            .filter_map(|need| files.needs.get(need))
            .filter(|v| v.position > after)
            .cloned()
            .collect();
        views.sort_by_key(|v| (v.position, v.need));
        views
    };
    Ok(Response::new(service.board.watch(
        r.after_position,
        current,
        move |view: &NeedView| view.placement == placement,
        update_pb,
    )))
}
