//! What the intake service shows on the wire, and what it reads from it.

use crate::board::NeedView;
use crate::MAX_CASE_REFERENCE;
use refer_domain::ids::{GroupId, NeedId, OrgId, PlacementId};
use refer_domain::kinds::NeedKind;
use refer_domain::need::NeedStatus;
use refer_domain::placement::{Consent, ErasureReason, SealedPart};
use refer_domain::request::{Cohesion, PlacementRequest, MAX_NEEDS_PER_PERSON};
use refer_domain::IdempotencyKey;
use refer_proto::intake::v1 as pb;
use refer_service::convert::{self as cv, id_pb};
use refer_service::invalid;
use tonic::Status;
use uuid::Uuid;

refer_service::enum_map!(need_status, need_status_pb, pb::NeedStatus, NeedStatus, {
    Requested <=> Requested, Proposed <=> Proposed, Accepted <=> Accepted, Declined <=> Declined,
    Expired <=> Expired, Waitlisted <=> Waitlisted, Cancelled <=> Cancelled, Fulfilled <=> Fulfilled,
} shown as { New => Requested });
refer_service::enum_map!(cohesion, cohesion_pb, pb::Cohesion, Cohesion, {
    Unspecified <=> NoPreference, KeepTogether <=> KeepTogether, KeepApart <=> KeepApart,
});

pub fn update_pb(view: &NeedView) -> pb::NeedUpdate {
    let waiting = view.status == NeedStatus::Waitlisted;
    pb::NeedUpdate {
        placement_id: id_pb(view.placement.as_uuid()),
        need_id: id_pb(view.need.as_uuid()),
        kind: cv::need_kind_pb(view.kind),
        status: need_status_pb(view.status),
        placed_with: view.placed_with.as_ref().map(cv::target_pb),
        position: view.position,
        deadline_ms: view.deadline.map_or(0, |t| t.millis()),
        waiting_for: waiting.then(|| pb::WaitingFor {
            service: view.kind.provider_service().map_or(0, cv::service_kind_pb),
            resources: view.kind.resources().map(cv::resource_kind_pb).collect(),
            region: view.region.as_str().to_owned(),
            reason: match view.held_until {
                Some(_) => pb::WaitReason::HeldForUrgent,
                None => pb::WaitReason::NoCapacity,
            } as i32,
            held_until_ms: view.held_until.map_or(0, |t| t.millis()),
        }),
        timeline: view
            .timeline
            .iter()
            .map(|step| pb::Step {
                at_ms: step.at.millis(),
                status: need_status_pb(step.status),
                decline_reason: step.declined.map_or(0, cv::decline_reason_pb),
            })
            .collect(),
        // Opened by the placement's views; a watch says only that it came.
        handoff: view.handoff.as_ref().map(|_| pb::Handoff {
            given: true,
            ..Default::default()
        }),
    }
}

pub fn consent_pb(consent: &Consent) -> pb::Consent {
    pb::Consent {
        shares: consent.shares.clone(),
        until_ms: consent.until.millis(),
        given_at_ms: consent.given_at.millis(),
    }
}

/// An erasure as the agency sees it: what kind of thing and why, never what.
pub fn erasure_pb(part: SealedPart, reason: ErasureReason) -> pb::Erasure {
    let (part, need) = match part {
        SealedPart::CaseReference => ("case_reference", None),
        SealedPart::Note(need) => ("note", Some(need)),
        SealedPart::Handoff(need) => ("handoff", Some(need)),
    };
    pb::Erasure {
        part: part.into(),
        need_id: need.map(|n| id_pb(n.as_uuid())).unwrap_or_default(),
        reason: match reason {
            ErasureReason::Requested => "requested",
            ErasureReason::Retention => "retention",
            ErasureReason::ConsentRevoked => "consent_revoked",
            ErasureReason::ConsentExpired => "consent_expired",
        }
        .into(),
    }
}

/// A validated person from the wire, before ids are chosen.
pub struct Person {
    pub case_reference: String,
    pub request: PlacementRequest,
}

/// Where placement, need and group ids come from: the agency and its
/// idempotency key (UUIDv5), so a retried request names the same placement
/// and needs even after intake lost its records, and the stream's own
/// idempotency keeps them from being requested twice.
const IDS: Uuid = Uuid::from_u128(0x5ef0_0000_1d5a_4c1e_9a3b_7e7a_11ce_0001);

pub fn placement_id(agency: OrgId, key: &IdempotencyKey, person: usize) -> PlacementId {
    PlacementId::from_uuid(Uuid::new_v5(
        &IDS,
        format!("placement/{agency}/{}/{person}", key.as_str()).as_bytes(),
    ))
}

pub fn group_id(agency: OrgId, key: &IdempotencyKey) -> GroupId {
    GroupId::from_uuid(Uuid::new_v5(
        &IDS,
        format!("group/{agency}/{}", key.as_str()).as_bytes(),
    ))
}

pub fn need_id(placement: PlacementId, kind: NeedKind) -> NeedId {
    NeedId::from_uuid(Uuid::new_v5(&IDS, format!("need/{placement}/{kind:?}").as_bytes()))
}

/// Person `index` of a request under `key` from `agency`, validated.
pub fn person(
    p: Option<&pb::PersonRequest>,
    field: &str,
    agency: OrgId,
    key: &IdempotencyKey,
    index: usize,
) -> Result<Person, Status> {
    let p = p.ok_or_else(|| invalid(field, "is required"))?;
    if p.case_reference.chars().count() > MAX_CASE_REFERENCE || p.case_reference.chars().any(char::is_control) {
        return Err(invalid(
            &format!("{field}.case_reference"),
            format!("must be at most {MAX_CASE_REFERENCE} printable characters"),
        ));
    }
    let placement = placement_id(agency, key, index);
    let needs_field = format!("{field}.needs");
    cv::at_most(p.needs.len(), MAX_NEEDS_PER_PERSON, &needs_field)?;
    let needs: Vec<(NeedId, NeedKind)> = p
        .needs
        .iter()
        .map(|k| cv::need_kind(*k, &needs_field))
        .collect::<Result<Vec<NeedKind>, Status>>()?
        .into_iter()
        .map(|kind| (need_id(placement, kind), kind))
        .collect();
    let request = PlacementRequest {
        placement,
        profile: cv::profile(p.profile.as_ref(), &format!("{field}.profile"))?,
        constraints: cv::constraints(p.constraints.as_ref(), &format!("{field}.constraints"))?,
        urgency: cv::urgency(p.urgency, &format!("{field}.urgency"))?,
        needs,
    };
    request.validate(field).map_err(|e| cv::domain_invalid("", e))?;
    Ok(Person {
        case_reference: p.case_reference.clone(),
        request,
    })
}
