//! The intake service: intake staff request placements for the people an
//! operation recovered (one person's bundle of needs, or a group), follow
//! each need's status, cancel, and mark needs fulfilled.
//!
//! A person is never identified: the request carries a profile (age band,
//! gender, languages, accessibility, party size) and the agency's own case
//! reference, which is sealed (`crates/sealed`): only ciphertext reaches the
//! bus, and erasing its key erases it for good. The hand-off (the agency's
//! contact, a consented note, the provider's instructions) goes the same way.
#![forbid(unsafe_code)]

pub mod board;
pub mod migrate;
mod needs;
mod placements;
mod sharing;
pub mod views;

use board::Files;
use refer_domain::ids::{OrgId, PlacementId, ProviderId};
use refer_domain::placement::Placement;
use refer_proto::intake::v1 as pb;
use refer_proto::intake::v1::intake_server::{Intake, IntakeServer};
use refer_service::convert::id;
use refer_service::handler::Shell;
use refer_service::read_model::ReadModel;
use refer_service::runtime::{Context, ServiceSpec, Started};
use refer_service::watch::WatchStream;
use refer_service::{Principal, Role};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use tonic::{Request, Response, Status};

/// The gRPC service name (for health checks).
pub const SERVICE_NAME: &str = "refer.intake.v1.Intake";
/// The durable consumer that feeds the need-status board.
pub const CONSUMER: &str = "intake-needs";
/// The longest case reference accepted.
pub const MAX_CASE_REFERENCE: usize = 64;
/// Who may call: intake staff; an admin only to forget a placement and to
/// list the read log (`METHOD_ROLES`, checked before the body is read).
pub const ROLES: &[Role] = &[Role::Intake, Role::Admin];
const STAFF: &[Role] = &[Role::Intake];
const METHOD_ROLES: &[(&str, &[Role])] = &[
    ("ForgetPlacement", &[Role::Intake, Role::Admin]),
    ("ListSealedReads", &[Role::Intake, Role::Admin]),
];

/// How `main` and the tests start the service.
pub const SERVICE: ServiceSpec = ServiceSpec {
    name: "intake",
    grpc_name: SERVICE_NAME,
    default_port: 50053,
    callers: refer_service::runtime::Callers {
        roles: ROLES,
        by_default: STAFF,
        methods: METHOD_ROLES,
    },
    start: |context| Box::pin(start(context)),
};

#[derive(Clone)]
pub struct IntakeService {
    shell: Shell,
    board: ReadModel<Files>,
    /// Each site's organisation (whose its hand-offs are), as read once.
    site_orgs: Arc<Mutex<BTreeMap<ProviderId, OrgId>>>,
    /// Hand-offs given after their placement was forgotten whose keys this
    /// process erased (so the sweep erases each once).
    erased_late: Arc<Mutex<BTreeSet<String>>>,
    /// How long sealed data outlives a final need.
    retention_ms: i64,
    /// The longest consent to share a note.
    longest_consent_ms: i64,
}

/// Opens the sealed-data store and the files, migrates records an older
/// version kept in sled, keeps the files current, sweeps what is due for
/// erasure, and serves the handlers behind authentication.
async fn start(context: Context) -> anyhow::Result<Started> {
    let store = context.store.clone();
    let shell = context.shell().await?;
    let stream = store.settings();
    let filters = [
        stream.subjects_of(refer_domain::AggregateKind::Need),
        stream.subjects_of(refer_domain::AggregateKind::Placement),
    ];
    let (board, subscriber) = ReadModel::open(&store, &context.consumer(CONSUMER), &filters).await?;
    context.ready_when(board.caught_up());
    let projection = refer_service::runtime::spawn_projection(subscriber, board.projection(), context.shutdown.clone());
    let millis = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    let service = IntakeService {
        shell,
        board,
        site_orgs: Default::default(),
        erased_late: Default::default(),
        retention_ms: millis(context.config.retention),
        longest_consent_ms: millis(context.config.longest_consent),
    };
    migrate::sled_records(&service).await?;
    let sweeper = tokio::spawn(sharing::sweep(
        service.clone(),
        context.config.tick,
        context.shutdown.clone(),
    ));
    Ok(context.serve(IntakeServer::new(service), vec![projection, sweeper]))
}

impl IntakeService {
    /// The caller's placement: NOT_FOUND if unknown or another agency's, in
    /// the same words, so the answer does not confirm that the id exists.
    /// (The files first; the stream when they have not folded it in yet.)
    async fn owned_placement(&self, who: &Principal, placement: &str) -> Result<(PlacementId, Placement), Status> {
        let id = PlacementId::from_uuid(id(placement, "placement_id")?);
        let known = self.board.read().placement(id).cloned();
        let found = match known {
            Some(found) => Some(found),
            None => {
                let loaded = self.shell.load::<Placement>(id.as_uuid()).await?;
                Some(loaded.state).filter(|p| p.file.is_some())
            }
        };
        who.sees(
            found.as_ref().and_then(|p| p.file.as_ref()).map(|f| f.agency),
            "placement",
        )?;
        Ok((id, found.expect("seen")))
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

    async fn set_handoff_contact(
        &self,
        request: Request<pb::SetHandoffContactRequest>,
    ) -> Result<Response<pb::HandoffContact>, Status> {
        sharing::set_contact(self, request).await
    }

    async fn get_handoff_contact(
        &self,
        request: Request<pb::GetHandoffContactRequest>,
    ) -> Result<Response<pb::HandoffContact>, Status> {
        sharing::get_contact(self, request).await
    }

    async fn share_note(&self, request: Request<pb::ShareNoteRequest>) -> Result<Response<pb::Placement>, Status> {
        sharing::share_note(self, request).await
    }

    async fn revoke_note(&self, request: Request<pb::RevokeNoteRequest>) -> Result<Response<pb::Placement>, Status> {
        sharing::revoke_note(self, request).await
    }

    async fn forget_placement(
        &self,
        request: Request<pb::ForgetPlacementRequest>,
    ) -> Result<Response<pb::Placement>, Status> {
        sharing::forget(self, request).await
    }

    async fn list_sealed_reads(
        &self,
        request: Request<refer_proto::common::v1::ListSealedReadsRequest>,
    ) -> Result<Response<refer_proto::common::v1::ListSealedReadsResponse>, Status> {
        self.shell.list_sealed_reads(request).await
    }
}
