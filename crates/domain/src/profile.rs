//! A person's profile for matching. It has no identity by construction: no name,
//! no birth date, no address, no free text. Only what eligibility needs.

use crate::error::DomainError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AgeBand {
    Juvenile,
    Adult,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Gender {
    Female,
    Male,
    NonBinary,
}

/// Accessibility a person needs, or a site offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Accessibility {
    Wheelchair,
    SignLanguage,
    VisualImpairment,
    ServiceAnimal,
}

/// An ISO 639 language code: two or three lower-case letters (`en`, `es`, `tgl`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Language(String);

impl Language {
    pub fn new(code: impl Into<String>) -> Result<Self, DomainError> {
        let lang = Self(code.into());
        lang.validate("language")?;
        Ok(lang)
    }
    pub fn validate(&self, field: &str) -> Result<(), DomainError> {
        if (2..=3).contains(&self.0.len()) && self.0.bytes().all(|b| b.is_ascii_lowercase()) {
            Ok(())
        } else {
            Err(DomainError::invalid(
                field,
                "must be an ISO 639 code of 2-3 lower-case letters",
            ))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The largest party one request may hold (a parent with several children).
pub const MAX_PARTY_SIZE: u16 = 12;

/// Who needs help, described only as far as matching requires.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    pub age_band: AgeBand,
    pub gender: Gender,
    /// Languages the person speaks; a site must share at least one.
    pub languages: BTreeSet<Language>,
    pub accessibility: BTreeSet<Accessibility>,
    /// People placed together: a mother with two children needs three beds.
    pub party_size: u16,
}

/// The most languages a profile lists.
pub const MAX_LANGUAGES: usize = 8;

impl Profile {
    pub fn validate(&self, field: &str) -> Result<(), DomainError> {
        if self.languages.is_empty() || self.languages.len() > MAX_LANGUAGES {
            return Err(DomainError::invalid(
                format!("{field}.languages"),
                format!("must list 1 to {MAX_LANGUAGES} languages"),
            ));
        }
        for lang in &self.languages {
            lang.validate(&format!("{field}.languages"))?;
        }
        if self.party_size == 0 || self.party_size > MAX_PARTY_SIZE {
            return Err(DomainError::invalid(
                format!("{field}.party_size"),
                format!("must be 1 to {MAX_PARTY_SIZE}"),
            ));
        }
        Ok(())
    }
}
