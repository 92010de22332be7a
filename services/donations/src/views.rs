//! What the donations service shows on the wire, and what it reads from it.

use refer_domain::donation::{Donation, DonationOffer};
use refer_domain::Timestamp;
use refer_proto::donations::v1 as pb;
use refer_service::convert::{self as cv, id_pb};
use refer_service::{invalid, Principal};
use tonic::Status;
use uuid::Uuid;

pub fn donation_view(id: Uuid, state: &Donation, version: u64, usage: &[(Timestamp, u32)]) -> pb::Donation {
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
        usage: usage
            .iter()
            .map(|(at, units)| pb::Usage {
                at_ms: at.millis(),
                units: *units,
            })
            .collect(),
        as_of_ms: state.as_of.map_or(0, Timestamp::millis),
    }
}

/// A donation's offer from the wire, for the caller's organisation (an
/// admin names it).
pub fn offer(who: &Principal, spec: Option<&pb::DonationSpec>) -> Result<DonationOffer, Status> {
    let spec = spec.ok_or_else(|| invalid("spec", "is required"))?;
    let org = who.registers_for(&spec.org_id, "spec.org_id")?;
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
