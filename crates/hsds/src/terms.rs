//! Refer's terms in HSDS: what HSDS 3.1 has no field for (the kinds of
//! service, who a site takes, the site's region, a radius) travels as
//! `attributes`, each a term of the "refer" taxonomy named by its
//! `link_type`; the codes here are the one place that spells them.

use refer_domain::kinds::ServiceKind;
use refer_domain::profile::{Accessibility, AgeBand, Gender};

/// The taxonomy Refer's terms belong to.
pub const TAXONOMY: &str = "refer";

/// `link_type` of each kind of Refer attribute.
pub const SERVICE_KIND: &str = "refer_service_kind";
pub const AGE_BAND: &str = "refer_age_band";
pub const GENDER: &str = "refer_gender";
pub const ACCESSIBILITY: &str = "refer_accessibility";
pub const REGION: &str = "refer_region";
pub const RADIUS_KM: &str = "refer_radius_km";

/// A closed list of codes: each value's code, display name and meaning.
pub trait Term: Sized + Copy + 'static {
    const ALL: &'static [Self];
    fn code(self) -> &'static str;
    fn name(self) -> &'static str;
    fn parse(code: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|t| t.code() == code)
    }
    /// Every code, for an error message.
    fn codes() -> String {
        Self::ALL.iter().map(|t| t.code()).collect::<Vec<_>>().join(", ")
    }
}

impl Term for ServiceKind {
    const ALL: &'static [Self] = &[Self::ShelterBed, Self::Counseling, Self::Medical, Self::Legal];
    fn code(self) -> &'static str {
        match self {
            Self::ShelterBed => "shelter_bed",
            Self::Counseling => "counseling",
            Self::Medical => "medical",
            Self::Legal => "legal",
        }
    }
    fn name(self) -> &'static str {
        match self {
            Self::ShelterBed => "Shelter bed",
            Self::Counseling => "Counseling",
            Self::Medical => "Medical care",
            Self::Legal => "Legal help",
        }
    }
}

/// The unit a capacity of this kind is counted in (`service_capacity.unit.name`).
pub fn unit(kind: ServiceKind) -> &'static str {
    match kind {
        ServiceKind::ShelterBed => "bed",
        ServiceKind::Counseling => "counseling session",
        ServiceKind::Medical => "medical visit",
        ServiceKind::Legal => "legal consultation",
    }
}

/// The kind a unit name counts, read back (case and spaces aside).
pub fn kind_of_unit(name: &str) -> Option<ServiceKind> {
    let name = name.trim().to_ascii_lowercase();
    ServiceKind::ALL.iter().copied().find(|k| unit(*k) == name)
}

impl Term for AgeBand {
    const ALL: &'static [Self] = &[Self::Juvenile, Self::Adult];
    fn code(self) -> &'static str {
        match self {
            Self::Juvenile => "juvenile",
            Self::Adult => "adult",
        }
    }
    fn name(self) -> &'static str {
        match self {
            Self::Juvenile => "Juveniles (under 18)",
            Self::Adult => "Adults (18 and over)",
        }
    }
}

impl Term for Gender {
    const ALL: &'static [Self] = &[Self::Female, Self::Male, Self::NonBinary];
    fn code(self) -> &'static str {
        match self {
            Self::Female => "female",
            Self::Male => "male",
            Self::NonBinary => "non_binary",
        }
    }
    fn name(self) -> &'static str {
        match self {
            Self::Female => "Women and girls",
            Self::Male => "Men and boys",
            Self::NonBinary => "Non-binary people",
        }
    }
}

impl Term for Accessibility {
    const ALL: &'static [Self] = &[
        Self::Wheelchair,
        Self::SignLanguage,
        Self::VisualImpairment,
        Self::ServiceAnimal,
    ];
    fn code(self) -> &'static str {
        match self {
            Self::Wheelchair => "wheelchair",
            Self::SignLanguage => "sign_language",
            Self::VisualImpairment => "visual_impairment",
            Self::ServiceAnimal => "service_animal",
        }
    }
    fn name(self) -> &'static str {
        match self {
            Self::Wheelchair => "Wheelchair accessible",
            Self::SignLanguage => "Sign language",
            Self::VisualImpairment => "For visual impairment",
            Self::ServiceAnimal => "Service animals welcome",
        }
    }
}
