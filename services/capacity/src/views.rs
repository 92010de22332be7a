//! What the capacity service shows on the wire, and the enums it reads.

use crate::board::{Referral, ReferralStatus};
use refer_domain::provider::{Provider, ProviderProfile};
use refer_domain::{Freshness, Timestamp};
use refer_proto::capacity::v1 as pb;
use refer_service::convert::{self as cv, id_pb};
use refer_service::{invalid, Principal};
use tonic::Status;
use uuid::Uuid;

refer_service::enum_map!(referral_status, referral_status_pb, pb::ReferralStatus, ReferralStatus, {
    Pending <=> Pending, Accepted <=> Accepted, Declined <=> Declined, Expired <=> Expired,
    Cancelled <=> Cancelled,
} shown as { Offered => Pending });

/// A site as its owner sees it, with each capacity's age at `now` under
/// the coalition's `freshness` limit.
pub fn provider_view(id: Uuid, state: &Provider, version: u64, freshness: Freshness, now: Timestamp) -> pb::Provider {
    let profile = state.profile.as_ref();
    pb::Provider {
        provider_id: id_pb(id),
        version,
        spec: profile.map(cv::provider_spec_pb),
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
                    as_of_ms: units.as_of.map_or(0, Timestamp::millis),
                    stale: freshness.is_stale(units.as_of, now),
                }
            })
            .collect(),
    }
}

pub fn referral_view(r: &Referral) -> pb::Referral {
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
        status: referral_status_pb(r.status),
        position: r.position,
        handoff: None,
        person: summary.map_or_else(String::new, |s| person_tag(s.placement, r.provider)),
    }
}

/// The same for every referral of one person at one site, and unlike any
/// other: a site sees one card per person. Made of the (random) placement
/// id and the site, so it says nothing of the person and cannot link the
/// person's referrals at two sites.
pub fn person_tag(placement: refer_domain::ids::PlacementId, site: refer_domain::ids::ProviderId) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new()
        .chain_update(b"refer person at a site\0")
        .chain_update(placement.as_uuid().as_bytes())
        .chain_update(site.as_uuid().as_bytes())
        .finalize();
    digest[..12].iter().map(|b| format!("{b:02x}")).collect()
}

/// A site's registration from the wire, for the caller's organisation
/// (an admin names it).
pub fn profile(who: &Principal, spec: Option<&pb::ProviderSpec>) -> Result<ProviderProfile, Status> {
    let spec = spec.ok_or_else(|| invalid("spec", "is required"))?;
    let org = who.registers_for(&spec.org_id, "spec.org_id")?;
    cv::provider_profile(spec, org)
}
