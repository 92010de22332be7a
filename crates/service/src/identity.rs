//! One process per identity. A replica's instance name makes its durable
//! consumers (`<consumer>-<instance>`) and, for a matcher, its lease
//! holder's name: two processes under one name would share a consumer
//! (each taking half the commits, or one failing at start) and would both
//! count a matcher's lease as theirs. So a process claims its name before
//! it does anything else, and a second process that starts under a name in
//! use refuses to start, saying so.
//!
//! The claim is the entry `<service>.<instance>` of the key-value bucket
//! `<stream>_INSTANCES` (replicated like the stream, entries living
//! [`CLAIM_TTL`] after their last write). Its value is a random token drawn
//! at each start:
//!
//! * taking it is a create-if-absent; renewing it is an update by revision
//!   every third of the ttl;
//! * a process that finds the claim held waits while the entry is neither
//!   renewed nor gone, for at most one ttl: a claim whose holder died (or
//!   was stopped or cut off for longer than the ttl) lapses and is taken; a
//!   claim renewed meanwhile belongs to a live process, and the newcomer
//!   stops with a message naming the setting to change. That holds for the
//!   same process restarting after a crash too: a copy of its data
//!   directory (a restored or cloned volume) looks exactly like it, so
//!   only the holder's silence for a whole ttl tells that it is gone, not
//!   one renewal period, which a holder stalled for a second would miss;
//! * a clean stop deletes the claim; a process that finds its claim taken
//!   by another (it was cut off from the bus past the ttl) stops serving;
//! * between renewals the process counts its name as confirmed for 5 s
//!   after the last one was sent, by its own clock (a
//!   [`Fence`], as the lease does): woken from a stall longer than that,
//!   it answers calls UNAVAILABLE until a renewal says the name is still
//!   its own, so it never serves a call under a name another process may
//!   have taken meanwhile.

use async_nats::jetstream::kv;
use bytes::Bytes;
use std::time::{Duration, Instant};
use tokio::sync::watch;

use crate::lease::Fence;

/// How long a claim outlives its holder: a process that replaces a dead one
/// under the same name (a restart after a crash included) waits about this
/// long before it starts; a live holder renews every third of it.
pub use refer_client::provision::CLAIM_TTL;

/// This process's claim on its identity.
pub struct Claim {
    bucket: kv::Store,
    key: String,
    token: Bytes,
    revision: u64,
    confirmed: Fence,
}

/// How long after a renewal was sent the name counts as confirmed: the
/// entry it wrote lives a whole [`CLAIM_TTL`] after it landed, and no
/// other process takes the name before it lapses, so the holder's
/// confirmation closes first (by a second, for scheduling).
const CONFIRMED_FOR: Duration = Duration::from_secs(5);

fn live(entry: &Option<kv::Entry>) -> Option<&kv::Entry> {
    entry.as_ref().filter(|e| matches!(e.operation, kv::Operation::Put))
}

impl Claim {
    /// Claims `<service>.<instance>` for this process, or says why it cannot.
    pub async fn take(
        js: &async_nats::jetstream::Context,
        stream: &refer_eventstore::StreamSettings,
        service: &str,
        instance: &str,
    ) -> anyhow::Result<Self> {
        let spec = refer_client::provision::instances(stream);
        let (name, bucket) = (spec.name.clone(), spec.open(js).await?);
        let key = format!("{service}.{instance}");
        let token = Bytes::from(uuid::Uuid::new_v4().simple().to_string());
        let refused = || {
            anyhow::anyhow!(
                "the instance name {instance:?} of {service} is in use by another running process \
                 (its claim {key} in the key-value bucket {name} is being renewed): two processes \
                 under one name would share a durable consumer and a matcher's lease. Give every \
                 replica its own name (REFER_INSTANCE, or instance in the configuration) and its \
                 own data directory (docs/operations.md)"
            )
        };
        // Waiting for the bus is bounded as every step of a start is
        // (refer_eventstore::patiently), each request included; waiting
        // for a held claim to lapse, by `deadline`.
        let patience = Instant::now() + refer_eventstore::START_PATIENCE;
        let mut deadline: Option<Instant> = None;
        let mut seen: Option<u64> = None;
        let bounded = |deadline: Option<Instant>| {
            let until = deadline.map_or(patience, |d| d.max(patience));
            until.saturating_duration_since(Instant::now())
        };
        let unanswered = || {
            anyhow::anyhow!(refer_eventstore::unanswered(&format!(
                "cannot claim the instance name {key} in {name}"
            )))
        };
        loop {
            let sent = Instant::now();
            let created = tokio::time::timeout(bounded(deadline), bucket.create(&key, token.clone()))
                .await
                .map_err(|_| unanswered())?;
            match created {
                Ok(revision) => {
                    tracing::info!(claim = %key, "instance claimed");
                    let confirmed = Fence::closed();
                    confirmed.hold_for(CONFIRMED_FOR.saturating_sub(sent.elapsed()));
                    return Ok(Self {
                        bucket,
                        key,
                        token,
                        revision,
                        confirmed,
                    });
                }
                Err(err) if err.kind() != kv::CreateErrorKind::AlreadyExists => {
                    // A bucket just created (its group still electing), a
                    // cluster starting: try again for a while.
                    anyhow::ensure!(
                        Instant::now() < patience,
                        "cannot claim the instance name {key} in {name}: {err}"
                    );
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    continue;
                }
                Err(_) => {}
            }
            let read = tokio::time::timeout(bounded(deadline), bucket.entry(&key))
                .await
                .map_err(|_| unanswered())?;
            let entry = match read {
                Ok(entry) => entry,
                Err(err) => {
                    anyhow::ensure!(
                        Instant::now() < patience,
                        "cannot read the claim {key} in {name}: {err}"
                    );
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    continue;
                }
            };
            match live(&entry) {
                // Gone meanwhile: create again.
                None => continue,
                Some(held) => {
                    match seen {
                        None => {
                            tracing::warn!(
                                claim = %key,
                                "instance name claimed by another process; waiting for its claim to lapse"
                            );
                            seen = Some(held.revision);
                            deadline = Some(Instant::now() + CLAIM_TTL + CLAIM_TTL / 3);
                        }
                        Some(revision) if revision != held.revision => return Err(refused()),
                        Some(_) => {}
                    }
                    if deadline.is_some_and(|d| Instant::now() > d) {
                        return Err(refused());
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        }
    }

    /// Whether the name was confirmed as this process's recently.
    pub fn confirmed(&self) -> Fence {
        self.confirmed.clone()
    }

    /// Renews the claim every third of its ttl until `shutdown`, then
    /// deletes it. If another process holds it (this one was cut off past
    /// the ttl), logs it, sets `lost` and turns `stop`.
    pub fn keep(
        mut self,
        mut shutdown: watch::Receiver<bool>,
        stop: std::sync::Arc<watch::Sender<bool>>,
        lost: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut every = tokio::time::interval(CLAIM_TTL / 3);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = every.tick() => {
                        if !self.renew().await {
                            self.confirmed.drop_hold();
                            tracing::error!(
                                claim = %self.key,
                                "another process took this instance's name while this one was cut off; stopping"
                            );
                            lost.store(true, std::sync::atomic::Ordering::SeqCst);
                            let _ = stop.send(true);
                            return;
                        }
                    }
                    _ = shutdown.changed() => {
                        if *shutdown.borrow() {
                            let _ = self.bucket.delete_expect_revision(&self.key, Some(self.revision)).await;
                            return;
                        }
                    }
                }
            }
        })
    }

    /// Renews the claim; false only when another process holds it (the bus
    /// away is not a loss: the next tick tries again).
    async fn renew(&mut self) -> bool {
        // Confirmed from when the renewal was sent: its write may have
        // landed (and started the ttl again) any time after.
        let sent = Instant::now();
        let renewed = self.write().await;
        if let Some(Ok(revision)) = renewed {
            self.revision = revision;
            self.confirmed.hold_for(CONFIRMED_FOR.saturating_sub(sent.elapsed()));
        }
        !matches!(renewed, Some(Err(())))
    }

    /// Writes the claim again: `Some(Ok(revision))` when written, `None`
    /// when the bus did not answer (the next tick tries again), and
    /// `Some(Err(()))` when another process holds it.
    async fn write(&self) -> Option<Result<u64, ()>> {
        if let Ok(revision) = self.bucket.update(&self.key, self.token.clone(), self.revision).await {
            return Some(Ok(revision));
        }
        let entry = self.bucket.entry(&self.key).await.ok()?;
        match live(&entry) {
            Some(held) if held.value == self.token => self
                .bucket
                .update(&self.key, self.token.clone(), held.revision)
                .await
                .ok()
                .map(Ok),
            Some(_) => Some(Err(())),
            // Lapsed while cut off: claim it again.
            None => self.bucket.create(&self.key, self.token.clone()).await.ok().map(Ok),
        }
    }
}
