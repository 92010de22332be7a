//! Workloads as gRPC requests: the seeded scenarios of `refer_matching`
//! turned into registrations, capacity updates and placement requests, and
//! the machinery to send them concurrently and to watch referrals arrive.

use crate::cluster::{provider_org, provider_token, PROVIDER_ORGS};
use crate::stats::Timeline;
use futures::stream::{self, StreamExt};
use refer_client::tokens::authed;
use refer_client::wire as cv;
use refer_domain::ids::{NeedId, ProviderId};
use refer_domain::request::NeedSpec;
use refer_matching::{DonatedResource, Instance, ProviderSite};
use refer_proto::capacity::v1 as cap;
use refer_proto::capacity::v1::capacity_client::CapacityClient;
use refer_proto::donations::v1 as don;
use refer_proto::intake::v1 as intake;
use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tonic::transport::Channel;

/// The organisation (and token) that runs provider site number `i`.
pub fn site_org(i: usize) -> usize {
    i % PROVIDER_ORGS
}

pub fn register_provider(i: usize, site: &ProviderSite) -> cap::RegisterProviderRequest {
    cap::RegisterProviderRequest {
        idempotency_key: format!("bench-register-{}", site.id),
        provider_id: site.id.as_uuid().to_string(),
        spec: Some(cap::ProviderSpec {
            org_id: provider_org(site_org(i)).as_uuid().to_string(),
            name: format!("Site {i}"),
            services: site.free.keys().map(|s| cv::service_kind_pb(*s)).collect(),
            eligibility: Some(cv::eligibility_pb(&site.eligibility)),
            location: Some(cv::location_pb(&site.location)),
            hours: Some(cv::hours_pb(&site.hours)),
        }),
    }
}

pub fn set_capacity(site: &ProviderSite, key: &str) -> Vec<cap::SetCapacityRequest> {
    site.free
        .iter()
        .map(|(service, units)| cap::SetCapacityRequest {
            idempotency_key: format!("bench-{key}-{}-{}", site.id, cv::service_kind_pb(*service)),
            provider_id: site.id.as_uuid().to_string(),
            service: cv::service_kind_pb(*service),
            declared: *units,
            expected_version: None,
        })
        .collect()
}

pub fn register_donation(d: &DonatedResource) -> don::RegisterDonationRequest {
    don::RegisterDonationRequest {
        idempotency_key: format!("bench-donate-{}", d.id),
        donation_id: d.id.as_uuid().to_string(),
        spec: Some(don::DonationSpec {
            org_id: crate::cluster::BUSINESS_ORG.as_uuid().to_string(),
            kind: cv::resource_kind_pb(d.kind),
            quantity: d.free.max(1),
            window: Some(cv::time_window_pb(&d.window)),
            location: Some(cv::location_pb(&d.location)),
            max_units_per_need: d.max_units_per_need.unwrap_or(0),
            eligibility: Some(cv::eligibility_pb(&d.eligibility)),
        }),
    }
}

/// One person with all their needs, as intake sends it.
pub fn person(key: &str, spec: &NeedSpec, kinds: &[refer_domain::kinds::NeedKind]) -> intake::RequestPlacementRequest {
    intake::RequestPlacementRequest {
        idempotency_key: format!("bench-person-{}{key}", crate::cluster::run_tag()),
        person: Some(intake::PersonRequest {
            case_reference: format!("BENCH-{key}"),
            profile: Some(cv::profile_pb(&spec.profile)),
            constraints: Some(cv::constraints_pb(&spec.constraints)),
            urgency: cv::urgency_pb(spec.urgency),
            needs: kinds.iter().map(|k| cv::need_kind_pb(*k)).collect(),
        }),
    }
}

/// The instance's people, each with their needs, in arrival order.
pub fn people(instance: &Instance, prefix: &str) -> Vec<intake::RequestPlacementRequest> {
    let mut order = Vec::new();
    let mut kinds: BTreeMap<_, Vec<_>> = BTreeMap::new();
    let mut spec = BTreeMap::new();
    for need in &instance.needs {
        if !kinds.contains_key(&need.placement) {
            order.push(need.placement);
            spec.insert(need.placement, need.spec.clone());
        }
        kinds.entry(need.placement).or_default().push(need.spec.kind);
    }
    order
        .iter()
        .enumerate()
        .map(|(i, p)| person(&format!("{prefix}-{i}"), &spec[p], &kinds[p]))
        .collect()
}

/// The referral id the matcher gives a need's first proposal.
pub fn first_referral(need: &str) -> Option<String> {
    let need = NeedId::from_uuid(need.parse().ok()?);
    Some(cv::id_pb(refer_matching::planner::hold_id(need, 1).as_uuid()))
}

/// Runs `count` commands, at most `concurrency` at a time; returns the
/// elapsed time, the failures (with one sample message) and completions over time.
pub async fn run<F, Fut>(count: usize, concurrency: usize, command: F) -> Outcome
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<(), tonic::Status>>,
{
    let started = Instant::now();
    let mut outcome = Outcome::default();
    let mut done = stream::iter(0..count)
        .map(&command)
        .buffer_unordered(concurrency.max(1));
    while let Some(result) = done.next().await {
        match result {
            Ok(()) => {
                outcome.ok += 1;
                outcome.timeline.count(started.elapsed());
            }
            Err(status) => {
                outcome.failed += 1;
                outcome.first_error.get_or_insert_with(|| status.to_string());
            }
        }
    }
    outcome.elapsed = started.elapsed();
    outcome
}

#[derive(Debug, Default)]
pub struct Outcome {
    pub ok: usize,
    pub failed: usize,
    pub first_error: Option<String>,
    pub elapsed: Duration,
    pub timeline: Timeline,
}

impl Outcome {
    pub fn per_second(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn describe(&self) -> String {
        let mut text = format!(
            "{} ok in {:.2} s = {:.0}/s",
            self.ok,
            self.elapsed.as_secs_f64(),
            self.per_second()
        );
        if self.failed > 0 {
            text.push_str(&format!(
                "; {} failed (first: {})",
                self.failed,
                self.first_error.as_deref().unwrap_or("")
            ));
        }
        text
    }
}

/// Pending referrals as they reach providers: (referral id, when it arrived).
pub type Arrivals = mpsc::UnboundedReceiver<(String, Instant)>;

/// Watches the referrals of every site in `sites` (index, id), as their
/// organisations would, and reports each new pending referral.
pub fn watch(capacity: &CapacityClient<Channel>, sites: &[(usize, ProviderId)]) -> Arrivals {
    let (tx, rx) = mpsc::unbounded_channel();
    for (i, id) in sites {
        let mut client = capacity.clone();
        let tx = tx.clone();
        let request = cap::WatchReferralsRequest {
            provider_id: id.as_uuid().to_string(),
            after_position: 0,
        };
        let token = provider_token(site_org(*i));
        tokio::spawn(async move {
            let Ok(response) = client.watch_referrals(authed(&token, request)).await else {
                return;
            };
            let mut referrals = response.into_inner();
            while let Some(Ok(referral)) = referrals.next().await {
                if referral.status == cap::ReferralStatus::Pending as i32
                    && tx.send((referral.referral_id, Instant::now())).is_err()
                {
                    return;
                }
            }
        });
    }
    rx
}
