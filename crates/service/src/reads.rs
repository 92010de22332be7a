//! The read log of sealed items: every time a service opens a sealed item
//! for an answer, who read it (role, organisation), which item (its name,
//! kind, what it belongs to, whose it is) and when. Never its content.
//!
//! Where it lives: a stream of its own, `<stream>_READS` (replicated like
//! the domain stream, file storage, nothing deleted or purged), so the
//! record is as durable as the decisions, nothing is kept locally, and
//! there is nothing to rebuild: the stream is the log and its index. The
//! matcher and the read models never read it (it is not on the domain
//! stream, so it does not slow their rebuilds).
//!
//! Subjects: `<prefix>_reads.<org>.by` holds the reads organisation `org`
//! made, `<prefix>_reads.<org>.of` the reads of `org`'s items by another
//! organisation. A partner lists `<prefix>_reads.<org>.>`, an admin
//! `<prefix>_reads.*.by` (every read exactly once).
//!
//! Cost: an answer's reads ([`Trail`], one record per distinct item) are
//! written as one message per organisation concerned, and the messages of
//! concurrent answers are sent together as one atomic batch (one fsync
//! for all of them): a list answer that opens fifty items costs one
//! record, not fifty, and busy readers share a sync. The answer waits for
//! the acknowledgement: no sealed content leaves without its read on
//! record, and a read that cannot be recorded is refused (UNAVAILABLE).

use crate::{page, Principal, Role};
use async_nats::jetstream::{self, stream};
use bytes::Bytes;
use refer_domain::ids::OrgId;
use refer_domain::Timestamp;
use refer_eventstore::{publish_atomic, BatchMessage, StoreError};
use refer_proto::common::v1 as pb;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use tokio::sync::{mpsc, oneshot};
use tonic::Status;
use uuid::Uuid;

/// What kind of sealed item was read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ItemKind {
    CaseReference,
    AgencyContact,
    SiteHandoff,
    DonationHandoff,
    /// The hand-off a provider gave at acceptance.
    Handoff,
    Note,
}

impl ItemKind {
    pub fn token(self) -> &'static str {
        match self {
            Self::CaseReference => "case_reference",
            Self::AgencyContact => "agency_contact",
            Self::SiteHandoff => "site_handoff",
            Self::DonationHandoff => "donation_handoff",
            Self::Handoff => "handoff",
            Self::Note => "note",
        }
    }
}

/// Which item a read opened: its kind, what it belongs to, whose it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct About {
    pub kind: ItemKind,
    /// The placement, need, agency, site or donation it belongs to.
    pub of: Uuid,
    /// The organisation whose item it is.
    pub owner: OrgId,
}

/// One item read, as recorded.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct ItemRead {
    item: String,
    about: About,
}

/// One message of the log: the reads of one answer that concern one
/// organisation (all of them, on the reader's `.by` subject).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Recorded {
    at: Timestamp,
    role: Role,
    /// `None` in a business's copy: a business never learns which agency
    /// used its donation (docs/privacy.md).
    reader: Option<OrgId>,
    items: Vec<ItemRead>,
}

/// The reads one answer makes, recorded once before it is sent.
#[derive(Debug)]
pub struct Trail {
    role: Role,
    reader: OrgId,
    items: BTreeSet<ItemRead>,
}

/// The views of a page's entries, built side by side, and the trail of
/// every sealed item they opened. Each opening is a read from the key
/// bucket's leader, too slow one after another (docs/benchmarks.md).
/// `view` builds one entry's view on its own trail.
pub async fn open_page<T, V, F, Fut>(
    who: &Principal,
    entries: impl IntoIterator<Item = T>,
    view: F,
) -> Result<(Vec<V>, Trail), Status>
where
    F: Fn(T, Trail) -> Fut,
    Fut: std::future::Future<Output = Result<(V, Trail), Status>>,
{
    let built = futures::future::try_join_all(entries.into_iter().map(|entry| view(entry, Trail::new(who)))).await?;
    let mut trail = Trail::new(who);
    let mut views = Vec::with_capacity(built.len());
    for (v, read) in built {
        views.push(v);
        trail.items.extend(read.items);
    }
    Ok((views, trail))
}

impl Trail {
    /// The reads about to be made for `who`.
    pub fn new(who: &Principal) -> Self {
        Self {
            role: who.role,
            reader: who.org,
            items: BTreeSet::new(),
        }
    }

    /// Whether this answer may be shown sealed content: never an admin's.
    pub fn shows_content(&self) -> bool {
        self.role != Role::Admin
    }

    /// Notes that `item` was opened (once per answer, however often).
    pub fn read(&mut self, item: &str, about: About) {
        self.items.insert(ItemRead {
            item: item.to_owned(),
            about,
        });
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// The most messages one batch of the log carries.
const GROUP: usize = 256;

struct Pending {
    messages: Vec<(String, Bytes)>,
    answer: oneshot::Sender<Result<(), String>>,
}

/// The read log of one stream.
#[derive(Clone)]
pub struct ReadLog {
    js: jetstream::Context,
    stream: stream::Stream,
    prefix: String,
    queue: mpsc::UnboundedSender<Pending>,
}

fn unavailable(e: impl std::fmt::Display) -> Status {
    Status::unavailable(format!("the read log is unavailable: {e}; retry"))
}

impl ReadLog {
    /// Opens the log beside the domain stream `settings`, made by the
    /// operator (`refer admin provision`) like the stream.
    pub async fn open(
        js: &jetstream::Context,
        settings: &refer_eventstore::StreamSettings,
    ) -> Result<Self, StoreError> {
        let config = settings.read_log();
        let name = config.name.clone();
        let prefix = format!("{}_reads", settings.prefix);
        // Opened with the domain stream on a new cluster, whose nodes may
        // still elect: try again for as long as the event store does.
        let stream = refer_eventstore::patiently(
            "read log stream",
            || async {
                js.get_stream(&name)
                    .await
                    .map_err(|e| refer_eventstore::not_provisioned(&format!("stream {name}"), &e))
            },
            |_| true,
            || refer_eventstore::unanswered("read log stream"),
        )
        .await
        .map_err(StoreError::Setup)?;
        refer_eventstore::refuse_unlike(&config, &stream.cached_info().config, &[]).map_err(StoreError::Setup)?;
        let (queue, waiting) = mpsc::unbounded_channel();
        tokio::spawn(dispatch(js.clone(), waiting));
        Ok(Self {
            js: js.clone(),
            stream,
            prefix,
            queue,
        })
    }

    fn subject(&self, org: OrgId, by: bool) -> String {
        format!("{}.{}.{}", self.prefix, org, if by { "by" } else { "of" })
    }

    /// Records `trail`'s reads, made at `at`, and waits until they are
    /// stored. Nothing is written for an answer that read nothing.
    pub async fn record(&self, trail: Trail, at: Timestamp) -> Result<(), Status> {
        if trail.is_empty() {
            return Ok(());
        }
        // Cut off from the bus: refused at once, as the event store does,
        // rather than after a publish times out.
        let state = self.js.client().connection_state();
        if state != async_nats::connection::State::Connected {
            return Err(unavailable(format!("the event bus is unreachable ({state:?})")));
        }
        let items: Vec<ItemRead> = trail.items.into_iter().collect();
        let owners: BTreeSet<OrgId> = items
            .iter()
            .map(|i| i.about.owner)
            .filter(|o| *o != trail.reader)
            .collect();
        let message = |items: Vec<ItemRead>, reader: Option<OrgId>| {
            let recorded = Recorded {
                at,
                role: trail.role,
                reader,
                items,
            };
            Bytes::from(postcard::to_stdvec(&recorded).expect("a read record encodes"))
        };
        let mut messages = vec![(
            self.subject(trail.reader, true),
            message(items.clone(), Some(trail.reader)),
        )];
        for owner in owners {
            let theirs: Vec<ItemRead> = items.iter().filter(|i| i.about.owner == owner).cloned().collect();
            // A business learns when its donation's hand-off was read, never
            // by which agency: it never learns who used its donation.
            let business = theirs.iter().all(|i| i.about.kind == ItemKind::DonationHandoff);
            let reader = (!business).then_some(trail.reader);
            messages.push((self.subject(owner, false), message(theirs, reader)));
        }
        let (answer, answered) = oneshot::channel();
        self.queue
            .send(Pending { messages, answer })
            .map_err(|_| unavailable("shutting down"))?;
        answered
            .await
            .map_err(|_| unavailable("the recorder stopped"))?
            .map_err(unavailable)?;
        refer_metrics::count(
            "refer_sealed_reads_total",
            "Sealed items opened for an answer (each recorded in the read log).",
            &[("role", role_token(trail.role))],
            items.len() as f64,
        );
        Ok(())
    }

    /// A page of the reads `who` may see (see the module's comment).
    pub async fn list(
        &self,
        who: &Principal,
        page_size: u32,
        page_token: &str,
    ) -> Result<pb::ListSealedReadsResponse, Status> {
        let size = page::size(page_size)?;
        let after: Option<(u64, u32)> = page::after(page_token)?;
        let filter = match who.role {
            Role::Admin => format!("{}.*.by", self.prefix),
            _ => format!("{}.{}.>", self.prefix, who.org),
        };
        let mut found: Vec<((u64, u32), pb::SealedRead)> = Vec::new();
        let mut next = after.map_or(1, |(seq, _)| seq);
        while found.len() <= size {
            let message = match self
                .stream
                .direct_get_next_for_subject(filter.as_str(), Some(next))
                .await
            {
                Ok(message) => message,
                Err(err) if matches!(err.kind(), stream::DirectGetErrorKind::NotFound) => break,
                Err(err) => return Err(unavailable(err)),
            };
            next = message.sequence + 1;
            let Ok(recorded) = postcard::from_bytes::<Recorded>(&message.payload) else {
                tracing::error!(seq = message.sequence, "a read-log record does not decode; skipped");
                continue;
            };
            for (n, item) in recorded.items.iter().enumerate() {
                let key = (message.sequence, n as u32);
                if after.is_some_and(|a| key <= a) {
                    continue;
                }
                found.push((
                    key,
                    pb::SealedRead {
                        at_ms: recorded.at.millis(),
                        reader_role: role_token(recorded.role).into(),
                        reader_org_id: recorded
                            .reader
                            .map(|r| crate::convert::id_pb(r.as_uuid()))
                            .unwrap_or_default(),
                        kind: item.about.kind.token().into(),
                        item: item.item.clone(),
                        of_id: crate::convert::id_pb(item.about.of),
                        owner_org_id: crate::convert::id_pb(item.about.owner.as_uuid()),
                        position: message.sequence,
                    },
                ));
            }
        }
        let (found, next_page_token) = page::cut(found, size, |(key, _)| *key);
        Ok(pb::ListSealedReadsResponse {
            reads: found.into_iter().map(|(_, read)| read).collect(),
            next_page_token,
        })
    }
}

fn role_token(role: Role) -> &'static str {
    match role {
        Role::Intake => "intake",
        Role::Provider => "provider",
        Role::Business => "business",
        Role::Admin => "admin",
    }
}

/// Sends what waits as one atomic batch, one batch at a time: while one is
/// under way the next gathers, so concurrent answers share a sync.
async fn dispatch(js: jetstream::Context, mut waiting: mpsc::UnboundedReceiver<Pending>) {
    while let Some(first) = waiting.recv().await {
        let mut group = vec![first];
        let mut count = group[0].messages.len();
        while count < GROUP {
            match waiting.try_recv() {
                Ok(next) => {
                    count += next.messages.len();
                    group.push(next);
                }
                Err(_) => break,
            }
        }
        let messages: Vec<BatchMessage> = group
            .iter()
            .flat_map(|p| &p.messages)
            .map(|(subject, payload)| BatchMessage {
                subject: subject.clone(),
                headers: async_nats::HeaderMap::new(),
                payload: payload.clone(),
            })
            .collect();
        let outcome = send(&js, messages).await;
        for pending in group {
            let _ = pending.answer.send(outcome.clone());
        }
    }
}

async fn send(js: &jetstream::Context, mut messages: Vec<BatchMessage>) -> Result<(), String> {
    if messages.len() == 1 {
        let message = messages.pop().expect("one");
        let ack = js
            .publish(message.subject, message.payload)
            .await
            .map_err(|e| e.to_string())?;
        return ack.await.map(|_| ()).map_err(|e| e.to_string());
    }
    for chunk in chunks(messages, refer_eventstore::MAX_BATCH) {
        publish_atomic(&js.client(), chunk)
            .await
            .map_err(|e| format!("{e:?}"))?;
    }
    Ok(())
}

fn chunks(mut messages: Vec<BatchMessage>, size: usize) -> Vec<Vec<BatchMessage>> {
    let mut out = Vec::new();
    while messages.len() > size {
        let rest = messages.split_off(size);
        out.push(messages);
        messages = rest;
    }
    out.push(messages);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(role: Role) -> Principal {
        Principal {
            name: "x".into(),
            role,
            org: OrgId::from_u128(1),
        }
    }

    #[test]
    fn an_answer_records_each_item_once_and_an_admin_is_shown_nothing() {
        let about = About {
            kind: ItemKind::AgencyContact,
            of: Uuid::from_u128(7),
            owner: OrgId::from_u128(7),
        };
        let mut trail = Trail::new(&who(Role::Provider));
        assert!(trail.is_empty() && trail.shows_content());
        // The same contact on fifty referrals of one page: one read.
        for _ in 0..50 {
            trail.read("standing.ab", about);
        }
        assert_eq!(trail.items.len(), 1);
        assert!(!Trail::new(&who(Role::Admin)).shows_content());
        for role in [Role::Intake, Role::Business] {
            assert!(Trail::new(&who(role)).shows_content());
        }
    }
}
