//! Sealed text at the edge: what intake and capacity share through
//! `crates/sealed`. Plaintext is checked here (size, printable), sealed for
//! one purpose, and opened for views; an erased item reads as erased, never
//! as an error. No sealed content ever reaches a log line or a status.

use crate::invalid;
use refer_domain::sealed::{Sealed, MAX_SEALED_TEXT};
use refer_sealed::{SealError, Vault};
use tonic::Status;

/// What a view shows of a sealed item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Opened {
    Text(String),
    /// Its key was erased: the content is gone for good.
    Erased,
}

/// A store failure as a status: the message names the item kind, never content.
pub fn sealed_status(err: SealError) -> Status {
    match err {
        SealError::Unavailable(e) => Status::unavailable(format!("sealed-data store unavailable: {e}; retry")),
        other => {
            tracing::error!(error = %other, "sealed-data store error");
            Status::internal("sealed data could not be read or written; see the service log")
        }
    }
}

/// Runs a call to the sealed-data store again while its bucket does not
/// answer (the node leading it died: an election), for at most
/// `refer_eventstore::RIDE_OUT`, as the event store does. `again` says
/// which failures may be retried: a read or an erase, any; a new item's
/// write only one the bus refused ("no responders": nothing was written,
/// where a timeout may have written a key that nothing would then name).
async fn riding_out<T, Fut>(again: fn(&str) -> bool, call: impl Fn() -> Fut) -> Result<T, SealError>
where
    Fut: std::future::Future<Output = Result<T, SealError>>,
{
    let started = std::time::Instant::now();
    loop {
        match call().await {
            Err(SealError::Unavailable(why)) if again(&why) && started.elapsed() < refer_eventstore::RIDE_OUT => {
                tracing::debug!(error = %why, "sealed-data store not answering; trying again");
                tokio::time::sleep(std::time::Duration::from_millis(150)).await;
            }
            other => return other,
        }
    }
}

fn any(_: &str) -> bool {
    true
}

fn refused(why: &str) -> bool {
    why.contains("no responders")
}

/// Checks text to be sealed: 1 to `MAX_SEALED_TEXT` bytes, no control
/// characters but line breaks.
pub fn text(value: &str, field: &str) -> Result<String, Status> {
    let value = value.trim();
    if value.is_empty() {
        return Err(invalid(field, "is required"));
    }
    if value.len() > MAX_SEALED_TEXT {
        return Err(invalid(field, format!("must be at most {MAX_SEALED_TEXT} bytes")));
    }
    if value.chars().any(|c| c.is_control() && c != '\n') {
        return Err(invalid(field, "must be printable text (line breaks allowed)"));
    }
    Ok(value.to_owned())
}

/// Seals `text` as a fresh item of `kind` for `purpose`.
pub async fn seal(vault: &Vault, kind: &str, text: &str, purpose: &str) -> Result<Sealed, Status> {
    riding_out(refused, || vault.seal_text(kind, text, purpose))
        .await
        .map_err(sealed_status)
}

/// Opens `sealed` for `purpose`; an erased item is `Opened::Erased`.
pub async fn open(vault: &Vault, sealed: &Sealed, purpose: &str) -> Result<Opened, Status> {
    match riding_out(any, || vault.open_text(sealed, purpose)).await {
        Ok(text) => Ok(Opened::Text(text)),
        Err(SealError::Erased(_)) => Ok(Opened::Erased),
        Err(err) => Err(sealed_status(err)),
    }
}

/// Erases every item named, for good (erasing twice is fine).
pub async fn erase(vault: &Vault, items: impl IntoIterator<Item = &str>) -> Result<(), Status> {
    for item in items {
        riding_out(any, || vault.erase(item)).await.map_err(sealed_status)?;
    }
    Ok(())
}

/// What each sealed item is bound to (authenticated with it): an item
/// opened for any other purpose fails, so ciphertext cannot be moved from
/// one placement, need or party to another. Intake and capacity agree here.
pub mod purpose {
    use refer_domain::ids::{DonationId, NeedId, OrgId, PlacementId, ProviderId};

    pub fn case_reference(placement: PlacementId) -> String {
        format!("case/{placement}")
    }
    /// A provider's hand-off for the agency that requested `need`.
    pub fn handoff(need: NeedId) -> String {
        format!("handoff/{need}")
    }
    /// A consented note for the provider that accepts `need`.
    pub fn note(need: NeedId) -> String {
        format!("note/{need}")
    }
    pub fn agency_contact(agency: OrgId) -> String {
        format!("contact/{agency}")
    }
    pub fn site_default(site: ProviderId) -> String {
        format!("site/{site}")
    }
    pub fn donation(donation: DonationId) -> String {
        format!("donation/{donation}")
    }
}

/// A hand-off as sealed for the agency: the accepting site's display name
/// and the instructions (where to bring the person, who meets them).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HandoffText {
    pub site_name: String,
    pub instructions: String,
}

/// Seals a hand-off for the agency that requested `need`.
pub async fn seal_handoff(
    vault: &Vault,
    need: refer_domain::ids::NeedId,
    handoff: &HandoffText,
) -> Result<Sealed, Status> {
    let bytes = postcard::to_stdvec(handoff).expect("a hand-off encodes");
    let (item, purpose) = (refer_sealed::item("handoff"), purpose::handoff(need));
    riding_out(refused, || vault.seal(&item, &bytes, purpose.as_bytes()))
        .await
        .map_err(sealed_status)
}

/// Opens a hand-off; `None` once erased.
pub async fn open_handoff(
    vault: &Vault,
    need: refer_domain::ids::NeedId,
    sealed: &Sealed,
) -> Result<Option<HandoffText>, Status> {
    let purpose = purpose::handoff(need);
    match riding_out(any, || vault.open_sealed(sealed, purpose.as_bytes())).await {
        Ok(bytes) => postcard::from_bytes(&bytes)
            .map(Some)
            .map_err(|_| sealed_status(SealError::Tampered(sealed.item.clone()))),
        Err(SealError::Erased(_)) => Ok(None),
        Err(err) => Err(sealed_status(err)),
    }
}

/// Whether a command's result proves that what it carried was not written:
/// a retry answered with the earlier commit, a command that changed nothing,
/// or one the domain refused. Only then is an item sealed for it erased
/// again; after any other error (the bus went away, the ack was lost) it may
/// have landed, and its key must stay.
pub fn unwritten<A>(result: &Result<refer_eventstore::Executed<A>, refer_eventstore::StoreError>) -> bool {
    match result {
        Ok(done) => done.outcome != refer_eventstore::Outcome::Applied,
        Err(refer_eventstore::StoreError::Domain(_)) => true,
        Err(_) => false,
    }
}

/// Sets a standing hand-off (an agency's contact, a site's default) to
/// `text`, sealed for `purpose`: the replaced text's key is erased once the
/// new one is recorded; a retried request (same key) leaves no stray key.
pub async fn set_standing(
    store: &refer_eventstore::EventStore,
    vault: &Vault,
    owner: refer_domain::standing::Owner,
    text: &str,
    purpose: &str,
    meta: &refer_domain::CommandMeta,
) -> Result<(), Status> {
    use refer_domain::standing::{Standing, StandingCommand};
    let before = store
        .load::<Standing>(owner.id())
        .await
        .map_err(crate::store_status)?
        .state
        .text;
    let sealed = seal(vault, "standing", text, purpose).await?;
    let command = StandingCommand::Set {
        owner,
        text: sealed.clone(),
    };
    let done = store.execute::<Standing>(owner.id(), &command, meta, None).await;
    if unwritten(&done) {
        erase(vault, [sealed.item.as_str()]).await?;
    }
    let done = done.map_err(crate::store_status)?;
    if done.outcome == refer_eventstore::Outcome::Applied {
        if let Some(old) = before.filter(|old| old.item != sealed.item) {
            erase(vault, [old.item.as_str()]).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::unwritten;
    use refer_eventstore::{Executed, Outcome, StoreError};

    fn done(outcome: Outcome) -> Result<Executed<()>, StoreError> {
        Ok(Executed {
            state: (),
            version: 1,
            events: vec![],
            outcome,
        })
    }

    #[test]
    fn a_sealed_item_is_erased_again_only_when_its_command_surely_wrote_nothing() {
        assert!(!unwritten(&done(Outcome::Applied)));
        assert!(unwritten(&done(Outcome::Duplicate)));
        assert!(unwritten(&done(Outcome::NoChange)));
        assert!(unwritten::<()>(&Err(StoreError::Domain(
            refer_domain::DomainError::NotRegistered
        ))));
        // The ack may have been lost after the commit landed: keep the key.
        assert!(!unwritten::<()>(&Err(StoreError::Unavailable("gone".into()))));
    }
}
