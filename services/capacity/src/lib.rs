//! The capacity service: provider partners register their sites, keep their
//! capacity current, and answer the referrals the matcher sends them.
#![forbid(unsafe_code)]

pub mod board;
mod referrals;
mod sites;
pub mod views;

use board::Referrals;
use refer_domain::{CommandMeta, IdempotencyKey};
use refer_eventstore::EventStore;
use refer_proto::capacity::v1 as pb;
use refer_proto::capacity::v1::capacity_server::{Capacity, CapacityServer};
use refer_service::idempotency::KeyBook;
use refer_service::read_model::ReadModel;
use refer_service::runtime::{Context, ServiceSpec, Started};
use refer_service::watch::WatchStream;
use refer_service::{Role, SharedClock};
use tonic::{Request, Response, Status};

/// The gRPC service name (for health checks).
pub const SERVICE_NAME: &str = "refer.capacity.v1.Capacity";

/// The durable consumer that feeds the referral board.
pub const CONSUMER: &str = "capacity-referrals";

/// Who may call: provider partners, and coalition admins.
pub const ROLES: &[Role] = &[Role::Provider, Role::Admin];

/// How `main` and the tests start the service.
pub const SERVICE: ServiceSpec = ServiceSpec {
    name: "capacity",
    grpc_name: SERVICE_NAME,
    default_port: 50051,
    callers: refer_service::runtime::Callers::all(ROLES),
    start: |context| Box::pin(start(context)),
};

#[derive(Clone)]
pub struct CapacityService {
    store: EventStore,
    clock: SharedClock,
    board: ReadModel<Referrals>,
    keys: KeyBook,
    vault: refer_sealed::Vault,
    reads: refer_service::reads::ReadLog,
}

/// Opens the referral board, keeps it current, and serves the handlers
/// behind authentication, with the request size capped.
async fn start(context: Context) -> anyhow::Result<Started> {
    let vault = context.vault().await?;
    let (board, subscriber) = ReadModel::open(&context.store, &context.consumer(CONSUMER), &[]).await?;
    context.ready_when(board.caught_up());
    let task = refer_service::runtime::spawn_projection(subscriber, board.projection(), context.shutdown.clone());
    let service = CapacityService {
        store: context.store.clone(),
        clock: context.clock.clone(),
        board,
        keys: context.key_book().await?,
        vault,
        reads: context.read_log().await?,
    };
    Ok(context.serve(CapacityServer::new(service), vec![task]))
}

impl CapacityService {
    fn meta<T>(&self, request: &Request<T>, key: IdempotencyKey) -> CommandMeta {
        refer_service::server::command_meta(request, self.clock.as_ref(), key)
    }
}

type Watch = WatchStream<pb::Referral>;

#[tonic::async_trait]
impl Capacity for CapacityService {
    async fn register_provider(
        &self,
        request: Request<pb::RegisterProviderRequest>,
    ) -> Result<Response<pb::Provider>, Status> {
        sites::register(self, request).await
    }

    async fn get_provider(&self, request: Request<pb::GetProviderRequest>) -> Result<Response<pb::Provider>, Status> {
        sites::get(self, request).await
    }

    async fn list_providers(
        &self,
        request: Request<pb::ListProvidersRequest>,
    ) -> Result<Response<pb::ListProvidersResponse>, Status> {
        sites::list(self, request).await
    }

    async fn set_capacity(&self, request: Request<pb::SetCapacityRequest>) -> Result<Response<pb::Provider>, Status> {
        sites::set(self, request).await
    }

    async fn adjust_capacity(
        &self,
        request: Request<pb::AdjustCapacityRequest>,
    ) -> Result<Response<pb::Provider>, Status> {
        sites::adjust(self, request).await
    }

    async fn suspend_provider(
        &self,
        request: Request<pb::SuspendProviderRequest>,
    ) -> Result<Response<pb::Provider>, Status> {
        sites::suspend(self, request).await
    }

    async fn resume_provider(
        &self,
        request: Request<pb::ResumeProviderRequest>,
    ) -> Result<Response<pb::Provider>, Status> {
        sites::resume(self, request).await
    }

    async fn list_referrals(
        &self,
        request: Request<pb::ListReferralsRequest>,
    ) -> Result<Response<pb::ListReferralsResponse>, Status> {
        referrals::list(self, request).await
    }

    type WatchReferralsStream = Watch;

    async fn watch_referrals(&self, request: Request<pb::WatchReferralsRequest>) -> Result<Response<Watch>, Status> {
        referrals::watch(self, request).await
    }

    async fn accept_referral(
        &self,
        request: Request<pb::AcceptReferralRequest>,
    ) -> Result<Response<pb::Referral>, Status> {
        referrals::accept(self, request).await
    }

    async fn decline_referral(
        &self,
        request: Request<pb::DeclineReferralRequest>,
    ) -> Result<Response<pb::Referral>, Status> {
        referrals::decline(self, request).await
    }

    async fn get_referral(&self, request: Request<pb::GetReferralRequest>) -> Result<Response<pb::Referral>, Status> {
        referrals::get(self, request).await
    }

    async fn set_site_handoff(
        &self,
        request: Request<pb::SetSiteHandoffRequest>,
    ) -> Result<Response<pb::SiteHandoff>, Status> {
        sites::set_handoff(self, request).await
    }

    async fn list_sealed_reads(
        &self,
        request: Request<refer_proto::common::v1::ListSealedReadsRequest>,
    ) -> Result<Response<refer_proto::common::v1::ListSealedReadsResponse>, Status> {
        let who = refer_service::caller(&request)?;
        let r = request.get_ref();
        Ok(Response::new(self.reads.list(&who, r.page_size, &r.page_token).await?))
    }
}
