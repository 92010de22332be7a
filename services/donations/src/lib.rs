//! The donations service: businesses register donated resources (hotel
//! room-nights, a truck, rental cars, audio/video equipment), withdraw them,
//! and see when units are used, never by whom.
#![forbid(unsafe_code)]

pub mod board;

use board::Board;
use refer_domain::donation::{Donation, DonationCommand, DonationOffer};
use refer_domain::ids::{DonationId, OrgId};
use refer_domain::IdempotencyKey;
use refer_eventstore::{EventStore, Subscriber};
use refer_proto::donations::v1 as pb;
use refer_proto::donations::v1::donations_server::{Donations, DonationsServer};
use refer_service::convert::{self as cv, id, id_pb};
use refer_service::{invalid, store_status, Principal, Role, SharedClock, TokenBook};
use std::pin::Pin;
use tokio::sync::{broadcast, mpsc, watch};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};
use uuid::Uuid;

/// The gRPC service name (for health checks).
pub const SERVICE_NAME: &str = "refer.donations.v1.Donations";
/// The durable consumer that feeds the donations board.
pub const CONSUMER: &str = "donations-board";

#[derive(Clone)]
pub struct DonationsService {
    store: EventStore,
    tokens: TokenBook,
    clock: SharedClock,
    board: Board,
}

/// Opens the board, starts keeping it current, returns the gRPC service.
pub async fn start(
    store: EventStore,
    tokens: TokenBook,
    clock: SharedClock,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<(DonationsServer<DonationsService>, tokio::task::JoinHandle<()>)> {
    let subscriber = Subscriber::open(
        &store,
        CONSUMER,
        Some(format!("{}.donation.>", store.settings().prefix)),
    )
    .await?;
    let board = Board::restore(subscriber.tree());
    let task = refer_service::runtime::spawn_projection(subscriber, board.projection(), shutdown);
    let service = DonationsService {
        store,
        tokens,
        clock,
        board,
    };
    Ok((
        DonationsServer::new(service).max_decoding_message_size(refer_service::server::MAX_REQUEST_BYTES),
        task,
    ))
}

type Watch = Pin<Box<dyn Stream<Item = Result<pb::Donation, Status>> + Send>>;

impl DonationsService {
    fn caller<T>(&self, request: &Request<T>) -> Result<Principal, Status> {
        let who = self.tokens.authenticate(request.metadata())?;
        who.require(&[Role::Business, Role::Admin])?;
        Ok(who)
    }

    /// NOT_FOUND if unknown, PERMISSION_DENIED if another business's.
    async fn owned(&self, who: &Principal, donation: &str) -> Result<(Uuid, Donation, u64), Status> {
        let id = id(donation, "donation_id")?;
        let loaded = self.store.load::<Donation>(id).await.map_err(store_status)?;
        let offer = loaded
            .state
            .offer
            .as_ref()
            .ok_or_else(|| Status::not_found("no such donation"))?;
        if !who.acts_for(offer.org) {
            return Err(Status::permission_denied(
                "this donation belongs to another organisation",
            ));
        }
        Ok((id, loaded.state, loaded.version))
    }

    fn view(&self, id: Uuid, state: &Donation, version: u64) -> pb::Donation {
        let usage = self
            .board
            .state
            .read()
            .expect("board lock")
            .ledgers
            .get(&DonationId::from_uuid(id))
            .map(|l| {
                l.usage
                    .iter()
                    .map(|(at, units)| pb::Usage {
                        at_ms: at.millis(),
                        units: *units,
                    })
                    .collect()
            })
            .unwrap_or_default();
        pb::Donation {
            donation_id: id_pb(id),
            version,
            spec: state.offer.as_ref().map(|o| pb::DonationSpec {
                org_id: id_pb(o.org.as_uuid()),
                kind: cv::resource_kind_pb(o.kind),
                quantity: o.quantity,
                window: Some(cv::time_window_pb(&o.window)),
                location: Some(cv::location_pb(&o.location)),
                max_units_per_need: o.max_units_per_need.unwrap_or(0),
                eligibility: Some(cv::eligibility_pb(&o.eligibility)),
            }),
            withdrawn: state.withdrawn,
            held: state.held,
            used: state.used,
            free: state.free(),
            usage,
        }
    }
}

fn offer(who: &Principal, spec: Option<&pb::DonationSpec>) -> Result<DonationOffer, Status> {
    let spec = spec.ok_or_else(|| invalid("spec", "is required"))?;
    let org = match who.role {
        Role::Admin => OrgId::from_uuid(id(&spec.org_id, "spec.org_id")?),
        _ => who.org,
    };
    let offer = DonationOffer {
        org,
        kind: cv::resource_kind(spec.kind, "spec.kind")?,
        quantity: spec.quantity,
        window: cv::time_window(spec.window.as_ref(), "spec.window")?,
        location: cv::location(spec.location.as_ref(), "spec.location")?,
        max_units_per_need: (spec.max_units_per_need > 0).then_some(spec.max_units_per_need),
        eligibility: cv::eligibility(spec.eligibility.as_ref(), "spec.eligibility")?,
    };
    offer.validate().map_err(|e| cv::domain_invalid("spec", e))?;
    Ok(offer)
}

#[tonic::async_trait]
impl Donations for DonationsService {
    async fn register_donation(
        &self,
        request: Request<pb::RegisterDonationRequest>,
    ) -> Result<Response<pb::Donation>, Status> {
        let who = self.caller(&request)?;
        let r = request.get_ref();
        let key: IdempotencyKey = cv::idempotency_key(&r.idempotency_key)?;
        let donation = id(&r.donation_id, "donation_id")?;
        let offer = offer(&who, r.spec.as_ref())?;
        let meta = refer_service::server::command_meta(&request, self.clock.as_ref(), key);
        let done = self
            .store
            .execute::<Donation>(donation, &DonationCommand::Register(offer), &meta, None)
            .await
            .map_err(store_status)?;
        match &done.state.offer {
            Some(o) if who.acts_for(o.org) => Ok(Response::new(self.view(donation, &done.state, done.version))),
            _ => Err(Status::already_exists("donation_id is taken")),
        }
    }

    async fn withdraw_donation(
        &self,
        request: Request<pb::WithdrawDonationRequest>,
    ) -> Result<Response<pb::Donation>, Status> {
        let who = self.caller(&request)?;
        let r = request.get_ref();
        let key = cv::idempotency_key(&r.idempotency_key)?;
        let (donation, _, _) = self.owned(&who, &r.donation_id).await?;
        let meta = refer_service::server::command_meta(&request, self.clock.as_ref(), key);
        let done = self
            .store
            .execute::<Donation>(donation, &DonationCommand::Withdraw, &meta, None)
            .await
            .map_err(store_status)?;
        Ok(Response::new(self.view(donation, &done.state, done.version)))
    }

    async fn get_donation(&self, request: Request<pb::GetDonationRequest>) -> Result<Response<pb::Donation>, Status> {
        let who = self.caller(&request)?;
        let (donation, state, version) = self.owned(&who, &request.get_ref().donation_id).await?;
        Ok(Response::new(self.view(donation, &state, version)))
    }

    async fn list_donations(
        &self,
        request: Request<pb::ListDonationsRequest>,
    ) -> Result<Response<pb::ListDonationsResponse>, Status> {
        let who = self.caller(&request)?;
        let r = request.get_ref();
        let size = cv::page_size(r.page_size)?;
        let after = if r.page_token.is_empty() {
            None
        } else {
            Some(id(&r.page_token, "page_token")?)
        };
        let ids: Vec<DonationId> = {
            let state = self.board.state.read().expect("board lock");
            let mut ids: Vec<DonationId> = state
                .orgs
                .iter()
                .filter(|(org, _)| who.acts_for(**org))
                .flat_map(|(_, ids)| ids.iter().copied())
                .filter(|d| after.is_none_or(|a| d.as_uuid() > a))
                .collect();
            ids.sort();
            ids.truncate(size + 1);
            ids
        };
        let mut donations = Vec::new();
        for d in ids.iter().take(size) {
            let loaded = self.store.load::<Donation>(d.as_uuid()).await.map_err(store_status)?;
            donations.push(self.view(d.as_uuid(), &loaded.state, loaded.version));
        }
        let next_page_token = if ids.len() > size {
            id_pb(ids[size - 1].as_uuid())
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListDonationsResponse {
            donations,
            next_page_token,
        }))
    }

    type WatchDonationsStream = Watch;

    async fn watch_donations(&self, request: Request<pb::WatchDonationsRequest>) -> Result<Response<Watch>, Status> {
        let who = self.caller(&request)?;
        let after = request.get_ref().after_version;
        let mut changes = self.board.changes.subscribe();
        let service = self.clone();
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            // Current state of each of the caller's donations changed after
            // `after`, then each change as it happens.
            let mine: Vec<DonationId> = {
                let state = service.board.state.read().expect("board lock");
                state
                    .orgs
                    .iter()
                    .filter(|(org, _)| who.acts_for(**org))
                    .flat_map(|(_, ids)| ids.iter().copied())
                    .collect()
            };
            let mut sent: std::collections::BTreeMap<DonationId, u64> = Default::default();
            let mut pending: Vec<DonationId> = mine;
            loop {
                for donation in pending.drain(..) {
                    let Ok(loaded) = service.store.load::<Donation>(donation.as_uuid()).await else {
                        continue;
                    };
                    let floor = sent.get(&donation).copied().unwrap_or(after);
                    if loaded.version > floor {
                        sent.insert(donation, loaded.version);
                        if tx
                            .send(Ok(service.view(donation.as_uuid(), &loaded.state, loaded.version)))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                }
                match changes.recv().await {
                    Ok(change) if who.acts_for(change.org) => pending.push(change.donation),
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let state = service.board.state.read().expect("board lock");
                        pending = state
                            .orgs
                            .iter()
                            .filter(|(org, _)| who.acts_for(**org))
                            .flat_map(|(_, ids)| ids.iter().copied())
                            .collect();
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }
}
