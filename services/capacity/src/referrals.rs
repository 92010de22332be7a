//! Referrals sent to a site: list, watch, accept, decline.

use crate::board::{Referral, ReferralStatus};
use crate::views::{decline_reason, referral_view};
use crate::{settle_key, CapacityService};
use refer_domain::ids::{HoldId, ProviderId};
use refer_domain::need::{DeclineReason, Need, NeedCommand, Target};
use refer_domain::provider::{Provider, ProviderCommand, ReleaseReason};
use refer_domain::{CommandMeta, DomainError};
use refer_eventstore::{retry_races, Executed, Part, StoreError};
use refer_proto::capacity::v1 as pb;
use refer_service::convert::{self as cv, id};
use refer_service::watch::WatchStream;
use refer_service::{caller, page, store_status};
use tonic::{Request, Response, Status};

pub async fn list(
    service: &CapacityService,
    request: Request<pb::ListReferralsRequest>,
) -> Result<Response<pb::ListReferralsResponse>, Status> {
    let who = caller(&request)?;
    let r = request.get_ref();
    let size = page::size(r.page_size)?;
    let after: u64 = page::after(&r.page_token)?.unwrap_or(0);
    let (pid, _, _) = service.owned(&who, &r.provider_id).await?;
    let referrals: Vec<Referral> = service
        .board
        .read()
        .referrals_of(ProviderId::from_uuid(pid), after)
        .into_iter()
        .filter(|x| !r.pending_only || x.status == ReferralStatus::Pending)
        .take(size + 1)
        .collect();
    let (referrals, next_page_token) = page::cut(referrals, size, |r| r.position);
    Ok(Response::new(pb::ListReferralsResponse {
        referrals: referrals.iter().map(referral_view).collect(),
        next_page_token,
    }))
}

pub async fn watch(
    service: &CapacityService,
    request: Request<pb::WatchReferralsRequest>,
) -> Result<Response<WatchStream<pb::Referral>>, Status> {
    let who = caller(&request)?;
    let r = request.get_ref();
    let (pid, _, _) = service.owned(&who, &r.provider_id).await?;
    let provider = ProviderId::from_uuid(pid);
    Ok(Response::new(service.board.watch(
        r.after_position,
        move |board, after| board.referrals_of(provider, after),
        move |referral: &Referral| referral.provider == provider,
        referral_view,
    )))
}

pub async fn accept(
    service: &CapacityService,
    request: Request<pb::AcceptReferralRequest>,
) -> Result<Response<pb::Referral>, Status> {
    let r = request.get_ref();
    let view = answer(
        service,
        &request,
        &r.provider_id,
        &r.referral_id,
        &r.idempotency_key,
        None,
    )
    .await?;
    Ok(Response::new(view))
}

pub async fn decline(
    service: &CapacityService,
    request: Request<pb::DeclineReferralRequest>,
) -> Result<Response<pb::Referral>, Status> {
    let r = request.get_ref();
    let reason = decline_reason(r.reason, "reason")?;
    let view = answer(
        service,
        &request,
        &r.provider_id,
        &r.referral_id,
        &r.idempotency_key,
        Some(reason),
    )
    .await?;
    Ok(Response::new(view))
}

/// Accepts (no reason) or declines a referral.
async fn answer<T: prost::Message>(
    service: &CapacityService,
    request: &Request<T>,
    provider: &str,
    referral: &str,
    key: &str,
    decline: Option<DeclineReason>,
) -> Result<pb::Referral, Status> {
    let who = caller(request)?;
    let key = cv::idempotency_key(key)?;
    let (pid, state, _) = service.owned(&who, provider).await?;
    let hold = HoldId::from_uuid(id(referral, "referral_id")?);
    service.keys.bind(&who, &key, request.get_ref())?;
    let known = service.board.read().referrals.get(&hold).cloned();
    // The hold names the need while pending; afterwards the board still
    // knows it, so a retried answer finds its idempotency record.
    let need = match (state.holds.get(&hold), &known) {
        (Some(h), _) => h.need,
        (None, Some(r)) if r.provider == ProviderId::from_uuid(pid) => r.need,
        _ => return Err(Status::not_found("no such referral at this provider")),
    };
    let by = Target::Provider(ProviderId::from_uuid(pid));
    let meta = service.meta(request, key);
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
    let store = &service.store;
    let (command, follow_up, meta, settle) = (&command, &follow_up, &meta, &settle);
    let answered = retry_races(|attempt| async move {
        let answer = store
            .prepare::<Need>(need.as_uuid(), std::slice::from_ref(command), meta, attempt)
            .await?;
        let settling = match store
            .prepare::<Provider>(pid, std::slice::from_ref(follow_up), settle, attempt)
            .await
        {
            Ok(settling) => Some(settling),
            Err(StoreError::Domain(_)) => None,
            Err(err) => return Err(err),
        };
        let mut parts: Vec<&dyn Part> = vec![&answer];
        parts.extend(settling.iter().map(|p| p as &dyn Part));
        let seqs = store.commit_atomic(&parts).await?;
        if let Some(settling) = settling {
            store.finish(settling, seqs[1])?;
        }
        store.finish(answer, seqs[0])
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
