//! Placements: request one person's or a group's, read, list, watch.

use crate::board::{Files, NeedView};
use crate::views::{cohesion, cohesion_pb, group_id, need_status_pb, person, update_pb, Person};
use crate::IntakeService;
use refer_domain::donation::Donation;
use refer_domain::ids::{DonationId, GroupId, OrgId, PlacementId, ProviderId};
use refer_domain::need::{GroupMembership, Need, NeedCommand, NeedRequest, Target};
use refer_domain::placement::{Placement, PlacementCommand, PlacementFile, SealedPart};
use refer_domain::request::{PlacementRequest, MAX_GROUP_SIZE};
use refer_domain::standing::{Owner, Standing};
use refer_domain::{CommandMeta, IdempotencyKey};
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
    /// Records the person's file (the case reference sealed) under the
    /// request's key. A retry, even after intake lost its data, finds the
    /// file recorded (the ids come from the key) and gets it back: its needs,
    /// not the retry's, are the ones requested. `true`: recorded now, from
    /// this very request.
    async fn record(
        &self,
        meta: &CommandMeta,
        agency: OrgId,
        person: &Person,
        group: Option<GroupId>,
    ) -> Result<(Placement, bool), Status> {
        let placement = person.request.placement;
        let case_reference = match person.case_reference.as_str() {
            "" => None,
            case => Some(sealing::seal(&self.vault, "case", case, &purpose::case_reference(placement)).await?),
        };
        let file = PlacementFile {
            agency,
            group,
            needs: person.request.needs.clone(),
            requested_at: meta.occurred_at,
            case_reference: case_reference.clone(),
        };
        let done = self
            .store
            .execute::<Placement>(placement.as_uuid(), &PlacementCommand::Record(file), meta, None)
            .await;
        if let (true, Some(case)) = (sealing::unwritten(&done), &case_reference) {
            // A retry: the first attempt's sealed reference stands.
            sealing::erase(&self.vault, [case.item.as_str()]).await?;
        }
        let done = done.map_err(store_status)?;
        // The store reads the file back from a copy of the stream that has
        // the write; should one ever lack it, the caller retries.
        let file =
            done.state.file.as_ref().ok_or_else(|| {
                Status::unavailable("the placement's file is not readable yet; retry with the same key")
            })?;
        if file.agency != agency {
            return Err(Status::internal("a placement id collided with another agency's"));
        }
        let fresh = done.outcome == refer_eventstore::Outcome::Applied;
        Ok((done.state, fresh))
    }

    /// Appends the `Requested` event of every need of the file (a retry
    /// finds them applied already: the key is per need). Returns the
    /// position of the last.
    async fn request_needs(
        &self,
        meta: &CommandMeta,
        placement: PlacementId,
        file: &PlacementFile,
        person: &Person,
        group: Option<GroupMembership>,
    ) -> Result<u64, Status> {
        let meta = CommandMeta {
            idempotency_key: Some(IdempotencyKey::new("request").expect("valid")),
            ..meta.clone()
        };
        // A person's needs are aggregates of their own: appended together,
        // they share the server's fsyncs instead of waiting one by one.
        let appends = file.needs.iter().map(|(need, kind)| {
            let request = NeedRequest {
                placement,
                group,
                agency: file.agency,
                spec: refer_domain::request::NeedSpec {
                    kind: *kind,
                    urgency: person.request.urgency,
                    profile: person.request.profile.clone(),
                    constraints: person.request.constraints.clone(),
                    units_per_person: 1,
                },
            };
            let meta = &meta;
            async move {
                self.store
                    .execute::<Need>(need.as_uuid(), &NeedCommand::Request(request), meta, None)
                    .await
                    .map_err(store_status)
            }
        });
        let done = futures::future::try_join_all(appends).await?;
        Ok(done.iter().map(|d| d.version).max().unwrap_or(0))
    }

    /// The hand-off a business registered for `donation`, if any, opened
    /// for the reader of `trail`.
    async fn donation_handoff(&self, donation: DonationId, trail: &mut Trail) -> Result<Option<pb::Handoff>, Status> {
        let standing = self
            .store
            .load::<Standing>(Owner::Donation(donation).id())
            .await
            .map_err(store_status)?;
        let Some(sealed) = standing.state.text else {
            return Ok(None);
        };
        let offer = self
            .store
            .load::<Donation>(donation.as_uuid())
            .await
            .map_err(store_status)?
            .state
            .offer;
        let site_name = offer.as_ref().map_or("a donation", |o| o.kind.described());
        let about = About {
            kind: ItemKind::DonationHandoff,
            of: donation.as_uuid(),
            owner: offer.as_ref().map_or(OrgId::from_u128(0), |o| o.org),
        };
        Ok(Some(
            match sealing::open(&self.vault, &sealed, &purpose::donation(donation), trail, about).await? {
                Opened::Text(instructions) => pb::Handoff {
                    given: true,
                    site_name: site_name.to_owned(),
                    instructions,
                    erased: false,
                },
                Opened::Erased => pb::Handoff {
                    given: true,
                    erased: true,
                    ..Default::default()
                },
                Opened::Withheld => pb::Handoff {
                    given: true,
                    ..Default::default()
                },
            },
        ))
    }

    /// The organisation of `site` (whose its hand-offs are), read once.
    async fn site_org(&self, site: ProviderId) -> Result<OrgId, Status> {
        if let Some(org) = self.site_orgs.lock().expect("site orgs").get(&site) {
            return Ok(*org);
        }
        let loaded = self
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
        self.reads.record(trail, self.clock.now()).await?;
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
            let opened = sealing::open(&self.vault, sealed, &purpose::case_reference(id), trail, about).await?;
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
                match sealing::open_handoff(&self.vault, *need, owner, &sealed, trail).await? {
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
            if let Opened::Text(text) = sealing::open(&self.vault, note, &purpose::note(*need), trail, about).await? {
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
    let who = caller(&request)?;
    let r = request.get_ref();
    let key = cv::idempotency_key(&r.idempotency_key)?;
    let person = person(r.person.as_ref(), "person", who.org, &key, 0)?;
    service.keys.bind(&who, &key, r).await?;
    let meta = service.meta(&request, key.clone());
    let (recorded, fresh) = service.record(&meta, who.org, &person, None).await?;
    let placement = person.request.placement;
    let file = recorded.file.as_ref().expect("recorded");
    let position = service.request_needs(&meta, placement, file, &person, None).await?;
    service.board.read_your_write(position).await;
    let mut trail = Trail::new(&who);
    let view = service
        .placement_view_with(
            placement,
            Some(recorded),
            fresh.then_some(person.case_reference.as_str()),
            &mut Donations::new(),
            &mut trail,
        )
        .await?;
    service.reads.record(trail, service.clock.now()).await?;
    Ok(Response::new(view))
}

pub async fn request_group(
    service: &IntakeService,
    request: Request<pb::RequestGroupRequest>,
) -> Result<Response<pb::Group>, Status> {
    let who = caller(&request)?;
    let r = request.get_ref();
    let key = cv::idempotency_key(&r.idempotency_key)?;
    if r.people.is_empty() || r.people.len() > MAX_GROUP_SIZE {
        return Err(invalid("people", format!("must hold 1 to {MAX_GROUP_SIZE} people")));
    }
    let cohesion = cohesion(r.cohesion, "cohesion")?;
    let people: Vec<Person> = r
        .people
        .iter()
        .enumerate()
        .map(|(i, p)| person(Some(p), &format!("people[{i}]"), who.org, &key, i))
        .collect::<Result<_, _>>()?;
    PlacementRequest::one_origin(people.iter().map(|p| &p.request), "people").map_err(|e| cv::domain_invalid("", e))?;
    service.keys.bind(&who, &key, r).await?;
    let meta = service.meta(&request, key.clone());
    let group = group_id(who.org, &key);
    let membership = GroupMembership {
        group,
        cohesion,
        people: people.len() as u16,
    };
    let mut files = Vec::with_capacity(people.len());
    let mut position = 0;
    for person in &people {
        let (recorded, fresh) = service.record(&meta, who.org, person, Some(group)).await?;
        let file = recorded.file.as_ref().expect("recorded");
        let last = service
            .request_needs(&meta, person.request.placement, file, person, Some(membership))
            .await?;
        position = position.max(last);
        files.push((recorded, fresh));
    }
    service.board.read_your_write(position).await;
    let mut views = Vec::with_capacity(people.len());
    let (mut donations, mut trail) = (Donations::new(), Trail::new(&who));
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
    service.reads.record(trail, service.clock.now()).await?;
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
    service.reads.record(trail, service.clock.now()).await?;
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
