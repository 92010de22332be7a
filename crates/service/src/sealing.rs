//! Sealed text at the edge: what intake and capacity share through
//! `crates/sealed`. Plaintext is checked here (size, printable), sealed for
//! one purpose, and opened for views; an erased item reads as erased, never
//! as an error. No sealed content ever reaches a log line or a status.

use crate::invalid;
use crate::reads::{About, ItemKind, Trail};
use refer_domain::sealed::{Sealed, MAX_SEALED_TEXT};
use refer_sealed::{SealError, Vault};
use tonic::Status;

/// What a view shows of a sealed item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Opened<T = String> {
    Text(T),
    /// Its key was erased: the content is gone for good.
    Erased,
    /// Not opened: the caller (an admin) is never shown sealed content.
    Withheld,
}

impl Opened {
    /// The text, or nothing (erased or withheld).
    pub fn text(self) -> Option<String> {
        match self {
            Self::Text(text) => Some(text),
            Self::Erased | Self::Withheld => None,
        }
    }
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
/// characters but line breaks. A browser submits a textarea's line breaks
/// as CRLF: those become LF; any other carriage return is refused.
pub fn text(value: &str, field: &str) -> Result<String, Status> {
    let value = value.replace("\r\n", "\n");
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

/// Opens `sealed` for `purpose` to show it in an answer for the reader of
/// `trail`, which records the read; an erased item is `Opened::Erased`.
/// Nothing is opened for an admin (`Opened::Withheld`).
pub async fn open(
    vault: &Vault,
    sealed: &Sealed,
    purpose: &str,
    trail: &mut Trail,
    about: About,
) -> Result<Opened, Status> {
    if !trail.shows_content() {
        return Ok(Opened::Withheld);
    }
    open_to_copy(vault, sealed, purpose, trail, about).await
}

/// Opens `sealed` to copy it into another sealed item (a site's default
/// into the hand-off of an acceptance), on behalf of the reader of `trail`,
/// who may be an admin: it is not shown to them. The read is recorded.
pub async fn open_to_copy(
    vault: &Vault,
    sealed: &Sealed,
    purpose: &str,
    trail: &mut Trail,
    about: About,
) -> Result<Opened, Status> {
    match riding_out(any, || vault.open_text(sealed, purpose)).await {
        Ok(text) => {
            trail.read(&sealed.item, about);
            Ok(Opened::Text(text))
        }
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

/// Opens the hand-off given for `need` by a site of `provider` (its
/// owner), for the reader of `trail` (recorded; withheld from an admin).
pub async fn open_handoff(
    vault: &Vault,
    need: refer_domain::ids::NeedId,
    provider: refer_domain::ids::OrgId,
    sealed: &Sealed,
    trail: &mut Trail,
) -> Result<Opened<HandoffText>, Status> {
    if !trail.shows_content() {
        return Ok(Opened::Withheld);
    }
    let purpose = purpose::handoff(need);
    match riding_out(any, || vault.open_sealed(sealed, purpose.as_bytes())).await {
        Ok(bytes) => {
            let text =
                postcard::from_bytes(&bytes).map_err(|_| sealed_status(SealError::Tampered(sealed.item.clone())))?;
            trail.read(
                &sealed.item,
                About {
                    kind: ItemKind::Handoff,
                    of: need.as_uuid(),
                    owner: provider,
                },
            );
            Ok(Opened::Text(text))
        }
        Err(SealError::Erased(_)) => Ok(Opened::Erased),
        Err(err) => Err(sealed_status(err)),
    }
}

/// Whether a command's result proves that what it carried was not written:
/// a retry answered with the earlier commit, a command that changed nothing,
/// or one the domain refused. Only then is an item sealed for it erased
/// again; after any other error (the bus went away, the ack was lost) it may
/// have landed, and its key must stay.
pub fn unwritten<A>(result: &Result<refer_eventstore::Executed<A>, refer_eventstore::StoreError>) -> bool {
    unwritten_by(result.as_ref().map(|done| done.outcome))
}

/// The rule of [`unwritten`], on a commit's outcome or its error.
fn unwritten_by(outcome: Result<refer_eventstore::Outcome, &refer_eventstore::StoreError>) -> bool {
    match outcome {
        Ok(outcome) => outcome != refer_eventstore::Outcome::Applied,
        Err(refer_eventstore::StoreError::Domain(_)) => true,
        Err(_) => false,
    }
}

/// The last step of "seal, commit, erase if nothing was written": erases
/// `sealed` (an item sealed for the command whose `result` this is) when
/// the result proves it was not written (`unwritten`), and keeps it after
/// any other outcome.
pub async fn erase_if_unwritten<A>(
    vault: &Vault,
    sealed: Option<&Sealed>,
    result: &Result<refer_eventstore::Executed<A>, refer_eventstore::StoreError>,
) -> Result<(), Status> {
    match sealed {
        Some(sealed) if unwritten(result) => erase(vault, [sealed.item.as_str()]).await,
        _ => Ok(()),
    }
}

/// [`erase_if_unwritten`] for a decision over several aggregates: each
/// item in `sealed`, sealed for the aggregate of kind `A` with the id it is
/// paired with, is erased when that aggregate's part of `result` proves it
/// was not written (a part the decision does not name keeps its key).
pub async fn erase_unwritten_parts<'a, A: refer_domain::decision::Touched>(
    vault: &Vault,
    sealed: impl IntoIterator<Item = (uuid::Uuid, &'a Sealed)>,
    result: &Result<refer_eventstore::Committed, refer_eventstore::StoreError>,
) -> Result<(), Status> {
    let unwritten: Vec<&str> = sealed
        .into_iter()
        .filter(|(id, _)| match result {
            Ok(committed) => committed
                .executed::<A>(*id)
                .is_some_and(|part| unwritten_by(Ok(part.outcome))),
            Err(err) => unwritten_by(Err(err)),
        })
        .map(|(_, item)| item.item.as_str())
        .collect();
    erase(vault, unwritten).await
}

/// Sets a standing hand-off (an agency's contact, a site's default, a
/// donation's instructions) to `text`, sealed for `purpose`. The key erased
/// is the one the committed event says it replaced (`standing.replaced`),
/// decided on the state the commit was made at: a replacement that lost a
/// race and was decided again replaces (and erases) the winner's text, not
/// the one it first read, so concurrent replacements leave one live item. A
/// retried request (same key) leaves no stray key, and erases what its
/// first attempt's commit replaced, in case that attempt stopped before.
///
/// Answers with what the caller is shown: the text set, or for a retry the
/// current text (another request may have replaced it since), opened for
/// `who` and recorded as a read of `about`; nothing for an admin.
pub async fn set_standing(
    shell: &crate::handler::Shell,
    who: &crate::Principal,
    owner: refer_domain::standing::Owner,
    text: &str,
    purpose: &str,
    meta: &refer_domain::CommandMeta,
    about: About,
) -> Result<String, Status> {
    use refer_domain::standing::{Standing, StandingCommand};
    let (store, vault) = (&shell.store, &shell.vault);
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
    let committed = match done.outcome {
        refer_eventstore::Outcome::Applied => done.events,
        // A retry: its first attempt may have stopped between its commit
        // and the erasure; what that commit replaced is erased now (erasing
        // twice is harmless).
        refer_eventstore::Outcome::Duplicate => {
            let aggregate = refer_domain::AggregateRef {
                kind: refer_domain::AggregateKind::Standing,
                id: owner.id(),
            };
            let history = store.history(&aggregate, 0).await.map_err(crate::store_status)?;
            history
                .into_iter()
                .filter(|c| c.events.first().and_then(|e| e.idempotency_key.as_ref()) == meta.idempotency_key.as_ref())
                .flat_map(|c| c.events)
                .collect()
        }
        refer_eventstore::Outcome::NoChange => vec![],
    };
    let retried = done.outcome == refer_eventstore::Outcome::Duplicate;
    let replaced: Vec<&str> = committed
        .iter()
        .filter_map(|e| match &e.event {
            refer_domain::Event::Standing(event) => event.replaced(),
            _ => None,
        })
        .map(|old| old.item.as_str())
        .collect();
    erase(vault, replaced).await?;
    match who.role {
        crate::Role::Admin => Ok(String::new()),
        _ if retried => open_standing(shell, who, owner, purpose, about).await,
        _ => Ok(text.to_owned()),
    }
}

/// The current text of `owner`'s standing hand-off (empty if none, or
/// erased), opened for `who` and recorded as a read of `about`; nothing
/// for an admin.
pub async fn open_standing(
    shell: &crate::handler::Shell,
    who: &crate::Principal,
    owner: refer_domain::standing::Owner,
    purpose: &str,
    about: About,
) -> Result<String, Status> {
    let standing = shell.load::<refer_domain::standing::Standing>(owner.id()).await?;
    let mut trail = Trail::new(who);
    let text = match &standing.state.text {
        Some(sealed) => open(&shell.vault, sealed, purpose, &mut trail, about)
            .await?
            .text()
            .unwrap_or_default(),
        None => String::new(),
    };
    shell.reads.record(trail, shell.clock.now()).await?;
    Ok(text)
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
