//! The capacity service: provider partners register their sites, keep their
//! capacity current, and answer the referrals the matcher sends them.
#![forbid(unsafe_code)]

pub mod board;

use board::{Board, Referral, ReferralStatus};
use refer_domain::ids::{HoldId, ProviderId};
use refer_domain::need::{DeclineReason, Need, NeedCommand, Target};
use refer_domain::provider::{Provider, ProviderCommand, ProviderProfile, ReleaseReason};
use refer_domain::{CommandMeta, DomainError, IdempotencyKey};
use refer_eventstore::{retry_races, EventStore, Executed, Part, StoreError, Subscriber};
use refer_proto::capacity::v1 as pb;
use refer_proto::capacity::v1::capacity_server::{Capacity, CapacityServer};
use refer_service::convert::{self as cv, id, id_pb};
use refer_service::watch::{follow, WatchStream};
use refer_service::{invalid, store_status, Principal, Role, SharedClock, TokenBook};
use tokio::sync::watch;
use tonic::{Request, Response, Status};
use uuid::Uuid;

/// The gRPC service name (for health checks).
pub const SERVICE_NAME: &str = "refer.capacity.v1.Capacity";

/// The durable consumer that feeds the referral board.
pub const CONSUMER: &str = "capacity-referrals";

#[derive(Clone)]
pub struct CapacityService {
    store: EventStore,
    tokens: TokenBook,
    clock: SharedClock,
    board: Board,
}

/// Opens the referral board, starts keeping it current, and returns the
/// gRPC service (with the request size capped) and the projection task.
pub async fn start(
    store: EventStore,
    tokens: TokenBook,
    clock: SharedClock,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<(CapacityServer<CapacityService>, tokio::task::JoinHandle<()>)> {
    let subscriber = Subscriber::open(&store, CONSUMER, None).await?;
    let board = Board::restore(subscriber.tree());
    let task = refer_service::runtime::spawn_projection(subscriber, board.projection(), shutdown);
    let service = CapacityService {
        store,
        tokens,
        clock,
        board,
    };
    let server = CapacityServer::new(service).max_decoding_message_size(refer_service::server::MAX_REQUEST_BYTES);
    Ok((server, task))
}

type Watch = WatchStream<pb::Referral>;

impl CapacityService {
    fn caller<T>(&self, request: &Request<T>) -> Result<Principal, Status> {
        let who = self.tokens.authenticate(request.metadata())?;
        who.require(&[Role::Provider, Role::Admin])?;
        Ok(who)
    }

    fn meta<T>(&self, request: &Request<T>, key: IdempotencyKey) -> CommandMeta {
        refer_service::server::command_meta(request, self.clock.as_ref(), key)
    }

    /// Loads a site the caller may act for: NOT_FOUND if unknown,
    /// PERMISSION_DENIED if another organisation runs it.
    async fn owned(&self, who: &Principal, provider: &str) -> Result<(Uuid, Provider, u64), Status> {
        let id = id(provider, "provider_id")?;
        let loaded = self.store.load::<Provider>(id).await.map_err(store_status)?;
        let profile = loaded
            .state
            .profile
            .as_ref()
            .ok_or_else(|| Status::not_found("no such provider"))?;
        if !who.acts_for(profile.org) {
            return Err(Status::permission_denied(
                "this provider belongs to another organisation",
            ));
        }
        Ok((id, loaded.state, loaded.version))
    }

    async fn execute<T>(
        &self,
        request: &Request<T>,
        who: &Principal,
        provider: &str,
        key: &str,
        command: ProviderCommand,
        expected: Option<u64>,
    ) -> Result<pb::Provider, Status> {
        let key = cv::idempotency_key(key)?;
        let (id, _, _) = self.owned(who, provider).await?;
        let done = self
            .store
            .execute::<Provider>(id, &command, &self.meta(request, key), expected)
            .await
            .map_err(store_status)?;
        Ok(provider_view(id, &done.state, done.version))
    }

    async fn answer<T>(
        &self,
        request: &Request<T>,
        provider: &str,
        referral: &str,
        key: &str,
        decline: Option<DeclineReason>,
    ) -> Result<pb::Referral, Status> {
        let who = self.caller(request)?;
        let key = cv::idempotency_key(key)?;
        let (pid, state, _) = self.owned(&who, provider).await?;
        let hold = HoldId::from_uuid(id(referral, "referral_id")?);
        let known = self
            .board
            .state
            .read()
            .expect("board lock")
            .referrals
            .get(&hold)
            .cloned();
        // The hold names the need while pending; afterwards the board still
        // knows it, so a retried answer finds its idempotency record.
        let need = match (state.holds.get(&hold), &known) {
            (Some(h), _) => h.need,
            (None, Some(r)) if r.provider == ProviderId::from_uuid(pid) => r.need,
            _ => return Err(Status::not_found("no such referral at this provider")),
        };
        let by = Target::Provider(ProviderId::from_uuid(pid));
        let meta = self.meta(request, key);
        let (command, follow_up, status) = match decline {
            None => (
                NeedCommand::Accept { by },
                ProviderCommand::ConfirmHold { hold },
                ReferralStatus::Accepted,
            ),
            Some(reason) => (
                NeedCommand::Decline { by, reason },
                ProviderCommand::ReleaseHold {
                    hold,
                    reason: ReleaseReason::Declined,
                },
                ReferralStatus::Declined,
            ),
        };
        // The answer on the need and the hold settled on the provider are one
        // atomic commit: never an answer without its settlement. (A hold
        // already gone, released by the matcher, leaves the need alone.)
        let settle = CommandMeta {
            idempotency_key: Some(settle_key(hold)),
            ..meta.clone()
        };
        let (command, follow_up, meta, settle) = (&command, &follow_up, &meta, &settle);
        let answered = retry_races(|attempt| async move {
            let answer = self
                .store
                .prepare::<Need>(need.as_uuid(), std::slice::from_ref(command), meta, attempt)
                .await?;
            let settling = match self
                .store
                .prepare::<Provider>(pid, std::slice::from_ref(follow_up), settle, attempt)
                .await
            {
                Ok(settling) => Some(settling),
                Err(StoreError::Domain(_)) => None,
                Err(err) => return Err(err),
            };
            let mut parts: Vec<&dyn Part> = vec![&answer];
            parts.extend(settling.iter().map(|p| p as &dyn Part));
            let seqs = self.store.commit_atomic(&parts).await?;
            if let Some(settling) = settling {
                self.store.finish(settling, seqs[1])?;
            }
            self.store.finish(answer, seqs[0])
        })
        .await;
        let answered: Executed<Need> = match answered {
            Ok(done) => done,
            Err(StoreError::Domain(DomainError::InvalidTransition { from, .. })) => {
                return Err(Status::failed_precondition(format!(
                    "the referral is no longer pending (the need is {from:?})"
                )))
            }
            Err(err) => return Err(store_status(err)),
        };
        let mut view = match (known, state.holds.get(&hold)) {
            (Some(known), _) => known,
            (None, Some(h)) => Referral {
                hold,
                provider: ProviderId::from_uuid(pid),
                need,
                service: h.service,
                units: h.units,
                deadline: h.expires_at,
                status,
                summary: None,
                position: answered.version,
            },
            (None, None) => unreachable!("the need was resolved from one of them"),
        };
        view.status = status;
        view.position = view.position.max(answered.version);
        Ok(referral_view(&view))
    }
}

/// The idempotency key for settling a hold after the need was answered.
pub fn settle_key(hold: HoldId) -> IdempotencyKey {
    IdempotencyKey::new(format!("settle-{hold}")).expect("a valid key")
}

fn provider_view(id: Uuid, state: &Provider, version: u64) -> pb::Provider {
    let profile = state.profile.as_ref();
    pb::Provider {
        provider_id: id_pb(id),
        version,
        spec: profile.map(|p| pb::ProviderSpec {
            org_id: id_pb(p.org.as_uuid()),
            name: p.name.clone(),
            services: p.services.iter().map(|s| cv::service_kind_pb(*s)).collect(),
            eligibility: Some(cv::eligibility_pb(&p.eligibility)),
            location: Some(cv::location_pb(&p.location)),
            hours: Some(cv::hours_pb(&p.hours)),
        }),
        suspended: state.suspended,
        capacity: profile
            .into_iter()
            .flat_map(|p| p.services.iter())
            .map(|service| {
                let units = state.units(*service);
                pb::ServiceCapacity {
                    service: cv::service_kind_pb(*service),
                    declared: units.declared,
                    held: units.held,
                    free: units.free(),
                    placed: units.placed,
                }
            })
            .collect(),
    }
}

fn referral_view(r: &Referral) -> pb::Referral {
    let status = match r.status {
        ReferralStatus::Offered | ReferralStatus::Pending => pb::ReferralStatus::Pending,
        ReferralStatus::Accepted => pb::ReferralStatus::Accepted,
        ReferralStatus::Declined => pb::ReferralStatus::Declined,
        ReferralStatus::Expired => pb::ReferralStatus::Expired,
        ReferralStatus::Cancelled => pb::ReferralStatus::Cancelled,
    };
    let summary = r.summary.as_ref();
    pb::Referral {
        referral_id: id_pb(r.hold.as_uuid()),
        provider_id: id_pb(r.provider.as_uuid()),
        service: cv::service_kind_pb(r.service),
        units: r.units,
        party_size: summary.map_or(0, |s| u32::from(s.party_size)),
        age_band: summary.map_or(0, |s| cv::age_band_pb(s.age_band)),
        languages: summary.map_or_else(Vec::new, |s| {
            s.languages.iter().map(|l| l.as_str().to_owned()).collect()
        }),
        accessibility: summary.map_or_else(Vec::new, |s| {
            s.accessibility.iter().map(|a| cv::accessibility_pb(*a)).collect()
        }),
        urgency: summary.map_or(0, |s| cv::urgency_pb(s.urgency)),
        deadline_ms: r.deadline.millis(),
        status: status as i32,
        position: r.position,
    }
}

fn spec(who: &Principal, spec: Option<&pb::ProviderSpec>) -> Result<ProviderProfile, Status> {
    let spec = spec.ok_or_else(|| invalid("spec", "is required"))?;
    let org = match who.role {
        Role::Admin => refer_domain::ids::OrgId::from_uuid(id(&spec.org_id, "spec.org_id")?),
        _ => who.org,
    };
    let mut services = std::collections::BTreeSet::new();
    for s in &spec.services {
        if !services.insert(cv::service_kind(*s, "spec.services")?) {
            return Err(invalid("spec.services", "lists a service twice"));
        }
    }
    let profile = ProviderProfile {
        org,
        name: spec.name.clone(),
        services,
        eligibility: cv::eligibility(spec.eligibility.as_ref(), "spec.eligibility")?,
        location: cv::location(spec.location.as_ref(), "spec.location")?,
        hours: cv::hours(spec.hours.as_ref(), "spec.hours")?,
    };
    profile.validate().map_err(|e| cv::domain_invalid("spec", e))?;
    Ok(profile)
}

fn after_token(token: &str) -> Result<u64, Status> {
    if token.is_empty() {
        Ok(0)
    } else {
        token
            .parse()
            .map_err(|_| invalid("page_token", "is not a token this service issued"))
    }
}

#[tonic::async_trait]
impl Capacity for CapacityService {
    async fn register_provider(
        &self,
        request: Request<pb::RegisterProviderRequest>,
    ) -> Result<Response<pb::Provider>, Status> {
        let who = self.caller(&request)?;
        let r = request.get_ref();
        let key = cv::idempotency_key(&r.idempotency_key)?;
        let provider = id(&r.provider_id, "provider_id")?;
        let profile = spec(&who, r.spec.as_ref())?;
        let done = self
            .store
            .execute::<Provider>(
                provider,
                &ProviderCommand::Register(Box::new(profile)),
                &self.meta(&request, key),
                None,
            )
            .await
            .map_err(store_status)?;
        // A retried registration answers with the stored site: still only to its owner.
        match &done.state.profile {
            Some(p) if who.acts_for(p.org) => Ok(Response::new(provider_view(provider, &done.state, done.version))),
            _ => Err(Status::already_exists("provider_id is taken")),
        }
    }

    async fn get_provider(&self, request: Request<pb::GetProviderRequest>) -> Result<Response<pb::Provider>, Status> {
        let who = self.caller(&request)?;
        let (id, state, version) = self.owned(&who, &request.get_ref().provider_id).await?;
        Ok(Response::new(provider_view(id, &state, version)))
    }

    async fn list_providers(
        &self,
        request: Request<pb::ListProvidersRequest>,
    ) -> Result<Response<pb::ListProvidersResponse>, Status> {
        let who = self.caller(&request)?;
        let r = request.get_ref();
        let size = cv::page_size(r.page_size)?;
        let after = if r.page_token.is_empty() {
            None
        } else {
            Some(id(&r.page_token, "page_token")?)
        };
        let ids: Vec<ProviderId> = {
            let state = self.board.state.read().expect("board lock");
            let mut ids: Vec<ProviderId> = state
                .orgs
                .iter()
                .filter(|(org, _)| who.acts_for(**org))
                .flat_map(|(_, ids)| ids.iter().copied())
                .filter(|p| after.is_none_or(|a| p.as_uuid() > a))
                .collect();
            ids.sort();
            ids.truncate(size + 1);
            ids
        };
        let mut providers = Vec::new();
        for p in ids.iter().take(size) {
            let loaded = self.store.load::<Provider>(p.as_uuid()).await.map_err(store_status)?;
            providers.push(provider_view(p.as_uuid(), &loaded.state, loaded.version));
        }
        let next_page_token = if ids.len() > size {
            id_pb(ids[size - 1].as_uuid())
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListProvidersResponse {
            providers,
            next_page_token,
        }))
    }

    async fn set_capacity(&self, request: Request<pb::SetCapacityRequest>) -> Result<Response<pb::Provider>, Status> {
        let who = self.caller(&request)?;
        let r = request.get_ref();
        let command = ProviderCommand::SetCapacity {
            service: cv::service_kind(r.service, "service")?,
            declared: r.declared,
        };
        let view = self
            .execute(
                &request,
                &who,
                &r.provider_id,
                &r.idempotency_key,
                command,
                r.expected_version,
            )
            .await?;
        Ok(Response::new(view))
    }

    async fn adjust_capacity(
        &self,
        request: Request<pb::AdjustCapacityRequest>,
    ) -> Result<Response<pb::Provider>, Status> {
        let who = self.caller(&request)?;
        let r = request.get_ref();
        if r.delta == 0 {
            return Err(invalid("delta", "must not be zero"));
        }
        let command = ProviderCommand::AdjustCapacity {
            service: cv::service_kind(r.service, "service")?,
            delta: r.delta,
        };
        let view = self
            .execute(&request, &who, &r.provider_id, &r.idempotency_key, command, None)
            .await?;
        Ok(Response::new(view))
    }

    async fn suspend_provider(
        &self,
        request: Request<pb::SuspendProviderRequest>,
    ) -> Result<Response<pb::Provider>, Status> {
        let who = self.caller(&request)?;
        let r = request.get_ref();
        let view = self
            .execute(
                &request,
                &who,
                &r.provider_id,
                &r.idempotency_key,
                ProviderCommand::Suspend,
                None,
            )
            .await?;
        Ok(Response::new(view))
    }

    async fn resume_provider(
        &self,
        request: Request<pb::ResumeProviderRequest>,
    ) -> Result<Response<pb::Provider>, Status> {
        let who = self.caller(&request)?;
        let r = request.get_ref();
        let view = self
            .execute(
                &request,
                &who,
                &r.provider_id,
                &r.idempotency_key,
                ProviderCommand::Resume,
                None,
            )
            .await?;
        Ok(Response::new(view))
    }

    async fn list_referrals(
        &self,
        request: Request<pb::ListReferralsRequest>,
    ) -> Result<Response<pb::ListReferralsResponse>, Status> {
        let who = self.caller(&request)?;
        let r = request.get_ref();
        let size = cv::page_size(r.page_size)?;
        let after = after_token(&r.page_token)?;
        let (pid, _, _) = self.owned(&who, &r.provider_id).await?;
        let mut referrals: Vec<Referral> = self
            .board
            .state
            .read()
            .expect("board lock")
            .referrals_of(ProviderId::from_uuid(pid), after)
            .into_iter()
            .filter(|x| !r.pending_only || x.status == ReferralStatus::Pending)
            .take(size + 1)
            .collect();
        let next_page_token = if referrals.len() > size {
            referrals[size - 1].position.to_string()
        } else {
            String::new()
        };
        referrals.truncate(size);
        Ok(Response::new(pb::ListReferralsResponse {
            referrals: referrals.iter().map(referral_view).collect(),
            next_page_token,
        }))
    }

    type WatchReferralsStream = Watch;

    async fn watch_referrals(&self, request: Request<pb::WatchReferralsRequest>) -> Result<Response<Watch>, Status> {
        let who = self.caller(&request)?;
        let r = request.get_ref();
        let (pid, _, _) = self.owned(&who, &r.provider_id).await?;
        let provider = ProviderId::from_uuid(pid);
        let board = self.board.clone();
        Ok(Response::new(follow(
            self.board.changes.subscribe(),
            r.after_position,
            move |after| board.state.read().expect("board lock").referrals_of(provider, after),
            move |referral: &Referral| referral.provider == provider,
            referral_view,
        )))
    }

    async fn accept_referral(
        &self,
        request: Request<pb::AcceptReferralRequest>,
    ) -> Result<Response<pb::Referral>, Status> {
        let r = request.get_ref();
        let view = self
            .answer(&request, &r.provider_id, &r.referral_id, &r.idempotency_key, None)
            .await?;
        Ok(Response::new(view))
    }

    async fn decline_referral(
        &self,
        request: Request<pb::DeclineReferralRequest>,
    ) -> Result<Response<pb::Referral>, Status> {
        // Authenticate before validating, as every other call does.
        self.caller(&request)?;
        let r = request.get_ref();
        let reason = match pb::DeclineReason::try_from(r.reason) {
            Ok(pb::DeclineReason::NoCapacity) => DeclineReason::NoCapacity,
            Ok(pb::DeclineReason::NotEligible) => DeclineReason::NotEligible,
            Ok(pb::DeclineReason::SafetyConcern) => DeclineReason::SafetyConcern,
            Ok(pb::DeclineReason::Other) => DeclineReason::Other,
            _ => return Err(invalid("reason", "a decline needs a coded reason")),
        };
        let view = self
            .answer(
                &request,
                &r.provider_id,
                &r.referral_id,
                &r.idempotency_key,
                Some(reason),
            )
            .await?;
        Ok(Response::new(view))
    }
}
