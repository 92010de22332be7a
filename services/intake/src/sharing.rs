//! What intake shares and erases: the agency's on-call contact, notes under
//! consent, and erasure (on demand, when a consent ends, after retention).
//! Erasure deletes the data keys first, then records on the placement that
//! it happened (what kind of thing, why), never what was erased.

use crate::IntakeService;
use refer_domain::ids::{NeedId, PlacementId};
use refer_domain::placement::{check_consent, Consent, ErasureReason, Placement, PlacementCommand, SealedPart};
use refer_domain::standing::Owner;
use refer_domain::CommandMeta;
use refer_proto::intake::v1 as pb;
use refer_service::convert::{self as cv, id};
use refer_service::reads::{About, ItemKind};
use refer_service::sealing;
use refer_service::sealing::purpose;
use refer_service::{caller, invalid, store_status};
use std::collections::BTreeMap;
use std::time::Duration;
use tonic::{Request, Response, Status};

pub async fn set_contact(
    service: &IntakeService,
    request: Request<pb::SetHandoffContactRequest>,
) -> Result<Response<pb::HandoffContact>, Status> {
    let r = request.get_ref();
    let call = service.shell.command(&request, &r.idempotency_key)?;
    let contact = sealing::text(&r.contact, "contact")?;
    let meta = call.bind().await?;
    let agency = call.who.org;
    let purpose = purpose::agency_contact(agency);
    let owner = Owner::Agency(agency);
    let contact = sealing::set_standing(
        &service.shell,
        &call.who,
        owner,
        &contact,
        &purpose,
        &meta,
        contact_read(agency),
    )
    .await?;
    Ok(Response::new(pb::HandoffContact { contact }))
}

pub async fn get_contact(
    service: &IntakeService,
    request: Request<pb::GetHandoffContactRequest>,
) -> Result<Response<pb::HandoffContact>, Status> {
    let who = caller(&request)?;
    let (owner, purpose) = (Owner::Agency(who.org), purpose::agency_contact(who.org));
    let contact = sealing::open_standing(&service.shell, &who, owner, &purpose, contact_read(who.org)).await?;
    Ok(Response::new(pb::HandoffContact { contact }))
}

/// A read of `agency`'s contact, as the read log records it.
fn contact_read(agency: refer_domain::ids::OrgId) -> About {
    About {
        kind: ItemKind::AgencyContact,
        of: agency.as_uuid(),
        owner: agency,
    }
}

/// The need `need` of the caller's placement `placement`.
async fn owned_need(
    service: &IntakeService,
    who: &refer_service::Principal,
    placement: &str,
    need: &str,
) -> Result<(PlacementId, Placement, NeedId), Status> {
    let (placement, found) = service.owned_placement(who, placement).await?;
    let need = NeedId::from_uuid(id(need, "need_id")?);
    let file = found
        .file
        .as_ref()
        .ok_or_else(|| tonic::Status::not_found("no such placement"))?;
    if !file.needs.iter().any(|(n, _)| *n == need) {
        return Err(invalid("need_id", "is not a need of this placement"));
    }
    Ok((placement, found, need))
}

pub async fn share_note(
    service: &IntakeService,
    request: Request<pb::ShareNoteRequest>,
) -> Result<Response<pb::Placement>, Status> {
    let r = request.get_ref();
    let call = service.shell.command(&request, &r.idempotency_key)?;
    let who = &call.who;
    let (placement, _, need) = owned_need(service, who, &r.placement_id, &r.need_id).await?;
    let note = sealing::text(&r.note, "note")?;
    let consent = r.consent.as_ref().ok_or_else(|| {
        Status::failed_precondition(
            "consent: nothing beyond the profile is shared without the person's recorded consent \
             (what is shared, until when)",
        )
    })?;
    let consent = Consent {
        shares: consent.shares.clone(),
        given_at: service.shell.clock.now(),
        until: cv::timestamp(consent.until_ms, "consent.until_ms")?,
    };
    // Refused before the key is bound: corrected, it may be sent again
    // under the same key. A retry of a note shared before is answered as
    // it stands, though its consent may have ended since.
    if let Err(refused) = check_consent(&consent, consent.given_at, service.longest_consent_ms) {
        if !call.is_retry().await? {
            return Err(cv::domain_invalid("", refused));
        }
    }
    let meta = call.bind().await?;
    let sealed = sealing::seal(&service.shell.vault, "note", &note, &purpose::note(need)).await?;
    let command = PlacementCommand::ShareNote {
        need,
        consent,
        note: sealed.clone(),
        longest_ms: service.longest_consent_ms,
    };
    let done = service
        .shell
        .store
        .execute::<Placement>(placement.as_uuid(), &command, &meta, None)
        .await;
    sealing::erase_if_unwritten(&service.shell.vault, Some(&sealed), &done).await?;
    let done = done.map_err(store_status)?;
    Ok(Response::new(
        service.placement_view(who, placement, Some(done.state)).await?,
    ))
}

pub async fn revoke_note(
    service: &IntakeService,
    request: Request<pb::RevokeNoteRequest>,
) -> Result<Response<pb::Placement>, Status> {
    let r = request.get_ref();
    let call = service.shell.command(&request, &r.idempotency_key)?;
    let (placement, _, need) = owned_need(service, &call.who, &r.placement_id, &r.need_id).await?;
    let meta = call.bind().await?;
    let state = service
        .erase(
            placement,
            &[SealedPart::Note(need)],
            ErasureReason::ConsentRevoked,
            &meta,
        )
        .await?;
    Ok(Response::new(
        service.placement_view(&call.who, placement, Some(state)).await?,
    ))
}

/// By the placement's agency, or an admin (who acts for every agency).
pub async fn forget(
    service: &IntakeService,
    request: Request<pb::ForgetPlacementRequest>,
) -> Result<Response<pb::Placement>, Status> {
    let r = request.get_ref();
    let call = service.shell.command(&request, &r.idempotency_key)?;
    let (placement, found) = service.owned_placement(&call.who, &r.placement_id).await?;
    let meta = call.bind().await?;
    let file = found
        .file
        .as_ref()
        .ok_or_else(|| tonic::Status::not_found("no such placement"))?;
    let mut parts = vec![SealedPart::CaseReference];
    for (need, _) in &file.needs {
        parts.push(SealedPart::Note(*need));
        parts.push(SealedPart::Handoff(*need));
    }
    let state = service
        .erase(placement, &parts, ErasureReason::Requested, &meta)
        .await?;
    Ok(Response::new(
        service.placement_view(&call.who, placement, Some(state)).await?,
    ))
}

impl IntakeService {
    /// Erases `parts` of `placement` for good: their data keys first (so a
    /// crash in between leaves them unreadable, and the next attempt records
    /// it), then the `Erased` event. Parts already erased are skipped.
    async fn erase(
        &self,
        placement: PlacementId,
        parts: &[SealedPart],
        reason: ErasureReason,
        meta: &CommandMeta,
    ) -> Result<Placement, Status> {
        let state = self
            .shell
            .store
            .load::<Placement>(placement.as_uuid())
            .await
            .map_err(store_status)?
            .state;
        // From the needs' own histories, not the files, which may lag.
        let mut handoffs: BTreeMap<NeedId, String> = BTreeMap::new();
        for part in parts {
            if let SealedPart::Handoff(need) = part {
                let subject = refer_domain::AggregateRef {
                    kind: refer_domain::AggregateKind::Need,
                    id: need.as_uuid(),
                };
                let history = self.shell.store.history(&subject, 0).await.map_err(store_status)?;
                let given = history.iter().flat_map(|c| &c.events).find_map(|e| match &e.event {
                    refer_domain::Event::Need(refer_domain::need::NeedEvent::HandedOff(h)) => Some(h.item.clone()),
                    _ => None,
                });
                handoffs.extend(given.map(|item| (*need, item)));
            }
        }
        let mut items: Vec<String> = Vec::new();
        let mut erased = Vec::new();
        for part in parts {
            let item = match part {
                SealedPart::CaseReference => state
                    .file
                    .as_ref()
                    .and_then(|f| f.case_reference.as_ref())
                    .map(|s| s.item.clone()),
                SealedPart::Note(need) => state.notes.get(need).map(|(_, s)| s.item.clone()),
                SealedPart::Handoff(need) => handoffs.get(need).cloned(),
            };
            match item {
                Some(item) => {
                    items.push(item);
                    erased.push(*part);
                }
                // Forgotten: a hand-off not given yet is erased too, so one
                // given later is never shown (and its key is erased by the
                // sweep, `erase_late_handoffs`).
                None if reason == ErasureReason::Requested && matches!(part, SealedPart::Handoff(_)) => {
                    erased.push(*part)
                }
                // (No item: never given, or erased already.)
                None => {}
            }
        }
        sealing::erase(&self.shell.vault, items.iter().map(String::as_str)).await?;
        if erased.is_empty() {
            return Ok(state);
        }
        let command = PlacementCommand::Erase { parts: erased, reason };
        let done = self
            .shell
            .store
            .execute::<Placement>(placement.as_uuid(), &command, meta, None)
            .await
            .map_err(store_status)?;
        tracing::info!(%placement, ?reason, "sealed parts erased");
        Ok(done.state)
    }

    /// Erases whatever is due now in every placement (consents ended,
    /// retention passed); returns how many placements it touched.
    pub(crate) async fn sweep_once(&self) -> Result<usize, Status> {
        let now = self.shell.clock.now();
        let due: Vec<(PlacementId, ErasureReason, Vec<SealedPart>)> = {
            let files = self.board.read();
            let mut due = Vec::new();
            for (id, placement) in &files.placements {
                let mut by_reason: BTreeMap<ErasureReason, Vec<SealedPart>> = BTreeMap::new();
                for (part, reason) in placement.due(&files.clocks(placement), now, self.retention_ms) {
                    by_reason.entry(reason).or_default().push(part);
                }
                due.extend(by_reason.into_iter().map(|(reason, parts)| (*id, reason, parts)));
            }
            due
        };
        self.erase_late_handoffs().await?;
        let touched = due.len();
        for (placement, reason, parts) in due {
            // No key needed: an erasure records only parts still there, so
            // sweepers racing on one placement record it once.
            let meta = CommandMeta {
                occurred_at: now,
                correlation_id: refer_domain::ids::CorrelationId::from_uuid(uuid::Uuid::new_v4()),
                causation_id: None,
                idempotency_key: None,
            };
            self.erase(placement, &parts, reason, &meta).await?;
        }
        Ok(touched)
    }
}

impl IntakeService {
    /// Erases the key of every hand-off given for a need of a forgotten
    /// placement (`ForgetPlacement` recorded its hand-off erased, and a
    /// provider accepted afterwards): it is never shown (the views do not
    /// open an erased part), and here its key goes too. Each once per
    /// process (erasing again is harmless).
    async fn erase_late_handoffs(&self) -> Result<(), Status> {
        let late: Vec<String> = {
            let files = self.board.read();
            let done = self.erased_late.lock().expect("erased late");
            files
                .placements
                .values()
                .flat_map(|p| p.erased.iter())
                .filter_map(|(part, reason)| match (part, reason) {
                    (SealedPart::Handoff(need), ErasureReason::Requested) => files.needs.get(need),
                    _ => None,
                })
                .filter_map(|view| view.handoff.as_ref())
                .map(|sealed| sealed.item.clone())
                .filter(|item| !done.contains(item))
                .collect()
        };
        for item in late {
            sealing::erase(&self.shell.vault, [item.as_str()]).await?;
            tracing::info!("a hand-off given after its placement was forgotten was erased");
            self.erased_late.lock().expect("erased late").insert(item);
        }
        Ok(())
    }
}

/// Every `tick`, erases what is due; an error is logged and retried.
pub async fn sweep(service: IntakeService, tick: Duration, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = shutdown.changed() => return,
        }
        if let Err(err) = service.sweep_once().await {
            tracing::warn!(error = %err.message(), "erasure sweep paused; retrying");
        }
    }
}
