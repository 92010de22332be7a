//! The capacity service: provider partners register their sites, keep their
//! capacity current, and answer the referrals the matcher sends them.
#![forbid(unsafe_code)]

pub mod board;
mod referrals;
mod sites;
pub mod views;

use board::Referrals;
use refer_proto::capacity::v1 as pb;
use refer_proto::capacity::v1::capacity_server::{Capacity, CapacityServer};
use refer_service::handler::Shell;
use refer_service::read_model::ReadModel;
use refer_service::runtime::{Context, ServiceSpec, Started};
use refer_service::watch::WatchStream;
use refer_service::Role;
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
    shell: Shell,
    board: ReadModel<Referrals>,
}

/// Opens the referral board, keeps it current, and serves the handlers
/// behind authentication, with the request size capped.
async fn start(context: Context) -> anyhow::Result<Started> {
    let shell = context.shell().await?;
    let (board, subscriber) = ReadModel::open(&context.store, &context.consumer(CONSUMER), &[]).await?;
    context.ready_when(board.caught_up());
    let task = refer_service::runtime::spawn_projection(subscriber, board.projection(), context.shutdown.clone());
    let service = CapacityService { shell, board };
    Ok(context.serve(CapacityServer::new(service), vec![task]))
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

    async fn update_provider(
        &self,
        request: Request<pb::UpdateProviderRequest>,
    ) -> Result<Response<pb::Provider>, Status> {
        sites::update(self, request).await
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
        self.shell.list_sealed_reads(request).await
    }
}
