//! `refer-bench`: Refer end to end, through the real gRPC APIs, under seeded
//! workloads, every figure printed beside raw JetStream on the same server in
//! the same run.
//!
//! ```sh
//! cargo build --release --bins && target/release/refer-bench      # the full run (minutes)
//! target/debug/refer-bench --smoke                                # seconds, for CI
//! target/release/refer-bench --connect --tokens-file run/tokens.toml   # services already running
//! ```
//!
//! It starts its own nats-server (fsync before every ack) and the four
//! service binaries found beside its own (or `--bins`), or uses running
//! ones (`--connect`), then runs: W1 "operation night", W2 "national day",
//! the raw JetStream baselines once the system is quiet, the waitlist and
//! the 250 and 1,000 needs/s latency phases, W3 "stress", the matcher's
//! rebuild and (own services only) cold restart. Plots go to `--plots`.
#![forbid(unsafe_code)]

mod baseline;
mod cleanup;
mod cluster;
mod figures;
mod load;
mod stats;
mod svg;

use anyhow::Context;
use clap::Parser;
use cluster::{Cluster, Endpoints};
use load::{first_referral, register_provider, run, set_capacity, site_org, watch, Outcome};
use refer_client::tokens::authed;
use refer_domain::eligibility::{Eligibility, ServiceArea};
use refer_domain::geo::{GeoPoint, Location, RegionCode};
use refer_domain::ids::ProviderId;
use refer_domain::kinds::{NeedKind, ServiceKind};
use refer_domain::profile::{AgeBand, Gender, Language, Profile};
use refer_domain::request::{Constraints, NeedSpec, Urgency};
use refer_domain::time::Hours;
use refer_matching::scenario::Scenario;
use refer_matching::ProviderSite;
use refer_proto::capacity::v1 as cap;
use refer_proto::intake::v1 as intake;
use refer_proto::matcher::v1 as matcher;
use stats::Latencies;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(version, about = "Refer end to end under seeded workloads, beside raw JetStream")]
struct Args {
    /// Tiny sizes: runs every phase in seconds (CI runs this so the bench cannot rot).
    #[arg(long)]
    smoke: bool,
    /// Where the SVG plots are written.
    #[arg(long, default_value = "docs/bench")]
    plots: PathBuf,
    /// Directory holding refer-capacity, refer-donations, refer-intake and refer-matcher
    /// (default: the one holding this binary).
    #[arg(long)]
    bins: Option<PathBuf>,
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Use services already running (as `scripts/run` starts them) instead of
    /// starting a private NATS and the four services. The matcher's cold
    /// restart is then skipped.
    #[arg(long)]
    connect: bool,
    /// With --connect: the NATS the services use.
    #[arg(long, default_value = "nats://127.0.0.1:4333")]
    nats: String,
    /// With --connect: the operator's nkey seed for that NATS (`scripts/run`
    /// writes run/nkeys/operator.nk).
    #[arg(long, default_value = "run/nkeys/operator.nk")]
    nats_nkey_file: PathBuf,
    /// With --connect: the CA of that NATS's certificates (`scripts/run`
    /// writes run/tls/nats-ca.pem).
    #[arg(long, default_value = "run/tls/nats-ca.pem")]
    nats_ca_file: PathBuf,
    /// With --connect: the capacity, donations, intake and matcher services.
    #[arg(long, default_value = "https://127.0.0.1:50051")]
    capacity: String,
    #[arg(long, default_value = "https://127.0.0.1:50052")]
    donations: String,
    #[arg(long, default_value = "https://127.0.0.1:50053")]
    intake: String,
    #[arg(long, default_value = "https://127.0.0.1:50054")]
    matcher: String,
    /// With --connect: the CA of the services' certificates (`scripts/run`'s
    /// throwaway CA signs the bus's and the services').
    #[arg(long, default_value = "run/tls/ca.pem")]
    ca_file: PathBuf,
    /// With --connect: the tokens file the services read; the bench adds its
    /// own tokens for the run and takes them out at the end.
    #[arg(long, default_value = "run/tokens.toml")]
    tokens_file: PathBuf,
    /// Compare this run's figures with the last recorded run's (the
    /// figures.json of a run of the same size, by default the one kept in
    /// docs/bench/), each relative to its own run's raw baseline, flagging
    /// any more than 25% worse. Every run writes `figures.json` beside its plots.
    #[arg(long, num_args = 0..=1, default_missing_value = "docs/bench/figures.json")]
    compare: Option<PathBuf>,
}

/// How big each phase is.
struct Sizes {
    night_providers: usize,
    night_people: usize,
    day_providers: usize,
    day_donations: usize,
    day_people: usize,
    updates: usize,
    rate: usize,
    rate_seconds: usize,
    waitlist_samples: usize,
    stress: Duration,
    clients: usize,
    raw_one: usize,
    raw_pipelined: usize,
    /// Calls timed per list.
    list_calls: usize,
}

const FULL: Sizes = Sizes {
    night_providers: 300,
    night_people: 15,
    day_providers: 3_000,
    day_donations: 200,
    day_people: 300,
    updates: 30_000,
    rate: 1_000,
    rate_seconds: 5,
    waitlist_samples: 50,
    stress: Duration::from_secs(10),
    clients: 64,
    raw_one: 2_000,
    raw_pipelined: 30_000,
    list_calls: 50,
};

const SMOKE: Sizes = Sizes {
    night_providers: 30,
    night_people: 5,
    day_providers: 100,
    day_donations: 10,
    day_people: 20,
    updates: 500,
    rate: 100,
    rate_seconds: 1,
    waitlist_samples: 3,
    stress: Duration::from_secs(1),
    clients: 8,
    raw_one: 100,
    raw_pipelined: 1_000,
    list_calls: 3,
};

/// Every figure of the run, printed at the end.
#[derive(Default)]
struct Report {
    lines: Vec<String>,
}

impl Report {
    fn add(&mut self, line: String) {
        println!("{line}");
        self.lines.push(line);
    }
}

fn ratio(ours: f64, raw: f64) -> String {
    format!("{:.2}x raw", ours / raw)
}

async fn register_sites(cluster: &Cluster, sites: &[ProviderSite], first: usize, key: &str) -> (Outcome, Outcome) {
    let registered = run(sites.len(), 32, |k| {
        let mut client = cluster.capacity.clone();
        let request = register_provider(first + k, &sites[k]);
        let token = cluster::provider_token(site_org(first + k));
        async move { client.register_provider(authed(&token, request)).await.map(|_| ()) }
    })
    .await;
    let updates: Vec<(usize, cap::SetCapacityRequest)> = sites
        .iter()
        .enumerate()
        .flat_map(|(k, s)| set_capacity(s, key).into_iter().map(move |r| (first + k, r)))
        .collect();
    let declared = run(updates.len(), 32, |k| {
        let mut client = cluster.capacity.clone();
        let (i, request) = updates[k].clone();
        let token = cluster::provider_token(site_org(i));
        async move { client.set_capacity(authed(&token, request)).await.map(|_| ()) }
    })
    .await;
    (registered, declared)
}

/// Sends people (each one RequestPlacement) at `per_second`, each from its
/// own task.
async fn submit_paced(cluster: &Cluster, people: Vec<intake::RequestPlacementRequest>, per_second: f64) -> Submitted {
    let submitted = Arc::new(Mutex::new(BTreeMap::new()));
    let failures = Arc::new(Mutex::new(0usize));
    let acked = Arc::new(Mutex::new(Latencies::default()));
    let started = tokio::time::Instant::now();
    let mut tasks = Vec::new();
    for (i, person) in people.into_iter().enumerate() {
        tokio::time::sleep_until(started + Duration::from_secs_f64(i as f64 / per_second)).await;
        let mut client = cluster.intake.clone();
        let (submitted, failures, acked) = (submitted.clone(), failures.clone(), acked.clone());
        tasks.push(tokio::spawn(async move {
            let at = Instant::now();
            match client.request_placement(authed(&cluster::intake(), person)).await {
                Ok(placement) => {
                    acked.lock().expect("lock").push(at.elapsed());
                    let mut map = submitted.lock().expect("lock");
                    for need in placement.into_inner().needs {
                        if let Some(referral) = first_referral(&need.need_id) {
                            map.insert(referral, at);
                        }
                    }
                }
                Err(_) => *failures.lock().expect("lock") += 1,
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    let needs = submitted.lock().expect("lock").clone();
    let failed = *failures.lock().expect("lock");
    let acked = acked.lock().expect("lock").clone();
    Submitted { needs, failed, acked }
}

/// How many placements the agency of `token` holds, and in how many pages
/// of the largest size.
async fn count_placements(cluster: &Cluster, token: &str) -> anyhow::Result<(usize, usize)> {
    let (mut count, mut pages, mut page_token) = (0, 0, String::new());
    loop {
        let page = cluster
            .intake
            .clone()
            .list_placements(authed(
                token,
                intake::ListPlacementsRequest {
                    page_size: 500,
                    page_token,
                },
            ))
            .await?
            .into_inner();
        count += page.placements.len();
        pages += 1;
        if page.next_page_token.is_empty() {
            return Ok((count, pages));
        }
        page_token = page.next_page_token;
    }
}

/// What `submit_paced` sent: each need's submit instant by its first
/// referral id, the requests refused, and how long intake took to ack each.
struct Submitted {
    needs: BTreeMap<String, Instant>,
    failed: usize,
    acked: Latencies,
}

/// Waits until every submitted need has a referral or `patience` passed;
/// returns the latencies of those that did.
async fn proposals(
    arrivals: &mut load::Arrivals,
    seen: &mut BTreeMap<String, Instant>,
    submitted: &BTreeMap<String, Instant>,
    patience: Duration,
) -> Latencies {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        let matched = submitted.keys().filter(|k| seen.contains_key(*k)).count();
        if matched >= submitted.len() {
            break;
        }
        match tokio::time::timeout_at(deadline, arrivals.recv()).await {
            Ok(Some((referral, at))) => {
                seen.entry(referral).or_insert(at);
            }
            _ => break,
        }
    }
    while let Ok((referral, at)) = arrivals.try_recv() {
        seen.entry(referral).or_insert(at);
    }
    let mut latencies = Latencies::default();
    for (referral, sent) in submitted {
        if let Some(arrived) = seen.get(referral) {
            latencies.push(arrived.saturating_duration_since(*sent));
        }
    }
    latencies
}

fn language(code: &str) -> Language {
    Language::new(code).expect("bench languages are valid")
}

/// A site that takes anyone who speaks `lang`, with `beds` free.
fn open_site(id: u128, lang: &str, beds: u32, lat: f64) -> ProviderSite {
    ProviderSite {
        id: ProviderId::from_u128(id),
        location: Location {
            point: GeoPoint::new(lat, -100.0).expect("valid"),
            region: RegionCode::new("BENCH-1").expect("valid"),
        },
        hours: Hours::Always,
        eligibility: Eligibility {
            age_bands: BTreeSet::from([AgeBand::Juvenile, AgeBand::Adult]),
            genders: BTreeSet::from([Gender::Female, Gender::Male, Gender::NonBinary]),
            languages: BTreeSet::from([language(lang)]),
            accessibility: BTreeSet::new(),
            service_area: ServiceArea::Anywhere,
        },
        free: BTreeMap::from([(ServiceKind::ShelterBed, beds)]),
        as_of: BTreeMap::new(),
    }
}

/// A woman who speaks only `lang` and needs a bed tonight.
fn bed_need(lang: &str, lat: f64) -> NeedSpec {
    NeedSpec {
        kind: NeedKind::Shelter,
        urgency: Urgency::Immediate,
        profile: Profile {
            age_band: AgeBand::Adult,
            gender: Gender::Female,
            languages: BTreeSet::from([language(lang)]),
            accessibility: BTreeSet::new(),
            party_size: 1,
        },
        constraints: Constraints {
            origin: Location {
                point: GeoPoint::new(lat, -100.1).expect("valid"),
                region: RegionCode::new("BENCH-1").expect("valid"),
            },
            max_distance_km: None,
            avoid_regions: BTreeSet::new(),
            needed_by: None,
        },
        units_per_person: 1,
    }
}

/// A local-use ISO 639 code per sample (`qaa`..`qtz`): only its own site speaks it.
fn private_language(k: usize) -> String {
    format!(
        "q{}{}",
        (b'a' + (k / 26 % 20) as u8) as char,
        (b'a' + (k % 26) as u8) as char
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let sizes = if args.smoke { &SMOKE } else { &FULL };
    let bins = match args.bins {
        Some(dir) => dir,
        None => std::env::current_exe()?
            .parent()
            .context("the binary has a directory")?
            .to_path_buf(),
    };
    let mut cluster = if args.connect {
        Cluster::connect(&Endpoints {
            nats: args.nats.clone(),
            nats_nkey_file: Some(args.nats_nkey_file.clone()),
            nats_ca_file: Some(args.nats_ca_file.clone()),
            services: [
                args.capacity.clone(),
                args.donations.clone(),
                args.intake.clone(),
                args.matcher.clone(),
            ],
            tokens_file: args.tokens_file.clone(),
            tls: refer_client::tls::ClientTls {
                ca_file: Some(args.ca_file.clone()),
                ..Default::default()
            },
        })
        .await?
    } else {
        Cluster::start(bins).await?
    };
    let last_run = match &args.compare {
        Some(path) => Some(
            figures::Figures::read(path)
                .with_context(|| format!("--compare: the last run's figures at {}", path.display()))?,
        ),
        None => None,
    };
    let mut report = Report::default();
    let machine = format!(
        "{} cores, {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|c| c.lines().find(|l| l.starts_with("model name")).map(|l| l
                .split(':')
                .nth(1)
                .unwrap_or("")
                .trim()
                .to_owned()))
            .unwrap_or_default()
    );
    report.add(format!(
        "refer-bench {} seed {} on {machine}",
        if args.smoke { "--smoke" } else { "(full)" },
        args.seed
    ));
    let mut figures = figures::Figures {
        mode: if args.smoke { "smoke" } else { "full" }.into(),
        seed: args.seed,
        machine: machine.clone(),
        commit: std::process::Command::new("git")
            .args(["rev-parse", "--short", "HEAD"])
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|c| c.trim().to_owned())
            .unwrap_or_default(),
        ..Default::default()
    };
    use figures::Better::{Higher, Lower};
    // A latency's baseline: the time of one durable raw publish (below).
    const RAW_MS: Option<&str> = Some("raw_publish_ms");
    const RAW_ATOMIC: Option<&str> = Some("raw_atomic_per_s");
    let latency = |f: &mut figures::Figures, name: &str, l: &Latencies| {
        f.add(&format!("{name}_p50_ms"), l.quantile_ms(0.5), "ms", Lower, RAW_MS);
        f.add(&format!("{name}_p99_ms"), l.quantile_ms(0.99), "ms", Lower, RAW_MS);
    };

    // W1: operation night.
    let night = Scenario {
        providers: sizes.night_providers,
        donations: 0,
        people: sizes.night_people,
        ..Scenario::operation_night(args.seed)
    }
    .instance();
    let night = renumber(night, 0);
    let (registered, declared) = register_sites(&cluster, &night.providers, 0, "night").await;
    report.add(format!(
        "W1 register {} providers: {}",
        night.providers.len(),
        registered.describe()
    ));
    report.add(format!("W1 declare capacity: {}", declared.describe()));
    let watched: Vec<(usize, ProviderId)> = night.providers.iter().enumerate().map(|(i, p)| (i, p.id)).collect();
    let mut arrivals = watch(&cluster.capacity, &watched);
    let mut seen = BTreeMap::new();
    let kinds = [NeedKind::Shelter, NeedKind::Counseling, NeedKind::Medical];
    // Everyone in a scenario needs a bed: one person per shelter need, each asking for three things.
    let night_people: Vec<_> = night
        .needs
        .iter()
        .filter(|n| n.spec.kind == NeedKind::Shelter)
        .enumerate()
        .map(|(i, n)| load::person(&format!("night-{i}"), &n.spec, &kinds))
        .collect();
    let count = night_people.len();
    let sent = submit_paced(&cluster, night_people, count as f64).await;
    let night_latency = proposals(&mut arrivals, &mut seen, &sent.needs, Duration::from_secs(10)).await;
    report.add(format!(
        "W1 {count} people x 3 needs within 1 s: {} of {} needs proposed to a provider ({} requests failed); need -> proposal visible to the provider: {}; intake's ack: {}",
        night_latency.micros.len(),
        sent.needs.len(),
        sent.failed,
        night_latency.summary(),
        sent.acked.summary()
    ));

    latency(&mut figures, "w1_proposal", &night_latency);
    latency(&mut figures, "w1_ack", &sent.acked);

    // W2: national day.
    eprintln!("-- W2: national day");
    let day = Scenario {
        providers: sizes.day_providers,
        donations: sizes.day_donations,
        people: sizes.day_people,
        capacity_factor: 1.0,
        ..Scenario::regional(args.seed)
    }
    .instance();
    let day = renumber(day, 0x10_0000);
    let beds = day
        .providers
        .iter()
        .filter(|p| p.free.contains_key(&ServiceKind::ShelterBed))
        .count();
    let slots: u32 = day
        .providers
        .iter()
        .flat_map(|p| {
            p.free
                .iter()
                .filter(|(s, _)| **s != ServiceKind::ShelterBed)
                .map(|(_, n)| *n)
        })
        .sum();
    let first_day = sizes.night_providers;
    let (registered, declared) = register_sites(&cluster, &day.providers, first_day, "day").await;
    report.add(format!(
        "W2 register {} providers ({beds} with survivor beds, {slots} other service slots): capacity service {}",
        day.providers.len(),
        registered.describe()
    ));
    report.add(format!("W2 declare capacity: {}", declared.describe()));
    let donated = run(day.donations.len(), 32, |k| {
        let mut client = cluster.donations.clone();
        let request = load::register_donation(&day.donations[k]);
        async move {
            client
                .register_donation(authed(&cluster::business(), request))
                .await
                .map(|_| ())
        }
    })
    .await;
    report.add(format!(
        "W2 register {} donations: donations service {}",
        day.donations.len(),
        donated.describe()
    ));

    let targets: Vec<(usize, cap::SetCapacityRequest)> = day
        .providers
        .iter()
        .enumerate()
        .flat_map(|(k, s)| set_capacity(s, "base").into_iter().map(move |r| (first_day + k, r)))
        .collect();
    let update = |i: usize, round: &str| {
        let (site, mut request) = targets[i % targets.len()].clone();
        request.declared += (i % 2) as u32;
        request.idempotency_key = format!("bench-update-{round}-{i}");
        (cluster::provider_token(site_org(site)), request)
    };
    let updates = run(sizes.updates, sizes.clients, |i| {
        let mut client = cluster.capacity.clone();
        let (token, request) = update(i, "day");
        async move { client.set_capacity(authed(&token, request)).await.map(|_| ()) }
    })
    .await;
    let day_people = load::people(&day, "day");
    let placed = run(day_people.len(), 16, |i| {
        let mut client = cluster.intake.clone();
        let request = day_people[i].clone();
        async move {
            client
                .request_placement(authed(&cluster::intake(), request))
                .await
                .map(|_| ())
        }
    })
    .await;
    report.add(format!(
        "W2 {} capacity updates, {} clients: {}",
        sizes.updates,
        sizes.clients,
        updates.describe()
    ));
    report.add(format!(
        "W2 {} people ({} needs): intake service {}",
        day_people.len(),
        day.needs.len(),
        placed.describe()
    ));
    // Raw JetStream baselines, same server, same stored message size, measured
    // once the services have finished what W2 started (the system is quiet).
    let js = async_nats::jetstream::new(cluster.nats().await?);
    let waited = baseline::quiet(&js, "REFER", Duration::from_secs(120)).await?;
    let w2_rss = cluster.peak_rss_mb();
    eprintln!(
        "-- Raw JetStream baselines (after {:.1} s for the system to go quiet)",
        waited.as_secs_f64()
    );
    let size = baseline::average_message_bytes(&js, "REFER")
        .await?
        .saturating_sub(70)
        .max(16);
    let one = baseline::publish_one_at_a_time(&js, sizes.raw_one, size).await?;
    let pipelined = baseline::publish_pipelined(&js, sizes.raw_pipelined, size).await?;
    let atomic = baseline::publish_atomic_batches(&js, sizes.raw_pipelined, size).await?;
    figures.add("raw_one_per_s", one, "/s", Higher, None);
    figures.add("raw_publish_ms", 1000.0 / one, "ms", Lower, None);
    figures.add("raw_pipelined_per_s", pipelined, "/s", Higher, None);
    figures.add("raw_atomic_per_s", atomic, "/s", Higher, None);
    figures.add("w2_updates_per_s", updates.per_second(), "/s", Higher, RAW_ATOMIC);
    figures.add("w2_placements_per_s", placed.per_second(), "/s", Higher, RAW_ATOMIC);
    report.add(format!(
        "raw JetStream publish, {size} B payloads: one at a time {one:.0}/s, pipelined (256 in flight) {pipelined:.0}/s, atomic batches of {} {atomic:.0}/s",
        baseline::ATOMIC_BATCH
    ));
    // What the cipher costs: two idle servers of the bench's own, side by
    // side, one encrypting its store as deployed and one not, the same
    // baselines on each in the order encrypted, plain, plain, encrypted (a
    // drift of the shared machine falls on both alike), each figure the
    // mean of its two runs. The system's own server above encrypts too.
    match cipher_cost(sizes, size).await {
        Ok([(e_one, p_one), (e_pipelined, p_pipelined), (e_atomic, p_atomic)]) => {
            figures.add("raw_encrypted_one_per_s", e_one, "/s", Higher, None);
            figures.add("raw_encrypted_pipelined_per_s", e_pipelined, "/s", Higher, None);
            figures.add("raw_encrypted_atomic_per_s", e_atomic, "/s", Higher, None);
            figures.add("raw_unencrypted_one_per_s", p_one, "/s", Higher, None);
            figures.add("raw_unencrypted_pipelined_per_s", p_pipelined, "/s", Higher, None);
            figures.add("raw_unencrypted_atomic_per_s", p_atomic, "/s", Higher, None);
            report.add(format!(
                "encryption at rest ({}), idle servers side by side, encrypted / unencrypted: one at a time \
                 {e_one:.0}/{p_one:.0}/s = {:.2}x, pipelined {e_pipelined:.0}/{p_pipelined:.0}/s = {:.2}x, \
                 atomic batches {e_atomic:.0}/{p_atomic:.0}/s = {:.2}x",
                refer_testkit::STORE_CIPHER,
                e_one / p_one,
                e_pipelined / p_pipelined,
                e_atomic / p_atomic
            ));
        }
        Err(e) => eprintln!("no cipher comparison (no local nats-server: {e})"),
    }

    // Capacity appearing -> a waitlisted need proposed.
    eprintln!("-- Capacity appearing -> a waitlisted need proposed");
    let mut waitlist = Latencies::default();
    for k in 0..sizes.waitlist_samples {
        let lang = private_language(k);
        let site = open_site(cluster::run_id(0x9000_0000 + k as u128), &lang, 0, 40.0);
        let index = 100_000 + k;
        let token = cluster::provider_token(site_org(index));
        cluster
            .capacity
            .register_provider(authed(&token, register_provider(index, &site)))
            .await?;
        let mut rx = watch(&cluster.capacity, &[(index, site.id)]);
        let placement = cluster
            .intake
            .request_placement(authed(
                &cluster::intake(),
                load::person(&format!("wait-{k}"), &bed_need(&lang, 40.0), &[NeedKind::Shelter]),
            ))
            .await?
            .into_inner();
        let need = placement.needs.first().context("one need")?.need_id.clone();
        let waiting = Instant::now();
        loop {
            let p = cluster
                .intake
                .get_placement(authed(
                    &cluster::intake(),
                    intake::GetPlacementRequest {
                        placement_id: placement.placement_id.clone(),
                    },
                ))
                .await?
                .into_inner();
            if p.needs
                .iter()
                .any(|n| n.status == intake::NeedStatus::Waitlisted as i32)
            {
                break;
            }
            anyhow::ensure!(
                waiting.elapsed() < Duration::from_secs(10),
                "need {need} was never waitlisted"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let mut request = set_capacity(&site, "wait").remove(0);
        request.declared = 1;
        let appeared = Instant::now();
        cluster.capacity.set_capacity(authed(&token, request)).await?;
        let referral = first_referral(&need).context("need id")?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while let Ok(Some((id, at))) = tokio::time::timeout_at(deadline, rx.recv()).await {
            if id == referral {
                waitlist.push(at - appeared);
                break;
            }
        }
    }
    report.add(format!(
        "capacity appearing -> waitlisted need proposed: {}",
        waitlist.summary()
    ));
    latency(&mut figures, "waitlist_proposal", &waitlist);

    // Need -> proposal while needs arrive at a quarter of `rate`, then at `rate`.
    eprintln!("-- Need -> proposal at a steady rate");
    let mut rated = Vec::new();
    for (phase, (per_second, lang)) in [(sizes.rate / 4, "eo"), (sizes.rate, "ia")].into_iter().enumerate() {
        let count = per_second * sizes.rate_seconds;
        let first = 200_000 + 100 * phase;
        let sites: Vec<ProviderSite> = (0..40)
            .map(|k| {
                let id = cluster::run_id(0x9100_0000 + (first + k) as u128);
                open_site(id, lang, (count / 20 + 10) as u32, 41.0)
            })
            .collect();
        register_sites(&cluster, &sites, first, lang).await;
        let watched: Vec<(usize, ProviderId)> = sites.iter().enumerate().map(|(k, s)| (first + k, s.id)).collect();
        let mut arrivals = watch(&cluster.capacity, &watched);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let people: Vec<_> = (0..count)
            .map(|i| load::person(&format!("{lang}-{i}"), &bed_need(lang, 41.0), &[NeedKind::Shelter]))
            .collect();
        let sent = submit_paced(&cluster, people, per_second as f64).await;
        let mut seen = BTreeMap::new();
        let latencies = proposals(&mut arrivals, &mut seen, &sent.needs, Duration::from_secs(20)).await;
        report.add(format!(
            "{per_second} needs/s for {} s: {} of {} proposed ({} requests failed); need -> proposal: {}; intake's ack: {}",
            sizes.rate_seconds,
            latencies.micros.len(),
            sent.needs.len(),
            sent.failed,
            latencies.summary(),
            sent.acked.summary()
        ));
        latency(&mut figures, &format!("rate_{per_second}_proposal"), &latencies);
        latency(&mut figures, &format!("rate_{per_second}_ack"), &sent.acked);
        rated.push((per_second, latencies));
    }

    // W3: stress, capacity updates and needs as fast as the system takes them.
    eprintln!("-- W3: stress, capacity updates and needs as fast as the system takes them");
    let stop_at = Instant::now() + sizes.stress;
    let started = Instant::now();
    let stress_updates = Arc::new(Mutex::new(stats::Timeline::default()));
    let stress_needs = Arc::new(Mutex::new(stats::Timeline::default()));
    let mut clients = Vec::new();
    for c in 0..sizes.clients {
        let (mut capacity, mut intake_client) = (cluster.capacity.clone(), cluster.intake.clone());
        let (updates_seen, needs_seen) = (stress_updates.clone(), stress_needs.clone());
        let work: Vec<_> = (0..2000).map(|i| update(c * 2000 + i, "stress")).collect();
        let people: Vec<_> = day_people.clone();
        clients.push(tokio::spawn(async move {
            let mut i = 0usize;
            while Instant::now() < stop_at {
                if c % 2 == 0 {
                    let (token, request) = work[i % work.len()].clone();
                    if capacity.set_capacity(authed(&token, request)).await.is_ok() {
                        updates_seen.lock().expect("lock").count(started.elapsed());
                    }
                } else {
                    let mut person = people[i % people.len()].clone();
                    person.idempotency_key = format!("bench-stress-{}{c}-{i}", cluster::run_tag());
                    if intake_client
                        .request_placement(authed(&cluster::intake(), person))
                        .await
                        .is_ok()
                    {
                        needs_seen.lock().expect("lock").count(started.elapsed());
                    }
                }
                i += 1;
            }
        }));
    }
    for client in clients {
        let _ = client.await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let stress_updates = stress_updates.lock().expect("lock").clone();
    let stress_needs = stress_needs.lock().expect("lock").clone();
    let stress_update_rate = stress_updates.buckets.iter().sum::<u64>() as f64 / elapsed;
    let stress_request_rate = stress_needs.buckets.iter().sum::<u64>() as f64 / elapsed;
    figures.add("w3_updates_per_s", stress_update_rate, "/s", Higher, RAW_ATOMIC);
    figures.add("w3_requests_per_s", stress_request_rate, "/s", Higher, RAW_ATOMIC);
    report.add(format!(
        "W3 {} clients for {:.0} s: {:.0} capacity updates/s and {:.0} placement requests/s with durable ack",
        sizes.clients, elapsed, stress_update_rate, stress_request_rate
    ));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let end_rss = cluster.peak_rss_mb();

    // The matcher's rebuild, beside a raw ordered replay of the same stream,
    // once the services have carried out what W3 left them.
    let waited = baseline::quiet(&js, "REFER", Duration::from_secs(120)).await?;
    eprintln!(
        "-- The matcher's rebuild, beside a raw ordered replay of the same stream (after {:.1} s for the system to go quiet)",
        waited.as_secs_f64()
    );
    let rebuild_db = sled::Config::new().temporary(true).open()?;
    let store = refer_eventstore::EventStore::open(
        cluster.nats().await?,
        refer_eventstore::StreamSettings::default(),
        rebuild_db,
    )
    .await?;
    let last = store.last_sequence().await?;
    let (raw_messages, raw_time) = baseline::ordered_replay(&js, "REFER").await?;
    let started = Instant::now();
    let commits = store.read_all(0, last).await?;
    let mut core = refer_matching::planner::Planner::default();
    for commit in &commits {
        core.fold(commit.seq, &commit.events);
    }
    let rebuild = started.elapsed();
    let started = Instant::now();
    core.plan_folded();
    let first_plan = started.elapsed();
    let events: usize = commits.iter().map(|c| c.events.len()).sum();
    let raw_rate = raw_messages as f64 / raw_time.as_secs_f64();
    let rebuild_rate = commits.len() as f64 / rebuild.as_secs_f64();
    figures.add("raw_replay_per_s", raw_rate, "/s", Higher, None);
    figures.add(
        "rebuild_commits_per_s",
        rebuild_rate,
        "/s",
        Higher,
        Some("raw_replay_per_s"),
    );
    report.add(format!(
        "matcher rebuild (read, decode, fold): {} commits ({events} events) in {:.2} s = {:.0} events/s; raw ordered replay {:.0} msgs/s; {}",
        commits.len(),
        rebuild.as_secs_f64(),
        events as f64 / rebuild.as_secs_f64(),
        raw_rate,
        ratio(rebuild_rate, raw_rate)
    ));
    report.add(format!(
        "matcher first plan after the rebuild: {} actions due, planned in {:.2} s",
        core.planned(),
        first_plan.as_secs_f64()
    ));

    // Lists: the first page of placements (100, the default size), for an
    // agency with 10 and for the bench's agency with every other placement
    // of the run; a page's answer should not grow with the agency.
    eprintln!("-- Lists: a page of placements, agencies with 10 and with thousands");
    for i in 0..10 {
        let request = load::person(&format!("list-{i}"), &bed_need("eo", 41.0), &[NeedKind::Shelter]);
        cluster
            .intake
            .clone()
            .request_placement(authed(&cluster::small_agency(), request))
            .await?;
    }
    for (name, token) in [("small", cluster::small_agency()), ("large", cluster::intake())] {
        let (placements, pages) = count_placements(&cluster, &token).await?;
        let mut timed = Latencies::default();
        for _ in 0..sizes.list_calls {
            let at = Instant::now();
            cluster
                .intake
                .clone()
                .list_placements(authed(&token, intake::ListPlacementsRequest::default()))
                .await?;
            timed.push(at.elapsed());
        }
        report.add(format!(
            "ListPlacements, first page, agency with {placements} placements ({pages} pages): {}",
            timed.summary()
        ));
        latency(&mut figures, &format!("list_{name}"), &timed);
    }

    // Cold restart: a new matcher process with no local state.
    if cluster.owns_services() {
        eprintln!("-- Cold restart: a new matcher process with no local state");
        cold_restart(&mut cluster, &store, &mut report).await?;
        eprintln!("-- Cold restart: a new intake process with no local state");
        intake_cold_restart(&mut cluster, &store, &mut report).await?;
    } else {
        report.add("matcher cold restart: skipped (connected to services the bench did not start)".into());
    }

    report.add(format!(
        "capacity updates with durable ack: W2 {:.0}/s ({} of atomic-batched, {} of pipelined, {} of one at a time); W3 {:.0}/s ({} of atomic-batched)",
        updates.per_second(),
        ratio(updates.per_second(), atomic),
        ratio(updates.per_second(), pipelined),
        ratio(updates.per_second(), one),
        stress_update_rate,
        ratio(stress_update_rate, atomic)
    ));
    report.add(format!(
        "peak RSS after W2: {}; at the end: {}",
        rss(&w2_rss),
        rss(&end_rss)
    ));

    std::fs::create_dir_all(&args.plots)?;
    let latency = svg::chart(
        "Need submitted -> proposal visible to the provider",
        "latency (ms, log scale)",
        "share of needs at or below (%)",
        &[
            svg::cdf("W1 operation night", &night_latency.sorted()),
            svg::cdf(&format!("{} needs/s", rated[0].0), &rated[0].1.sorted()),
            svg::cdf(&format!("{} needs/s", rated[1].0), &rated[1].1.sorted()),
            svg::cdf("capacity appears -> waitlisted need proposed", &waitlist.sorted()),
        ],
        true,
    );
    std::fs::write(args.plots.join("latency.svg"), latency)?;
    let timeline = |t: &stats::Timeline| -> Vec<(f64, f64)> {
        t.rates()
            .into_iter()
            .enumerate()
            .map(|(i, r)| (i as f64 / 10.0, r))
            .collect()
    };
    let throughput = svg::chart(
        "Commands with durable ack per second",
        "seconds",
        "per second (100 ms buckets)",
        &[
            svg::Series {
                name: "W2 capacity updates".into(),
                points: timeline(&updates.timeline),
            },
            svg::Series {
                name: "W3 capacity updates".into(),
                points: timeline(&stress_updates),
            },
            svg::Series {
                name: "W3 placement requests".into(),
                points: timeline(&stress_needs),
            },
        ],
        false,
    );
    std::fs::write(args.plots.join("throughput.svg"), throughput)?;
    report.add(format!(
        "plots: {} and {}",
        args.plots.join("latency.svg").display(),
        args.plots.join("throughput.svg").display()
    ));
    let figures_path = args.plots.join("figures.json");
    figures.write(&figures_path)?;
    report.add(format!("figures: {}", figures_path.display()));
    if let Some(last) = &last_run {
        if last.mode != figures.mode {
            report.add(format!(
                "compare: the last run was {} and this one {}: not comparable",
                last.mode, figures.mode
            ));
        } else {
            report.add(format!(
                "compare with {} ({}), each figure relative to its run's raw baseline; !! marks more than {:.0}% worse:",
                last.commit,
                last.machine,
                (figures::FLAG_WORSE - 1.0) * 100.0
            ));
            for change in figures::compare(last, &figures) {
                report.add(change.describe());
            }
        }
    }
    if !cluster.owns_services() {
        let cleaned = cleanup::clean_up(&cluster).await?;
        report.add(format!(
            "taken out of service after the run: {} providers suspended, {} donations withdrawn, {} open needs cancelled",
            cleaned.providers, cleaned.donations, cleaned.needs
        ));
    }
    Ok(())
}

/// Restarts intake with no local state and times it until its read model
/// holds the newest placement again (its files are folded in stream order).
async fn intake_cold_restart(
    cluster: &mut Cluster,
    store: &refer_eventstore::EventStore,
    report: &mut Report,
) -> anyhow::Result<()> {
    let last = store.last_sequence().await?;
    let newest = intake::ListPlacementsRequest {
        page_size: 1,
        page_token: String::new(),
    };
    let newest = cluster
        .intake
        .list_placements(authed(&cluster::intake(), newest))
        .await?
        .into_inner()
        .placements
        .pop()
        .context("a placement to find again")?
        .placement_id;
    let started = Instant::now();
    cluster.restart_intake_cold().await?;
    loop {
        let get = intake::GetPlacementRequest {
            placement_id: newest.clone(),
        };
        if cluster
            .intake
            .get_placement(authed(&cluster::intake(), get))
            .await
            .is_ok()
        {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(300),
            "intake did not catch up; its log:\n{}",
            cluster.log("intake")
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    report.add(format!(
        "intake cold restart (process start, {last} stream messages, to its newest placement): {:.2} s",
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// Restarts the matcher with no local state and times it until it has
/// caught up with the stream: until its checkpoint is where the warm
/// matcher's was (the last event it folds: it reads only providers,
/// donations and needs, so the stream's own last message may be another's).
async fn cold_restart(
    cluster: &mut Cluster,
    store: &refer_eventstore::EventStore,
    report: &mut Report,
) -> anyhow::Result<()> {
    let last = store.last_sequence().await?;
    let checkpoint = |cluster: &Cluster| {
        let mut client = cluster.matcher.clone();
        async move {
            client
                .get_status(authed(&cluster::admin(), matcher::GetStatusRequest {}))
                .await
                .map(|r| r.into_inner().checkpoint)
        }
    };
    // The warm matcher's position, once it holds still (the system is quiet).
    let mut warm = checkpoint(cluster).await?;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = checkpoint(cluster).await?;
        if now == warm {
            break;
        }
        warm = now;
    }
    let started = Instant::now();
    cluster.restart_matcher_cold().await?;
    loop {
        if checkpoint(cluster).await.is_ok_and(|c| c >= warm) {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(300),
            "the matcher did not catch up; its log:\n{}",
            cluster.log("matcher")
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    report.add(format!(
        "matcher cold restart (process start, {last} stream messages, to caught up): {:.2} s",
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// Gives an instance's providers and donations ids of their own (scenarios
/// number them from the same base) and of this run.
fn renumber(mut instance: refer_matching::Instance, offset: u128) -> refer_matching::Instance {
    for p in &mut instance.providers {
        p.id = ProviderId::from_u128(cluster::run_id(p.id.as_uuid().as_u128() + offset));
    }
    for d in &mut instance.donations {
        d.id = refer_domain::ids::DonationId::from_u128(cluster::run_id(d.id.as_uuid().as_u128() + offset));
    }
    instance
}

fn rss(figures: &[(&str, f64)]) -> String {
    figures
        .iter()
        .map(|(name, mb)| format!("{name} {mb:.0} MB"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The raw baselines (one at a time, pipelined, atomic batches) on an
/// encrypted and an unencrypted idle server: `[(encrypted, plain); 3]`,
/// each the mean of two runs in the order encrypted, plain, plain, encrypted.
async fn cipher_cost(sizes: &Sizes, size: usize) -> anyhow::Result<[(f64, f64); 3]> {
    let encrypted = refer_testkit::NatsServer::start_with(refer_testkit::ServerOptions::default()).await?;
    let plain = refer_testkit::NatsServer::start_with(refer_testkit::ServerOptions::unencrypted()).await?;
    let e = async_nats::jetstream::new(encrypted.connect().await);
    let p = async_nats::jetstream::new(plain.connect().await);
    let all = |js: async_nats::jetstream::Context| async move {
        Ok::<_, anyhow::Error>([
            baseline::publish_one_at_a_time(&js, sizes.raw_one, size).await?,
            baseline::publish_pipelined(&js, sizes.raw_pipelined, size).await?,
            baseline::publish_atomic_batches(&js, sizes.raw_pipelined, size).await?,
        ])
    };
    let e1 = all(e.clone()).await?;
    let p1 = all(p.clone()).await?;
    let p2 = all(p).await?;
    let e2 = all(e).await?;
    Ok([0, 1, 2].map(|i| ((e1[i] + e2[i]) / 2.0, (p1[i] + p2[i]) / 2.0)))
}
