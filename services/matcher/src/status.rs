//! The matcher's RPCs: its status, for admins; reports (`crate::reports`).

use crate::Core;
use refer_domain::need::NeedStatus;
use refer_proto::matcher::v1 as pb;
use refer_proto::matcher::v1::matcher_server::Matcher;
use refer_service::caller;
use refer_service::lease::Fence;
use std::sync::{Arc, Mutex};
use tonic::{Request, Response, Status};

#[derive(Clone)]
pub struct MatcherService {
    pub(crate) core: Arc<Mutex<Core>>,
    pub(crate) checkpoint: Arc<std::sync::atomic::AtomicU64>,
    pub(crate) lease: Fence,
    pub(crate) reports: crate::reports::Reports,
}

#[tonic::async_trait]
impl Matcher for MatcherService {
    async fn get_report(&self, request: Request<pb::GetReportRequest>) -> Result<Response<pb::Report>, Status> {
        self.reports.get(request).await.map(Response::new)
    }

    async fn get_status(&self, request: Request<pb::GetStatusRequest>) -> Result<Response<pb::Status>, Status> {
        caller(&request)?;
        // Counters the planner keeps as it folds: the lock is held for a copy.
        let (providers, donations, tally, (p50, timed), (p90, _), partition) = {
            let core = self.core.lock().expect("core lock");
            let state = &core.state;
            (
                state.providers.len(),
                state.donations.len(),
                state.tally().clone(),
                core.acceptance.percentile(50),
                core.acceptance.percentile(90),
                state.partition().clone(),
            )
        };
        let open_needs = tally
            .needs
            .iter()
            .filter(|(status, _)| !status.is_final())
            .map(|(_, n)| *n)
            .sum();
        let accepted_needs = tally.count(NeedStatus::Accepted);
        Ok(Response::new(pb::Status {
            checkpoint: self.checkpoint.load(std::sync::atomic::Ordering::Relaxed),
            providers: providers as u32,
            donations: donations as u32,
            #[allow(deprecated)]
            open_needs,
            unplaced_needs: open_needs - accepted_needs,
            accepted_needs,
            pending_referrals: tally.count(NeedStatus::Proposed),
            acceptance_p50_ms: p50.unwrap_or(0),
            acceptance_p90_ms: p90.unwrap_or(0),
            acceptance_timed: timed as u32,
            partition: partition.name().unwrap_or_default().to_owned(),
            regions: partition
                .regions()
                .into_iter()
                .flatten()
                .map(|r| r.as_str().to_owned())
                .collect(),
            leading: self.lease.held(),
            waitlist: tally
                .waitlist
                .into_iter()
                .map(|((kind, region), needs)| pb::WaitlistCount {
                    kind: refer_service::convert::need_kind_pb(kind),
                    region,
                    needs,
                })
                .collect(),
        }))
    }
}
