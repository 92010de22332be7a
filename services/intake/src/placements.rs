//! Placements: request one person's or a group's, read, list, watch.

use crate::board::NeedView;
use crate::records::{Claim, GroupRecord, PlacementRecord};
use crate::views::{cohesion, cohesion_pb, group_id, person, placement_pb, update_pb, Person};
use crate::IntakeService;
use refer_domain::ids::{GroupId, OrgId};
use refer_domain::need::{GroupMembership, Need, NeedCommand, NeedRequest};
use refer_domain::request::{PlacementRequest, MAX_GROUP_SIZE};
use refer_domain::{CommandMeta, IdempotencyKey};
use refer_proto::intake::v1 as pb;
use refer_service::convert::{self as cv, id_pb};
use refer_service::watch::WatchStream;
use refer_service::{caller, invalid, page, store_status};
use tonic::{Request, Response, Status};

/// What a need request needs besides its ids.
struct NeedRequestParts {
    request: PlacementRequest,
    group: Option<GroupMembership>,
}

fn record_of(agency: OrgId, person: &Person, group: Option<GroupId>, at: refer_domain::Timestamp) -> PlacementRecord {
    PlacementRecord {
        placement: person.request.placement,
        agency,
        case_reference: person.case_reference.clone(),
        group,
        needs: person.request.needs.clone(),
        requested_at: at,
    }
}

/// Rebuilds the request parts for a stored record (on a retry, the stored
/// ids win over the ones drawn for this attempt).
fn parts_for(record: &PlacementRecord, fresh: &Person, group: Option<GroupMembership>) -> NeedRequestParts {
    let mut request = fresh.request.clone();
    request.placement = record.placement;
    request.needs = record.needs.clone();
    NeedRequestParts { request, group }
}

fn records_error(e: sled::Error) -> Status {
    Status::unavailable(format!("intake records: {e}"))
}

impl IntakeService {
    /// Appends the `Requested` event of every need of `record` (a retry finds
    /// them applied already: the key is per need).
    async fn request_needs(
        &self,
        meta: &CommandMeta,
        record: &PlacementRecord,
        person: &NeedRequestParts,
    ) -> Result<(), Status> {
        let meta = CommandMeta {
            idempotency_key: Some(IdempotencyKey::new("request").expect("valid")),
            ..meta.clone()
        };
        // A person's needs are aggregates of their own: appended together,
        // they share the server's fsyncs instead of waiting one by one.
        let appends = record.needs.iter().map(|(need, kind)| {
            let request = NeedRequest {
                placement: record.placement,
                group: person.group,
                agency: record.agency,
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
        futures::future::try_join_all(appends).await?;
        Ok(())
    }

    fn placement_view(&self, record: &PlacementRecord) -> pb::Placement {
        placement_pb(record, &self.board.read().needs)
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
    service.keys.bind(&who, &key, r)?;
    let meta = service.meta(&request, key.clone());
    let record = record_of(who.org, &person, None, meta.occurred_at);
    let record = match service
        .records
        .claim(who.org, &key, Claim::Placement(record))
        .await
        .map_err(records_error)?
    {
        Claim::Placement(record) => record,
        Claim::Group(..) => return Err(invalid("idempotency_key", "was used for a group request")),
    };
    service
        .request_needs(&meta, &record, &parts_for(&record, &person, None))
        .await?;
    Ok(Response::new(service.placement_view(&record)))
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
    service.keys.bind(&who, &key, r)?;
    let meta = service.meta(&request, key.clone());
    let group = group_id(who.org, &key);
    let records: Vec<PlacementRecord> = people
        .iter()
        .map(|p| record_of(who.org, p, Some(group), meta.occurred_at))
        .collect();
    let claim = GroupRecord {
        group,
        agency: who.org,
        cohesion,
        placements: records.iter().map(|r| r.placement).collect(),
    };
    let (claim, records) = match service
        .records
        .claim(who.org, &key, Claim::Group(claim, records))
        .await
        .map_err(records_error)?
    {
        Claim::Group(group, records) => (group, records),
        Claim::Placement(_) => return Err(invalid("idempotency_key", "was used for a single placement")),
    };
    let membership = GroupMembership {
        group: claim.group,
        cohesion: claim.cohesion,
        people: records.len() as u16,
    };
    for (record, fresh) in records.iter().zip(&people) {
        service
            .request_needs(&meta, record, &parts_for(record, fresh, Some(membership)))
            .await?;
    }
    Ok(Response::new(pb::Group {
        group_id: id_pb(claim.group.as_uuid()),
        cohesion: cohesion_pb(claim.cohesion),
        people: records.iter().map(|r| service.placement_view(r)).collect(),
    }))
}

pub async fn get(
    service: &IntakeService,
    request: Request<pb::GetPlacementRequest>,
) -> Result<Response<pb::Placement>, Status> {
    let who = caller(&request)?;
    let record = service.owned_placement(&who, &request.get_ref().placement_id)?;
    Ok(Response::new(service.placement_view(&record)))
}

pub async fn list(
    service: &IntakeService,
    request: Request<pb::ListPlacementsRequest>,
) -> Result<Response<pb::ListPlacementsResponse>, Status> {
    let who = caller(&request)?;
    let r = request.get_ref();
    let size = page::size(r.page_size)?;
    let after: Option<Vec<u8>> = page::after(&r.page_token)?;
    let found = service
        .records
        .list(who.org, after.as_deref(), size + 1)
        .map_err(records_error)?;
    let (found, next_page_token) = page::cut(found, size, |(listing, _)| listing.clone());
    Ok(Response::new(pb::ListPlacementsResponse {
        placements: found.iter().map(|(_, record)| service.placement_view(record)).collect(),
        next_page_token,
    }))
}

pub async fn watch(
    service: &IntakeService,
    request: Request<pb::WatchPlacementRequest>,
) -> Result<Response<WatchStream<pb::NeedUpdate>>, Status> {
    let who = caller(&request)?;
    let r = request.get_ref();
    let record = service.owned_placement(&who, &r.placement_id)?;
    let placement = record.placement;
    let current = move |board: &crate::board::Needs, after: u64| -> Vec<NeedView> {
        let mut views: Vec<NeedView> = record
            .needs
            .iter()
            .filter_map(|(need, _)| board.needs.get(need))
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
