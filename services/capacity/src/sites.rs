//! Sites and their capacity: register, read, list, set, adjust, suspend, resume.

use crate::views::{profile, provider_view};
use crate::CapacityService;
use refer_domain::ids::ProviderId;
use refer_domain::provider::{Provider, ProviderCommand, MAX_UNITS};
use refer_domain::standing::Owner;
use refer_proto::capacity::v1 as pb;
use refer_service::convert::{self as cv, id};
use refer_service::reads::{About, ItemKind};
use refer_service::sealing;
use refer_service::{caller, invalid, page, Principal};
use tonic::{Request, Response, Status};
use uuid::Uuid;

impl CapacityService {
    /// A site's view now, its capacities' ages judged by the coalition's limit.
    pub(crate) fn view(&self, id: Uuid, state: &Provider, version: u64) -> pb::Provider {
        provider_view(id, state, version, self.shell.freshness, self.shell.clock.now())
    }

    /// Loads a site the caller may act for: NOT_FOUND if unknown or run by
    /// another organisation, in the same words.
    pub(crate) async fn owned(&self, who: &Principal, provider: &str) -> Result<(Uuid, Provider, u64), Status> {
        let id = id(provider, "provider_id")?;
        let loaded = self.shell.load::<Provider>(id).await?;
        who.sees(loaded.state.profile.as_ref().map(|p| p.org), "provider")?;
        Ok((id, loaded.state, loaded.version))
    }

    /// Runs `command` on one of the caller's sites.
    async fn execute<T: prost::Message>(
        &self,
        request: &Request<T>,
        provider: &str,
        key: &str,
        command: ProviderCommand,
        expected: Option<u64>,
    ) -> Result<Response<pb::Provider>, Status> {
        let call = self.shell.command(request, key)?;
        let (id, _, _) = self.owned(&call.who, provider).await?;
        let meta = call.bind().await?;
        let done = self.shell.execute::<Provider>(id, &command, &meta, expected).await?;
        Ok(Response::new(self.view(id, &done.state, done.version)))
    }
}

pub async fn register(
    service: &CapacityService,
    request: Request<pb::RegisterProviderRequest>,
) -> Result<Response<pb::Provider>, Status> {
    let r = request.get_ref();
    let call = service.shell.command(&request, &r.idempotency_key)?;
    let provider = id(&r.provider_id, "provider_id")?;
    let profile = profile(&call.who, r.spec.as_ref())?;
    let meta = call.bind().await?;
    let register = ProviderCommand::Register(Box::new(profile));
    let done = service
        .shell
        .execute::<Provider>(provider, &register, &meta, None)
        .await?;
    // A retried registration answers with the stored site: still only to its owner.
    match &done.state.profile {
        Some(p) if call.who.acts_for(p.org) => Ok(Response::new(service.view(provider, &done.state, done.version))),
        _ => Err(Status::already_exists("provider_id is taken")),
    }
}

pub async fn update(
    service: &CapacityService,
    request: Request<pb::UpdateProviderRequest>,
) -> Result<Response<pb::Provider>, Status> {
    let r = request.get_ref();
    let who = caller(&request)?;
    let command = ProviderCommand::UpdateProfile(Box::new(profile(&who, r.spec.as_ref())?));
    service
        .execute(
            &request,
            &r.provider_id,
            &r.idempotency_key,
            command,
            r.expected_version,
        )
        .await
}

pub async fn get(
    service: &CapacityService,
    request: Request<pb::GetProviderRequest>,
) -> Result<Response<pb::Provider>, Status> {
    let who = caller(&request)?;
    let (id, state, version) = service.owned(&who, &request.get_ref().provider_id).await?;
    Ok(Response::new(service.view(id, &state, version)))
}

pub async fn list(
    service: &CapacityService,
    request: Request<pb::ListProvidersRequest>,
) -> Result<Response<pb::ListProvidersResponse>, Status> {
    let who = caller(&request)?;
    let r = request.get_ref();
    let size = page::size(r.page_size)?;
    let after: Option<ProviderId> = page::after(&r.page_token)?;
    let ids = page::owned_ids(&service.board.read().orgs, &who, after, size);
    let (ids, next_page_token) = page::cut(ids, size, |p| *p);
    let mut providers = Vec::new();
    for p in ids {
        let loaded = service.shell.load::<Provider>(p.as_uuid()).await?;
        providers.push(service.view(p.as_uuid(), &loaded.state, loaded.version));
    }
    Ok(Response::new(pb::ListProvidersResponse {
        providers,
        next_page_token,
    }))
}

pub async fn set(
    service: &CapacityService,
    request: Request<pb::SetCapacityRequest>,
) -> Result<Response<pb::Provider>, Status> {
    let r = request.get_ref();
    if r.declared > MAX_UNITS {
        return Err(invalid("declared", format!("must be at most {MAX_UNITS}")));
    }
    let command = ProviderCommand::SetCapacity {
        service: cv::service_kind(r.service, "service")?,
        declared: r.declared,
    };
    service
        .execute(
            &request,
            &r.provider_id,
            &r.idempotency_key,
            command,
            r.expected_version,
        )
        .await
}

pub async fn adjust(
    service: &CapacityService,
    request: Request<pb::AdjustCapacityRequest>,
) -> Result<Response<pb::Provider>, Status> {
    let r = request.get_ref();
    if r.delta == 0 || r.delta.unsigned_abs() > MAX_UNITS {
        return Err(invalid(
            "delta",
            format!("must be non-zero and at most {MAX_UNITS} either way"),
        ));
    }
    let command = ProviderCommand::AdjustCapacity {
        service: cv::service_kind(r.service, "service")?,
        delta: r.delta,
    };
    service
        .execute(&request, &r.provider_id, &r.idempotency_key, command, None)
        .await
}

pub async fn suspend(
    service: &CapacityService,
    request: Request<pb::SuspendProviderRequest>,
) -> Result<Response<pb::Provider>, Status> {
    let r = request.get_ref();
    service
        .execute(
            &request,
            &r.provider_id,
            &r.idempotency_key,
            ProviderCommand::Suspend,
            None,
        )
        .await
}

pub async fn resume(
    service: &CapacityService,
    request: Request<pb::ResumeProviderRequest>,
) -> Result<Response<pb::Provider>, Status> {
    let r = request.get_ref();
    service
        .execute(
            &request,
            &r.provider_id,
            &r.idempotency_key,
            ProviderCommand::Resume,
            None,
        )
        .await
}

/// Registers the site's default hand-off, sealed (shown only to an agency
/// whose referral the site accepted).
pub async fn set_handoff(
    service: &CapacityService,
    request: Request<pb::SetSiteHandoffRequest>,
) -> Result<Response<pb::SiteHandoff>, Status> {
    let r = request.get_ref();
    let call = service.shell.command(&request, &r.idempotency_key)?;
    let (id, state, _) = service.owned(&call.who, &r.provider_id).await?;
    let instructions = sealing::text(&r.instructions, "instructions")?;
    let meta = call.bind().await?;
    let site = ProviderId::from_uuid(id);
    let purpose = sealing::purpose::site_default(site);
    let about = About {
        kind: ItemKind::SiteHandoff,
        of: id,
        owner: crate::referrals::site_org(&state),
    };
    // An admin may set it, never be shown it.
    let instructions = sealing::set_standing(
        &service.shell,
        &call.who,
        Owner::Site(site),
        &instructions,
        &purpose,
        &meta,
        about,
    )
    .await?;
    Ok(Response::new(pb::SiteHandoff {
        provider_id: cv::id_pb(id),
        instructions,
    }))
}
