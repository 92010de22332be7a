//! The intake service: intake staff request placements for the people an
//! operation recovered (one person's bundle of needs, or a group), follow
//! each need's status, cancel, and mark needs fulfilled.
//!
//! A person is never identified: the request carries a profile (age band,
//! gender, languages, accessibility, party size) and the agency's own case
//! reference, which stays in this service's records and never reaches the bus.
#![forbid(unsafe_code)]

pub mod board;
pub mod records;

use board::{Board, NeedView};
use records::{Claim, GroupRecord, PlacementRecord, Records};
use refer_domain::ids::{GroupId, NeedId, OrgId, PlacementId};
use refer_domain::kinds::NeedKind;
use refer_domain::need::{GroupMembership, Need, NeedCommand, NeedRequest, NeedStatus};
use refer_domain::request::{Cohesion, PlacementRequest, MAX_GROUP_SIZE};
use refer_domain::{CommandMeta, IdempotencyKey};
use refer_eventstore::{EventStore, Subscriber};
use refer_proto::intake::v1 as pb;
use refer_proto::intake::v1::intake_server::{Intake, IntakeServer};
use refer_service::convert::{self as cv, id, id_pb};
use refer_service::watch::{follow, WatchStream};
use refer_service::{invalid, store_status, Principal, Role, SharedClock, TokenBook};
use tokio::sync::watch;
use tonic::{Request, Response, Status};
use uuid::Uuid;

/// The gRPC service name (for health checks).
pub const SERVICE_NAME: &str = "refer.intake.v1.Intake";
/// The durable consumer that feeds the need-status board.
pub const CONSUMER: &str = "intake-needs";
/// The longest case reference accepted.
pub const MAX_CASE_REFERENCE: usize = 64;

#[derive(Clone)]
pub struct IntakeService {
    store: EventStore,
    tokens: TokenBook,
    clock: SharedClock,
    board: Board,
    records: Records,
}

pub async fn start(
    store: EventStore,
    tokens: TokenBook,
    clock: SharedClock,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<(IntakeServer<IntakeService>, tokio::task::JoinHandle<()>)> {
    let records = Records::open(store.local().db())?;
    let subscriber = Subscriber::open(&store, CONSUMER, Some(format!("{}.need.>", store.settings().prefix))).await?;
    let board = Board::restore(subscriber.tree());
    let task = refer_service::runtime::spawn_projection(subscriber, board.projection(), shutdown);
    let service = IntakeService {
        store,
        tokens,
        clock,
        board,
        records,
    };
    Ok((
        IntakeServer::new(service).max_decoding_message_size(refer_service::server::MAX_REQUEST_BYTES),
        task,
    ))
}

type Watch = WatchStream<pb::NeedUpdate>;

/// A validated person from the wire, before ids are chosen.
struct Person {
    case_reference: String,
    request: PlacementRequest,
}

fn person(p: Option<&pb::PersonRequest>, field: &str) -> Result<Person, Status> {
    let p = p.ok_or_else(|| invalid(field, "is required"))?;
    if p.case_reference.chars().count() > MAX_CASE_REFERENCE || p.case_reference.chars().any(char::is_control) {
        return Err(invalid(
            &format!("{field}.case_reference"),
            "must be at most 64 printable characters",
        ));
    }
    let needs = p
        .needs
        .iter()
        .map(|k| {
            Ok((
                NeedId::from_uuid(Uuid::new_v4()),
                cv::need_kind(*k, &format!("{field}.needs"))?,
            ))
        })
        .collect::<Result<Vec<(NeedId, NeedKind)>, Status>>()?;
    let request = PlacementRequest {
        placement: PlacementId::from_uuid(Uuid::new_v4()),
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

fn status_pb(status: NeedStatus) -> i32 {
    (match status {
        NeedStatus::New | NeedStatus::Requested => pb::NeedStatus::Requested,
        NeedStatus::Proposed => pb::NeedStatus::Proposed,
        NeedStatus::Accepted => pb::NeedStatus::Accepted,
        NeedStatus::Declined => pb::NeedStatus::Declined,
        NeedStatus::Expired => pb::NeedStatus::Expired,
        NeedStatus::Waitlisted => pb::NeedStatus::Waitlisted,
        NeedStatus::Cancelled => pb::NeedStatus::Cancelled,
        NeedStatus::Fulfilled => pb::NeedStatus::Fulfilled,
    }) as i32
}

fn update_pb(view: &NeedView) -> pb::NeedUpdate {
    pb::NeedUpdate {
        placement_id: id_pb(view.placement.as_uuid()),
        need_id: id_pb(view.need.as_uuid()),
        kind: cv::need_kind_pb(view.kind),
        status: status_pb(view.status),
        placed_with: view.placed_with.as_ref().map(cv::target_pb),
        position: view.position,
    }
}

impl IntakeService {
    fn caller<T>(&self, request: &Request<T>) -> Result<Principal, Status> {
        let who = self.tokens.authenticate(request.metadata())?;
        who.require(&[Role::Intake])?;
        Ok(who)
    }

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
        let state = self.board.state.read().expect("board lock");
        pb::Placement {
            placement_id: id_pb(record.placement.as_uuid()),
            case_reference: record.case_reference.clone(),
            group_id: record.group.map(|g| id_pb(g.as_uuid())).unwrap_or_default(),
            needs: record
                .needs
                .iter()
                .map(|(need, kind)| match state.needs.get(need) {
                    Some(view) => update_pb(view),
                    None => update_pb(&NeedView {
                        need: *need,
                        placement: record.placement,
                        kind: *kind,
                        status: NeedStatus::Requested,
                        placed_with: None,
                        position: 0,
                    }),
                })
                .collect(),
            requested_at_ms: record.requested_at.millis(),
        }
    }

    /// The caller's placement: NOT_FOUND if unknown or another agency's, in
    /// the same words, so the answer does not confirm that the id exists.
    fn owned_placement(&self, who: &Principal, placement: &str) -> Result<PlacementRecord, Status> {
        let id = PlacementId::from_uuid(id(placement, "placement_id")?);
        let record = self
            .records
            .placement(id)
            .map_err(|e| Status::internal(format!("intake records: {e}")))?
            .filter(|record| record.agency == who.org)
            .ok_or_else(|| Status::not_found("no such placement"))?;
        Ok(record)
    }

    /// Runs a command on one of the caller agency's needs.
    async fn need_command<T>(
        &self,
        request: &Request<T>,
        need: &str,
        key: &str,
        command: NeedCommand,
    ) -> Result<pb::NeedUpdate, Status> {
        let who = self.caller(request)?;
        let key = cv::idempotency_key(key)?;
        let need = id(need, "need_id")?;
        let loaded = self.store.load::<Need>(need).await.map_err(store_status)?;
        // Another agency's need answers as an unknown one does.
        loaded
            .state
            .request
            .as_ref()
            .filter(|owner| owner.agency == who.org)
            .ok_or_else(|| Status::not_found("no such need"))?;
        let meta = refer_service::server::command_meta(request, self.clock.as_ref(), key);
        let done = self
            .store
            .execute::<Need>(need, &command, &meta, None)
            .await
            .map_err(store_status)?;
        let request = done.state.request.as_ref().expect("a requested need");
        Ok(update_pb(&NeedView {
            need: NeedId::from_uuid(need),
            placement: request.placement,
            kind: request.spec.kind,
            status: done.state.status,
            placed_with: (done.state.status == NeedStatus::Accepted)
                .then_some(done.state.proposal)
                .flatten()
                .map(|p| p.target),
            position: done.version,
        }))
    }
}

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

#[tonic::async_trait]
impl Intake for IntakeService {
    async fn request_placement(
        &self,
        request: Request<pb::RequestPlacementRequest>,
    ) -> Result<Response<pb::Placement>, Status> {
        let who = self.caller(&request)?;
        let r = request.get_ref();
        let key = cv::idempotency_key(&r.idempotency_key)?;
        let person = person(r.person.as_ref(), "person")?;
        let meta = refer_service::server::command_meta(&request, self.clock.as_ref(), key.clone());
        let record = record_of(who.org, &person, None, meta.occurred_at);
        let record = match self.records.claim(who.org, &key, Claim::Placement(record)).await {
            Ok(Claim::Placement(record)) => record,
            Ok(Claim::Group(..)) => return Err(invalid("idempotency_key", "was used for a group request")),
            Err(e) => return Err(Status::internal(format!("intake records: {e}"))),
        };
        self.request_needs(&meta, &record, &parts_for(&record, &person, None))
            .await?;
        Ok(Response::new(self.placement_view(&record)))
    }

    async fn request_group(&self, request: Request<pb::RequestGroupRequest>) -> Result<Response<pb::Group>, Status> {
        let who = self.caller(&request)?;
        let r = request.get_ref();
        let key = cv::idempotency_key(&r.idempotency_key)?;
        if r.people.is_empty() || r.people.len() > MAX_GROUP_SIZE {
            return Err(invalid("people", format!("must hold 1 to {MAX_GROUP_SIZE} people")));
        }
        let cohesion = match pb::Cohesion::try_from(r.cohesion) {
            Ok(pb::Cohesion::Unspecified) => Cohesion::NoPreference,
            Ok(pb::Cohesion::KeepTogether) => Cohesion::KeepTogether,
            Ok(pb::Cohesion::KeepApart) => Cohesion::KeepApart,
            Err(_) => return Err(invalid("cohesion", "unknown value")),
        };
        let people: Vec<Person> = r
            .people
            .iter()
            .enumerate()
            .map(|(i, p)| person(Some(p), &format!("people[{i}]")))
            .collect::<Result<_, _>>()?;
        let meta = refer_service::server::command_meta(&request, self.clock.as_ref(), key.clone());
        let group = GroupId::from_uuid(Uuid::new_v4());
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
        let (claim, records) = match self.records.claim(who.org, &key, Claim::Group(claim, records)).await {
            Ok(Claim::Group(group, records)) => (group, records),
            Ok(Claim::Placement(_)) => return Err(invalid("idempotency_key", "was used for a single placement")),
            Err(e) => return Err(Status::internal(format!("intake records: {e}"))),
        };
        let membership = GroupMembership {
            group: claim.group,
            cohesion: claim.cohesion,
            people: records.len() as u16,
        };
        for (record, fresh) in records.iter().zip(&people) {
            self.request_needs(&meta, record, &parts_for(record, fresh, Some(membership)))
                .await?;
        }
        let cohesion = match claim.cohesion {
            Cohesion::NoPreference => pb::Cohesion::Unspecified,
            Cohesion::KeepTogether => pb::Cohesion::KeepTogether,
            Cohesion::KeepApart => pb::Cohesion::KeepApart,
        };
        Ok(Response::new(pb::Group {
            group_id: id_pb(claim.group.as_uuid()),
            cohesion: cohesion as i32,
            people: records.iter().map(|r| self.placement_view(r)).collect(),
        }))
    }

    async fn get_placement(
        &self,
        request: Request<pb::GetPlacementRequest>,
    ) -> Result<Response<pb::Placement>, Status> {
        let who = self.caller(&request)?;
        let record = self.owned_placement(&who, &request.get_ref().placement_id)?;
        Ok(Response::new(self.placement_view(&record)))
    }

    async fn list_placements(
        &self,
        request: Request<pb::ListPlacementsRequest>,
    ) -> Result<Response<pb::ListPlacementsResponse>, Status> {
        let who = self.caller(&request)?;
        let r = request.get_ref();
        let size = cv::page_size(r.page_size)?;
        let after = if r.page_token.is_empty() {
            None
        } else {
            Some(
                refer_service::convert::decode_token(&r.page_token)
                    .ok_or_else(|| invalid("page_token", "is not a token this service issued"))?,
            )
        };
        let mut page = self
            .records
            .list(who.org, after.as_deref(), size + 1)
            .map_err(|e| Status::internal(format!("intake records: {e}")))?;
        let next_page_token = if page.len() > size {
            refer_service::convert::encode_token(&page[size - 1].0)
        } else {
            String::new()
        };
        page.truncate(size);
        Ok(Response::new(pb::ListPlacementsResponse {
            placements: page.iter().map(|(_, record)| self.placement_view(record)).collect(),
            next_page_token,
        }))
    }

    type WatchPlacementStream = Watch;

    async fn watch_placement(&self, request: Request<pb::WatchPlacementRequest>) -> Result<Response<Watch>, Status> {
        let who = self.caller(&request)?;
        let r = request.get_ref();
        let record = self.owned_placement(&who, &r.placement_id)?;
        let board = self.board.clone();
        let current = move |after: u64| -> Vec<NeedView> {
            let state = board.state.read().expect("board lock");
            let mut views: Vec<NeedView> = record
                .needs
                .iter()
                .filter_map(|(need, _)| state.needs.get(need))
                .filter(|v| v.position > after)
                .cloned()
                .collect();
            views.sort_by_key(|v| v.position);
            views
        };
        let placement = record_placement(&r.placement_id);
        Ok(Response::new(follow(
            self.board.changes.subscribe(),
            r.after_position,
            current,
            move |view: &NeedView| Some(view.placement) == placement,
            update_pb,
        )))
    }

    async fn cancel_need(&self, request: Request<pb::CancelNeedRequest>) -> Result<Response<pb::NeedUpdate>, Status> {
        let (need, key) = (
            request.get_ref().need_id.clone(),
            request.get_ref().idempotency_key.clone(),
        );
        Ok(Response::new(
            self.need_command(&request, &need, &key, NeedCommand::Cancel).await?,
        ))
    }

    async fn fulfil_need(&self, request: Request<pb::FulfilNeedRequest>) -> Result<Response<pb::NeedUpdate>, Status> {
        let (need, key) = (
            request.get_ref().need_id.clone(),
            request.get_ref().idempotency_key.clone(),
        );
        Ok(Response::new(
            self.need_command(&request, &need, &key, NeedCommand::Fulfil).await?,
        ))
    }
}

fn record_placement(id: &str) -> Option<PlacementId> {
    Uuid::parse_str(id).ok().map(PlacementId::from_uuid)
}
