//! The matcher service: a durable consumer of every event that keeps a
//! projection of providers, donations and needs in memory (checkpointed in
//! sled), and turns it into decisions: a referral with a hold and a deadline,
//! expiry, re-matching after a decline or expiry (skipping whoever declined),
//! the waitlist, and settling holds when needs are answered or cancelled.
//!
//! One job per module: `driver` (the planner folded commit by commit, and
//! a replay), `feed` (commits in, decisions out), `executor` (a decision's
//! commands through the event store, fenced by the lease), `lanes` (the
//! order decisions run in, and what a failed one does), `status` (the
//! admin RPC); this file starts them and keeps the lease.
#![forbid(unsafe_code)]

pub mod acceptance;
mod driver;
mod executor;
pub mod failpoint;
mod feed;
mod lanes;
mod reports;
mod status;

pub use driver::Core;
use executor::Executor;
use feed::{Decisions, Feed};
pub use status::MatcherService;

use refer_eventstore::Subscriber;
use refer_matching::planner::Partition;
use refer_proto::matcher::v1::matcher_server::MatcherServer;
use refer_service::lease::Lease;
use refer_service::runtime::{Context, ServiceSpec, Started};
use refer_service::Role;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// The gRPC service name (for health checks).
pub const SERVICE_NAME: &str = "refer.matcher.v1.Matcher";
/// The durable consumer of every event.
pub const CONSUMER: &str = "matcher";

/// How often the workload gauges are refreshed.
const REPORT_EVERY: Duration = Duration::from_millis(250);

/// Who may call: every role authenticates; GetStatus is the admins', and
/// GetReport checks the organisation a partner asks for.
pub const ROLES: &[Role] = &[Role::Admin, Role::Intake, Role::Provider, Role::Business];
const ADMINS: &[Role] = &[Role::Admin];

/// How `main` and the tests start the matcher.
pub const SERVICE: ServiceSpec = ServiceSpec {
    name: "matcher",
    grpc_name: SERVICE_NAME,
    default_port: 50054,
    callers: refer_service::runtime::Callers {
        roles: ROLES,
        by_default: ADMINS,
        methods: &[("GetReport", ROLES)],
    },
    start: |context| Box::pin(start(context)),
};

/// How long a lease lives without renewal: a standby decides at most about
/// this long after the holder died.
pub use refer_service::provision::LEASE_TTL;

/// Renews the lease every third of its ttl until shutdown, then gives it
/// up so a standby takes over at once.
async fn keep_lease(mut lease: Lease, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let mut every = tokio::time::interval(lease.renew_every());
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {
                lease.hold().await;
            }
            _ = shutdown.changed() => {
                lease.release().await;
                return;
            }
        }
    }
}

/// The partition a matcher's configuration names (every region if none).
pub fn partition(config: &refer_service::runtime::Config) -> Partition {
    match &config.partition {
        None => Partition::whole(),
        Some((name, regions)) => Partition::of(name.clone(), regions.clone()),
    }
}

/// Starts the matcher of its partition: takes (or waits for) the
/// partition's lease, restores the projection, keeps it current, carries
/// out decisions while it holds the lease, and runs housekeeping (expiry)
/// every `tick`.
async fn start(context: Context) -> anyhow::Result<Started> {
    let store = context.store.clone();
    let clock = context.clock.clone();
    let tick = context.config.tick;
    let mut shutdown = context.shutdown.clone();
    let partition = partition(&context.config);
    // One matcher of each partition decides; others stand by, warm.
    let mut lease = Lease::open(
        store.jetstream(),
        &refer_service::provision::leases(&context.config.stream),
        &partition.lease(),
        &context.config.instance,
    )
    .await?;
    lease.hold().await;
    let fence = lease.fence();
    let leasing = tokio::spawn(keep_lease(lease, context.shutdown.clone()));
    // Every subject: the projection leaves out what is not its own (other
    // regions, placements' files, standing hand-offs): a consumer filtered
    // to the three subjects it folds made a cold start an order of magnitude
    // slower (docs/benchmarks.md). A projection saved for other regions is
    // rebuilt, never restored.
    let consumer = match partition.name() {
        None => context.consumer(CONSUMER),
        // `_` is in no partition or instance name: `matcher_north-m_1` and
        // `matcher_north_m-1` are two consumers (with `-` they were one).
        Some(name) => format!("{CONSUMER}_{name}_{}", context.config.instance),
    };
    let regions = match partition.regions() {
        None => "every region".to_owned(),
        Some(regions) => regions.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(","),
    };
    // The tree keeps the domain's states, so their shape is part of its
    // definition: a new shape rebuilds it, as other regions do.
    let definition = format!("{regions}; states {}", refer_eventstore::SNAPSHOT_FORMAT);
    let mut subscriber = Subscriber::open_defined(&store, &consumer, &[], definition.as_bytes()).await?;
    tracing::info!(partition = partition.name().unwrap_or("every region"), %regions, "matching");
    let mut restored = Core::restore(subscriber.tree(), partition.clone());
    restored.planner.state.policy.freshness = context.config.freshness;
    let core = Arc::new(Mutex::new(restored));
    let checkpoint = Arc::new(std::sync::atomic::AtomicU64::new(subscriber.checkpoint()));
    let executor = Executor {
        store,
        clock: clock.clone(),
        core: core.clone(),
        lease: fence.clone(),
        failpoint: failpoint::Failpoint::from_env(),
        failures: Arc::default(),
    };
    let (decisions, queue) = mpsc::unbounded_channel();
    let executing = tokio::spawn(executor.clone().serve(queue, decisions.clone()));
    let mut feed = Feed {
        core: core.clone(),
        catching_up: true,
        decisions: decisions.clone(),
        lease: fence.clone(),
    };
    let status_core = core.clone();
    let status_lease = fence.clone();
    let position = checkpoint.clone();
    // GetStatus answers (and health says SERVING) once the backlog is folded.
    let (caught_up, ready) = tokio::sync::oneshot::channel::<()>();
    context.ready_when(async move {
        let _ = ready.await;
    });
    let task = tokio::spawn(async move {
        while let Err(err) = subscriber.catch_up(&mut feed).await {
            position.store(subscriber.checkpoint(), std::sync::atomic::Ordering::Relaxed);
            if *shutdown.borrow() {
                executing.abort();
                return;
            }
            refer_service::runtime::pause_after(&err, "matcher catching up").await;
        }
        feed.catching_up = false;
        let _ = caught_up.send(());
        let mut reported = std::time::Instant::now();
        let mut swept: Option<std::time::Instant> = None;
        let mut leading = false;
        loop {
            // Taking the lease (at start, or from a holder that died): plan
            // everything, as after a restart. Losing it: drop what is planned.
            match (leading, fence.held()) {
                (false, true) => {
                    core.lock().expect("core lock").lead(clock.now());
                    swept = None;
                    leading = true;
                    tracing::info!("this matcher decides");
                }
                (true, false) => {
                    core.lock().expect("core lock").stand_by();
                    leading = false;
                    tracing::warn!("this matcher stands by");
                }
                _ => {}
            }
            // Plans what the backlog left (first round), then, every tick,
            // housekeeping over every hold: referrals past their deadline
            // with no commit to notice it, settlements that failed, sites
            // that opened. (Each commit already settles the holds of the
            // needs it touched.)
            if leading {
                let mut guard = core.lock().expect("core lock");
                guard.plan_folded();
                if swept.is_none_or(|at| at.elapsed() >= tick) {
                    swept = Some(std::time::Instant::now());
                    guard.tick(clock.now());
                }
                guard.send(&decisions);
            }
            // The gauges scan every need: a few times a second is enough.
            if reported.elapsed() >= REPORT_EVERY {
                core.lock().expect("core lock").report();
                reported = std::time::Instant::now();
            }
            if *shutdown.borrow() {
                executing.abort();
                break;
            }
            tokio::select! {
                _ = shutdown.changed() => continue,
                polled = subscriber.poll(&mut feed, 256, tick) => {
                    if let Err(err) = polled {
                        refer_service::runtime::pause_after(&err, "matcher").await;
                    }
                }
            }
            position.store(subscriber.checkpoint(), std::sync::atomic::Ordering::Relaxed);
        }
        // What was folded since the last write: the next start need not fold it again.
        if let Err(err) = subscriber.persist(&mut feed) {
            tracing::warn!(error = %err, "states not written at stop; the next start folds them again");
        }
    });
    let service = MatcherService {
        core: status_core,
        checkpoint,
        lease: status_lease,
        reports: reports::Reports::new(
            context.store.jetstream().clone(),
            context.config.stream.name.clone(),
            context.clock.clone(),
        ),
    };
    Ok(context.serve(MatcherServer::new(service), vec![task, leasing]))
}
