//! One need of the agency's: cancel it, or mark it fulfilled.

use crate::board::NeedView;
use crate::views::update_pb;
use crate::IntakeService;
use refer_domain::ids::NeedId;
use refer_domain::need::{Need, NeedCommand, NeedStatus};
use refer_proto::intake::v1 as pb;
use refer_service::convert::id;
use tonic::{Request, Response, Status};

pub async fn cancel(
    service: &IntakeService,
    request: Request<pb::CancelNeedRequest>,
) -> Result<Response<pb::NeedUpdate>, Status> {
    let r = request.get_ref();
    let update = command(service, &request, &r.need_id, &r.idempotency_key, NeedCommand::Cancel).await?;
    Ok(Response::new(update))
}

pub async fn fulfil(
    service: &IntakeService,
    request: Request<pb::FulfilNeedRequest>,
) -> Result<Response<pb::NeedUpdate>, Status> {
    let r = request.get_ref();
    let update = command(service, &request, &r.need_id, &r.idempotency_key, NeedCommand::Fulfil).await?;
    Ok(Response::new(update))
}

/// Runs a command on one of the caller agency's needs.
async fn command<T: prost::Message>(
    service: &IntakeService,
    request: &Request<T>,
    need: &str,
    key: &str,
    command: NeedCommand,
) -> Result<pb::NeedUpdate, Status> {
    let call = service.shell.command(request, key)?;
    let need = id(need, "need_id")?;
    let loaded = service.shell.load::<Need>(need).await?;
    // Another agency's need answers as an unknown one does.
    call.who.sees(loaded.state.request.as_ref().map(|r| r.agency), "need")?;
    let meta = call.bind().await?;
    let done = service.shell.execute::<Need>(need, &command, &meta, None).await?;
    let request = done
        .state
        .request
        .as_ref()
        .ok_or_else(|| Status::unavailable("the need is not readable yet; retry with the same key"))?;
    let accepted = done.state.status == NeedStatus::Accepted;
    let need = NeedId::from_uuid(need);
    let (handoff, timeline, folded) = match service.board.read().needs.get(&need) {
        Some(v) => (v.handoff.clone(), v.timeline.clone(), v.position),
        None => (None, Vec::new(), 0),
    };
    let mut view = NeedView {
        need,
        placement: request.placement,
        kind: request.spec.kind,
        status: done.state.status,
        placed_with: accepted.then_some(done.state.proposal).flatten().map(|p| p.target),
        deadline: None,
        region: request.spec.constraints.origin.region.clone(),
        handoff,
        final_at: None,
        position: done.version,
        held_until: done.state.held_until,
        timeline,
    };
    // The board may not have folded this command's events yet.
    if folded < done.version {
        for envelope in &done.events {
            if let refer_domain::Event::Need(event) = &envelope.event {
                view.record(envelope.occurred_at, event);
            }
        }
    }
    Ok(update_pb(&view))
}
