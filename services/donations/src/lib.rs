//! The donations service: businesses register donated resources (hotel
//! room-nights, a truck, rental cars, audio/video equipment), withdraw them,
//! and see when units are used, never by whom.
#![forbid(unsafe_code)]

pub mod board;
pub mod views;

use board::{Donations as Board, Entry};
use refer_domain::donation::{Donation, DonationCommand};
use refer_domain::ids::DonationId;
use refer_proto::donations::v1 as pb;
use refer_proto::donations::v1::donations_server::{Donations, DonationsServer};
use refer_service::convert::id;
use refer_service::handler::Shell;
use refer_service::read_model::ReadModel;
use refer_service::runtime::{Context, ServiceSpec, Started};
use refer_service::watch::WatchStream;
use refer_service::{caller, page, sealing, Principal, Role};
use tonic::{Request, Response, Status};
use uuid::Uuid;
use views::{donation_view, offer};

/// The gRPC service name (for health checks).
pub const SERVICE_NAME: &str = "refer.donations.v1.Donations";
/// The durable consumer that feeds the donations board.
pub const CONSUMER: &str = "donations-board";
/// Who may call: businesses, and coalition admins.
pub const ROLES: &[Role] = &[Role::Business, Role::Admin];

/// How `main` and the tests start the service.
pub const SERVICE: ServiceSpec = ServiceSpec {
    name: "donations",
    grpc_name: SERVICE_NAME,
    default_port: 50052,
    callers: refer_service::runtime::Callers::all(ROLES),
    start: |context| Box::pin(start(context)),
};

#[derive(Clone)]
pub struct DonationsService {
    shell: Shell,
    board: ReadModel<Board>,
}

/// Opens the board, keeps it current, serves the handlers behind authentication.
async fn start(context: Context) -> anyhow::Result<Started> {
    let shell = context.shell().await?;
    let filter = context
        .store
        .settings()
        .subjects_of(refer_domain::AggregateKind::Donation);
    let (board, subscriber) = ReadModel::open(&context.store, &context.consumer(CONSUMER), &[filter]).await?;
    context.ready_when(board.caught_up());
    let task = refer_service::runtime::spawn_projection(subscriber, board.projection(), context.shutdown.clone());
    let service = DonationsService { shell, board };
    Ok(context.serve(DonationsServer::new(service), vec![task]))
}

type Watch = WatchStream<pb::Donation>;

fn entry_view(entry: &Entry) -> pb::Donation {
    donation_view(entry.donation.as_uuid(), &entry.state, entry.position, &entry.usage)
}

/// A donation's hand-off as a sealed item: whose it is, the purpose it is
/// sealed for, and what a read of it is recorded as.
fn handoff_item(id: Uuid, state: &Donation) -> (refer_domain::standing::Owner, String, refer_service::reads::About) {
    let donation = DonationId::from_uuid(id);
    let about = refer_service::reads::About {
        kind: refer_service::reads::ItemKind::DonationHandoff,
        of: id,
        owner: state
            .offer
            .as_ref()
            .map_or(refer_domain::ids::OrgId::from_u128(0), |o| o.org),
    };
    (
        refer_domain::standing::Owner::Donation(donation),
        sealing::purpose::donation(donation),
        about,
    )
}

impl DonationsService {
    /// A donation the caller may act for: NOT_FOUND if unknown or another
    /// business's, in the same words.
    async fn owned(&self, who: &Principal, donation: &str) -> Result<(Uuid, Donation, u64), Status> {
        let id = id(donation, "donation_id")?;
        let loaded = self.shell.load::<Donation>(id).await?;
        who.sees(loaded.state.offer.as_ref().map(|o| o.org), "donation")?;
        Ok((id, loaded.state, loaded.version))
    }

    /// The donation as just read from the store, with its usage from the board.
    fn view(&self, id: Uuid, state: &Donation, version: u64) -> pb::Donation {
        let board = self.board.read();
        let usage = board
            .entries
            .get(&DonationId::from_uuid(id))
            .map_or(&[][..], |e| &e.usage[..]);
        donation_view(id, state, version, usage)
    }
}

#[tonic::async_trait]
impl Donations for DonationsService {
    async fn set_donation_handoff(
        &self,
        request: Request<pb::SetDonationHandoffRequest>,
    ) -> Result<Response<pb::DonationHandoff>, Status> {
        let r = request.get_ref();
        let call = self.shell.command(&request, &r.idempotency_key)?;
        let (id, state, _) = self.owned(&call.who, &r.donation_id).await?;
        let instructions = sealing::text(&r.instructions, "instructions")?;
        let meta = call.bind().await?;
        let (owner, purpose, about) = handoff_item(id, &state);
        // An admin may set it, never be shown it.
        let instructions =
            sealing::set_standing(&self.shell, &call.who, owner, &instructions, &purpose, &meta, about).await?;
        Ok(Response::new(pb::DonationHandoff {
            donation_id: refer_service::convert::id_pb(id),
            instructions,
        }))
    }

    async fn get_donation_handoff(
        &self,
        request: Request<pb::GetDonationHandoffRequest>,
    ) -> Result<Response<pb::DonationHandoff>, Status> {
        let who = caller(&request)?;
        let (id, state, _) = self.owned(&who, &request.get_ref().donation_id).await?;
        let (owner, purpose, about) = handoff_item(id, &state);
        // Opened for its business (the read recorded); withheld from an admin.
        let instructions = sealing::open_standing(&self.shell, &who, owner, &purpose, about).await?;
        Ok(Response::new(pb::DonationHandoff {
            donation_id: refer_service::convert::id_pb(id),
            instructions,
        }))
    }

    async fn list_sealed_reads(
        &self,
        request: Request<refer_proto::common::v1::ListSealedReadsRequest>,
    ) -> Result<Response<refer_proto::common::v1::ListSealedReadsResponse>, Status> {
        self.shell.list_sealed_reads(request).await
    }

    async fn register_donation(
        &self,
        request: Request<pb::RegisterDonationRequest>,
    ) -> Result<Response<pb::Donation>, Status> {
        let r = request.get_ref();
        let call = self.shell.command(&request, &r.idempotency_key)?;
        let who = &call.who;
        let donation = id(&r.donation_id, "donation_id")?;
        let offer = offer(who, r.spec.as_ref())?;
        let meta = call.bind().await?;
        let register = DonationCommand::Register(offer);
        let done = self.shell.execute::<Donation>(donation, &register, &meta, None).await?;
        // The business's next list shows the donation.
        self.board.read_your_write(done.version).await;
        match &done.state.offer {
            Some(o) if who.acts_for(o.org) => Ok(Response::new(self.view(donation, &done.state, done.version))),
            _ => Err(Status::already_exists("donation_id is taken")),
        }
    }

    async fn withdraw_donation(
        &self,
        request: Request<pb::WithdrawDonationRequest>,
    ) -> Result<Response<pb::Donation>, Status> {
        let r = request.get_ref();
        let call = self.shell.command(&request, &r.idempotency_key)?;
        let (donation, _, _) = self.owned(&call.who, &r.donation_id).await?;
        let meta = call.bind().await?;
        let withdraw = DonationCommand::Withdraw;
        let done = self.shell.execute::<Donation>(donation, &withdraw, &meta, None).await?;
        self.board.read_your_write(done.version).await;
        Ok(Response::new(self.view(donation, &done.state, done.version)))
    }

    async fn get_donation(&self, request: Request<pb::GetDonationRequest>) -> Result<Response<pb::Donation>, Status> {
        let who = caller(&request)?;
        let (donation, state, version) = self.owned(&who, &request.get_ref().donation_id).await?;
        Ok(Response::new(self.view(donation, &state, version)))
    }

    async fn list_donations(
        &self,
        request: Request<pb::ListDonationsRequest>,
    ) -> Result<Response<pb::ListDonationsResponse>, Status> {
        let who = caller(&request)?;
        let r = request.get_ref();
        let size = page::size(r.page_size)?;
        let after: Option<DonationId> = page::after(&r.page_token)?;
        let entries: Vec<Entry> = {
            let board = self.board.read();
            page::owned_ids(&board.orgs, &who, after, size)
                .iter()
                .filter_map(|id| board.entries.get(id).cloned())
                .collect()
        };
        let (entries, next_page_token) = page::cut(entries, size, |e| e.donation);
        Ok(Response::new(pb::ListDonationsResponse {
            donations: entries.iter().map(entry_view).collect(),
            next_page_token,
        }))
    }

    type WatchDonationsStream = Watch;

    async fn watch_donations(&self, request: Request<pb::WatchDonationsRequest>) -> Result<Response<Watch>, Status> {
        let who = caller(&request)?;
        let r = request.get_ref();
        // `after_version` is the deprecated name of the same position.
        #[allow(deprecated)]
        let after = if r.after_position > 0 {
            r.after_position
        } else {
            r.after_version
        };
        let sees = who.clone();
        Ok(Response::new(self.board.watch(
            after,
            move |board, after| board.changed_after(|org| sees.acts_for(org), after),
            move |entry: &Entry| who.acts_for(entry.org),
            entry_view,
        )))
    }
}
