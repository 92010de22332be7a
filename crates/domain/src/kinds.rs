//! What providers offer, what businesses donate, and which of those serves a need.

use serde::{Deserialize, Serialize};

/// Services that provider partners offer, counted in units (beds, slots).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ServiceKind {
    ShelterBed,
    Counseling,
    Medical,
    Legal,
}

/// Resources that businesses donate, counted in units.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ResourceKind {
    /// One room for one night.
    HotelRoomNight,
    /// A truck or van with a driver, for moving people and belongings.
    Vehicle,
    RentalCar,
    /// Audio/video equipment (for example for recorded interviews).
    AudioVisual,
}

impl ResourceKind {
    /// How people call it ("a donated hotel room"), for hand-offs.
    pub fn described(self) -> &'static str {
        match self {
            Self::HotelRoomNight => "a donated hotel room",
            Self::Vehicle => "a donated vehicle with a driver",
            Self::RentalCar => "a donated rental car",
            Self::AudioVisual => "donated audio/video equipment",
        }
    }

    pub const ALL: [ResourceKind; 4] = [Self::HotelRoomNight, Self::Vehicle, Self::RentalCar, Self::AudioVisual];
}

/// What a person needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum NeedKind {
    /// A safe bed tonight: a shelter bed or a donated hotel room.
    Shelter,
    Counseling,
    Medical,
    Legal,
    /// Getting somewhere safe: a donated vehicle or rental car.
    Transport,
    AudioVisual,
}

impl NeedKind {
    pub const ALL: [NeedKind; 6] = [
        Self::Shelter,
        Self::Counseling,
        Self::Medical,
        Self::Legal,
        Self::Transport,
        Self::AudioVisual,
    ];

    /// The provider service that serves this need, if any.
    pub fn provider_service(self) -> Option<ServiceKind> {
        match self {
            Self::Shelter => Some(ServiceKind::ShelterBed),
            Self::Counseling => Some(ServiceKind::Counseling),
            Self::Medical => Some(ServiceKind::Medical),
            Self::Legal => Some(ServiceKind::Legal),
            Self::Transport | Self::AudioVisual => None,
        }
    }

    /// The donated resources that serve this need.
    pub fn resources(self) -> impl Iterator<Item = ResourceKind> {
        ResourceKind::ALL
            .into_iter()
            .filter(move |r| self.served_by_resource(*r))
    }

    /// Whether a donated resource of `kind` can serve this need.
    pub fn served_by_resource(self, kind: ResourceKind) -> bool {
        matches!(
            (self, kind),
            (Self::Shelter, ResourceKind::HotelRoomNight)
                | (Self::Transport, ResourceKind::Vehicle | ResourceKind::RentalCar)
                | (Self::AudioVisual, ResourceKind::AudioVisual)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_need_has_at_least_one_source() {
        let resources = [
            ResourceKind::HotelRoomNight,
            ResourceKind::Vehicle,
            ResourceKind::RentalCar,
            ResourceKind::AudioVisual,
        ];
        for need in NeedKind::ALL {
            let by_resource = resources.iter().any(|r| need.served_by_resource(*r));
            assert!(need.provider_service().is_some() || by_resource, "{need:?}");
        }
        assert!(NeedKind::Transport.served_by_resource(ResourceKind::Vehicle));
        assert!(!NeedKind::Medical.served_by_resource(ResourceKind::HotelRoomNight));
    }
}
