//! The intake service: intake staff request placements for the people an
//! operation recovered (one person's bundle of needs, or a group), follow
//! each need's status, cancel, and mark needs fulfilled.
//!
//! A person is never identified: the request carries a profile (age band,
//! gender, languages, accessibility, party size) and the agency's own case
//! reference, which stays in this service's records and never reaches the bus.
#![forbid(unsafe_code)]

pub mod board;
mod needs;
mod placements;
pub mod records;
pub mod views;

use board::Needs;
use records::{PlacementRecord, Records};
use refer_domain::ids::PlacementId;
use refer_domain::{CommandMeta, IdempotencyKey};
use refer_eventstore::EventStore;
use refer_proto::intake::v1 as pb;
use refer_proto::intake::v1::intake_server::{Intake, IntakeServer};
use refer_service::convert::id;
use refer_service::idempotency::KeyBook;
use refer_service::read_model::ReadModel;
use refer_service::runtime::{Context, ServiceSpec, Started};
use refer_service::watch::WatchStream;
use refer_service::{Principal, Role, SharedClock};
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Response, Status};

/// The gRPC service name (for health checks).
pub const SERVICE_NAME: &str = "refer.intake.v1.Intake";
/// The durable consumer that feeds the need-status board.
pub const CONSUMER: &str = "intake-needs";
/// The longest case reference accepted.
pub const MAX_CASE_REFERENCE: usize = 64;
/// Who may call: intake staff.
pub const ROLES: &[Role] = &[Role::Intake];

/// How `main` and the tests start the service.
pub const SERVICE: ServiceSpec = ServiceSpec {
    name: "intake",
    grpc_name: SERVICE_NAME,
    default_port: 50053,
    start: |context| Box::pin(start(context)),
};

#[derive(Clone)]
pub struct IntakeService {
    store: EventStore,
    clock: SharedClock,
    board: ReadModel<Needs>,
    records: Records,
    keys: KeyBook,
}

/// Opens the records and the need board, keeps the board current, serves
/// the handlers behind authentication.
async fn start(context: Context) -> anyhow::Result<Started> {
    let store = context.store.clone();
    let records = Records::open(store.local().db())?;
    let keys = KeyBook::open(store.local().db())?;
    let filter = format!("{}.need.>", store.settings().prefix);
    let (board, subscriber) = ReadModel::open(&store, CONSUMER, Some(filter)).await?;
    let task = refer_service::runtime::spawn_projection(subscriber, board.projection(), context.shutdown.clone());
    let service = IntakeService {
        store,
        clock: context.clock.clone(),
        board,
        records,
        keys,
    };
    let server = IntakeServer::new(service).max_decoding_message_size(refer_service::server::MAX_REQUEST_BYTES);
    Ok(Started {
        routes: tonic::service::Routes::new(InterceptedService::new(server, context.authenticate(ROLES))),
        tasks: vec![task],
    })
}

impl IntakeService {
    fn meta<T>(&self, request: &Request<T>, key: IdempotencyKey) -> CommandMeta {
        refer_service::server::command_meta(request, self.clock.as_ref(), key)
    }

    /// The caller's placement: NOT_FOUND if unknown or another agency's, in
    /// the same words, so the answer does not confirm that the id exists.
    fn owned_placement(&self, who: &Principal, placement: &str) -> Result<PlacementRecord, Status> {
        let id = PlacementId::from_uuid(id(placement, "placement_id")?);
        let record = self
            .records
            .placement(id)
            .map_err(|e| Status::unavailable(format!("intake records: {e}")))?;
        who.sees(record.as_ref().map(|r| r.agency), "placement")?;
        Ok(record.expect("seen"))
    }
}

type Watch = WatchStream<pb::NeedUpdate>;

#[tonic::async_trait]
impl Intake for IntakeService {
    async fn request_placement(
        &self,
        request: Request<pb::RequestPlacementRequest>,
    ) -> Result<Response<pb::Placement>, Status> {
        placements::request_one(self, request).await
    }

    async fn request_group(&self, request: Request<pb::RequestGroupRequest>) -> Result<Response<pb::Group>, Status> {
        placements::request_group(self, request).await
    }

    async fn get_placement(
        &self,
        request: Request<pb::GetPlacementRequest>,
    ) -> Result<Response<pb::Placement>, Status> {
        placements::get(self, request).await
    }

    async fn list_placements(
        &self,
        request: Request<pb::ListPlacementsRequest>,
    ) -> Result<Response<pb::ListPlacementsResponse>, Status> {
        placements::list(self, request).await
    }

    type WatchPlacementStream = Watch;

    async fn watch_placement(&self, request: Request<pb::WatchPlacementRequest>) -> Result<Response<Watch>, Status> {
        placements::watch(self, request).await
    }

    async fn cancel_need(&self, request: Request<pb::CancelNeedRequest>) -> Result<Response<pb::NeedUpdate>, Status> {
        needs::cancel(self, request).await
    }

    async fn fulfil_need(&self, request: Request<pb::FulfilNeedRequest>) -> Result<Response<pb::NeedUpdate>, Status> {
        needs::fulfil(self, request).await
    }
}
