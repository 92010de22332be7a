//! The system under test: by default a private nats-server (fsync before
//! every ack) and the four services as their own processes, as in
//! production, so each one's memory can be read and the matcher can be
//! restarted cold. Or services already running (`--connect`): the bench adds
//! tokens of its own to their tokens file for the run and takes them out
//! again at the end, and gives everything it creates ids of its own.

use anyhow::{bail, Context};
use refer_client::tokens::hash_token;
use refer_domain::ids::OrgId;
use refer_proto::capacity::v1::capacity_client::CapacityClient;
use refer_proto::donations::v1::donations_client::DonationsClient;
use refer_proto::intake::v1::intake_client::IntakeClient;
use refer_proto::matcher::v1::matcher_client::MatcherClient;
use refer_testkit::{NatsServer, ServerOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tonic::transport::Channel;

pub const AGENCY: OrgId = OrgId::from_u128(0xA6E0);
/// Provider sites are run by this many partner organisations, round robin.
pub const PROVIDER_ORGS: usize = 16;
pub const SMALL_AGENCY: OrgId = OrgId::from_u128(0xA6E1);
pub const BUSINESS_ORG: OrgId = OrgId::from_u128(0xB0);

/// This run's tag: empty for a private cluster; random when connected to
/// running services, so tokens cannot be guessed and ids and idempotency
/// keys never meet an earlier run's.
static RUN: OnceLock<u64> = OnceLock::new();

fn run() -> u64 {
    *RUN.get_or_init(|| 0)
}

/// Part of every intake idempotency key of this run.
pub fn run_tag() -> String {
    match run() {
        0 => String::new(),
        tag => format!("{tag:016x}-"),
    }
}

/// An id of this run: `base` (below 2^64) with the run in the high bits.
pub fn run_id(base: u128) -> u128 {
    (u128::from(run()) << 64) | base
}

fn token(name: &str) -> String {
    format!("bench-{}{name}", run_tag())
}
pub fn admin() -> String {
    token("admin")
}
pub fn intake() -> String {
    token("intake")
}
/// A second agency, with a handful of placements (lists are measured for
/// it beside the bench's own agency, which holds every other placement).
pub fn small_agency() -> String {
    token("intake-small")
}
pub fn business() -> String {
    token("business")
}
pub fn provider_token(org: usize) -> String {
    token(&format!("provider-{org}"))
}
pub fn provider_org(org: usize) -> OrgId {
    OrgId::from_u128(0x1000 + org as u128)
}

pub const SERVICES: [&str; 4] = ["capacity", "donations", "intake", "matcher"];

pub struct Cluster {
    pub nats_url: String,
    /// The operator's credential on that bus (an nkey seed file), its CA.
    pub nats_nkey_file: Option<PathBuf>,
    pub nats_ca_file: Option<PathBuf>,
    own: Option<Own>,
    /// Connected: the tokens file, and the entries this run added to it.
    added_tokens: Option<(PathBuf, String)>,
    pub capacity: CapacityClient<Channel>,
    pub donations: DonationsClient<Channel>,
    pub intake: IntakeClient<Channel>,
    pub matcher: MatcherClient<Channel>,
}

/// A private NATS and the services started as processes (stopped when
/// this is dropped, also when the start failed half way).
struct Own {
    nats: NatsServer,
    dir: tempfile::TempDir,
    bins: PathBuf,
    /// Each service's gRPC port, then its metrics port.
    ports: [u16; 8],
    children: [Option<Child>; 4],
}

impl Own {
    fn spawn(&self, i: usize) -> anyhow::Result<Child> {
        let bus = self.nats.access();
        let (cert, key) = bus.keys.service_cert();
        spawn(
            &self.bins,
            self.dir.path(),
            (&bus.urls, &bus.keys.seed_file(SERVICES[i]), &bus.keys.nats_ca_file()),
            (&cert, &key),
            [self.ports[i], self.ports[4 + i]],
            SERVICES[i],
        )
    }

    /// Connects to service `i` once it listens. If its process exits first,
    /// or it does not listen within 60 s, says so with the end of its log.
    async fn reach(&mut self, i: usize) -> anyhow::Result<Channel> {
        let url = format!("https://127.0.0.1:{}", self.ports[i]);
        let tls = refer_client::tls::ClientTls {
            ca_file: Some(self.nats.access().keys.ca_file()),
            ..Default::default()
        };
        let child = &mut self.children[i];
        let exited = || Ok(child.as_mut().map(Child::try_wait).transpose()?.flatten());
        let reached = connect_to(url, &tls, exited).await;
        reached.with_context(|| {
            let log = std::fs::read_to_string(self.dir.path().join(format!("{}.log", SERVICES[i])));
            let log = log.unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            format!("refer-{}; the end of its log:\n{}", SERVICES[i], tail.join("\n"))
        })
    }
}

impl Drop for Own {
    fn drop(&mut self) {
        for child in self.children.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Where the running services are (`--connect`).
pub struct Endpoints {
    pub nats: String,
    /// The operator's nkey seed file for that bus (deploy/nats/auth.conf), its CA.
    pub nats_nkey_file: Option<PathBuf>,
    pub nats_ca_file: Option<PathBuf>,
    /// capacity, donations, intake, matcher
    pub services: [String; 4],
    /// How the services' certificates are verified.
    pub tls: refer_client::tls::ClientTls,
    pub tokens_file: PathBuf,
}

/// The bench's entries for a tokens file.
fn token_entries() -> String {
    let mut text = String::new();
    let mut add = |name: &str, role: &str, org: OrgId, token: &str| {
        text.push_str(&format!(
            "[[token]]\nname = \"{name}\"\nrole = \"{role}\"\norg = \"{}\"\nsha256 = \"{}\"\n\n",
            org.as_uuid(),
            hash_token(token)
        ));
    };
    let tag = run_tag();
    add(&format!("bench {tag}admin"), "admin", OrgId::from_u128(0xAD), &admin());
    add(&format!("bench {tag}intake"), "intake", AGENCY, &intake());
    add(
        &format!("bench {tag}intake-small"),
        "intake",
        SMALL_AGENCY,
        &small_agency(),
    );
    add(&format!("bench {tag}business"), "business", BUSINESS_ORG, &business());
    for org in 0..PROVIDER_ORGS {
        add(
            &format!("bench {tag}provider {org}"),
            "provider",
            provider_org(org),
            &provider_token(org),
        );
    }
    text
}

/// Starts one service binary with its own data directory, listening on
/// `port` (gRPC) and `metrics`.
fn spawn(
    bins: &Path,
    dir: &Path,
    (nats_url, nkey_file, ca_file): (&str, &Path, &Path),
    (cert_file, key_file): (&Path, &Path),
    [port, metrics]: [u16; 2],
    service: &str,
) -> anyhow::Result<Child> {
    let log = std::fs::File::create(dir.join(format!("{service}.log")))?;
    Command::new(bins.join(format!("refer-{service}")))
        .env("REFER_NATS_URL", nats_url)
        .env("REFER_NATS_NKEY_FILE", nkey_file)
        .env("REFER_NATS_CA_FILE", ca_file)
        .env("REFER_TLS_CERT_FILE", cert_file)
        .env("REFER_TLS_KEY_FILE", key_file)
        .env("REFER_DATA_DIR", dir.join(service))
        .env("REFER_LISTEN", format!("127.0.0.1:{port}"))
        .env("REFER_METRICS_LISTEN", format!("127.0.0.1:{metrics}"))
        .env("REFER_TOKENS_FILE", dir.join("tokens.toml"))
        .env("REFER_KEK_FILE", dir.join("kek.hex"))
        // The services' own logs (in the run's directory): REFER_BENCH_LOG=info to see more.
        .env(
            "RUST_LOG",
            std::env::var("REFER_BENCH_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting refer-{service}"))
}

/// Connects to `url` once a service answers there, waiting at most 60 s,
/// or less if `exited` reports the process behind it gone.
async fn connect_to(
    url: String,
    tls: &refer_client::tls::ClientTls,
    mut exited: impl FnMut() -> std::io::Result<Option<std::process::ExitStatus>>,
) -> anyhow::Result<Channel> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match tls.endpoint(&url, "--ca-file")?.connect().await {
            Ok(channel) => return Ok(channel),
            Err(e) => {
                if let Some(status) = exited()? {
                    bail!("no service at {url}: it exited ({status})");
                }
                if Instant::now() > deadline {
                    bail!("no service at {url} after 60 s: {e}");
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// For services the bench did not start: no process to watch.
fn no_process() -> std::io::Result<Option<std::process::ExitStatus>> {
    Ok(None)
}

impl Cluster {
    pub async fn start(bins: PathBuf) -> anyhow::Result<Self> {
        for service in SERVICES {
            let bin = bins.join(format!("refer-{service}"));
            if !bin.exists() {
                bail!(
                    "{} is missing: build the services first (`cargo build --release --bins`), or pass --bins",
                    bin.display()
                );
            }
        }
        // As deployed: fsync before every ack, the store encrypted at rest.
        let nats = NatsServer::start_with(ServerOptions {
            fsync_always: true,
            encrypted: true,
        })
        .await
        .context("starting nats-server")?;
        // The operator makes every stream and bucket first (no service may).
        let operator = refer_client::bus::connect(&refer_client::bus::Bus {
            url: nats.url(),
            nkey_file: Some(nats.access().keys.seed_file("operator")),
            ca_file: Some(nats.access().keys.nats_ca_file()),
            plaintext: false,
            inbox: refer_client::bus::inbox_of("operator"),
        })
        .await?;
        let stream = refer_client::provision::StreamSettings::default();
        let idle = refer_client::provision::CONSOLE_IDLE;
        refer_client::provision::provision(&async_nats::jetstream::new(operator), &stream, idle)
            .await
            .context("provisioning the bus")?;
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("tokens.toml"), token_entries())?;
        // The run's own key-encryption key for sealed data.
        let kek = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
        std::fs::write(dir.path().join("kek.hex"), kek)?;
        let mut own = Own {
            nats,
            dir,
            bins,
            ports: refer_testkit::free_ports()?,
            children: [None, None, None, None],
        };
        for i in 0..SERVICES.len() {
            own.children[i] = Some(own.spawn(i)?);
        }
        Ok(Cluster {
            capacity: CapacityClient::new(own.reach(0).await?),
            donations: DonationsClient::new(own.reach(1).await?),
            intake: IntakeClient::new(own.reach(2).await?),
            matcher: MatcherClient::new(own.reach(3).await?),
            nats_url: own.nats.url(),
            nats_nkey_file: Some(own.nats.access().keys.seed_file("operator")),
            nats_ca_file: Some(own.nats.access().keys.nats_ca_file()),
            added_tokens: None,
            own: Some(own),
        })
    }

    /// Uses services already running. The run gets a random tag; its tokens
    /// are appended to the services' tokens file (they re-read it within two
    /// seconds) and removed when the bench ends.
    pub async fn connect(to: &Endpoints) -> anyhow::Result<Self> {
        RUN.set(rand_tag()).ok();
        let entries = token_entries();
        let mut text = std::fs::read_to_string(&to.tokens_file).with_context(|| {
            format!(
                "cannot read the services' tokens file {} (pass --tokens-file)",
                to.tokens_file.display()
            )
        })?;
        text.push_str(&entries);
        std::fs::write(&to.tokens_file, &text)?;
        let channels = async {
            Ok::<_, anyhow::Error>([
                connect_to(to.services[0].clone(), &to.tls, no_process).await?,
                connect_to(to.services[1].clone(), &to.tls, no_process).await?,
                connect_to(to.services[2].clone(), &to.tls, no_process).await?,
                connect_to(to.services[3].clone(), &to.tls, no_process).await?,
            ])
        };
        let [capacity, donations, intake, matcher] = match channels.await {
            Ok(channels) => channels,
            Err(err) => {
                // Nothing will run: take the tokens out again at once.
                std::fs::write(&to.tokens_file, text.replacen(entries.as_str(), "", 1))?;
                return Err(err);
            }
        };
        let cluster = Cluster {
            capacity: CapacityClient::new(capacity),
            donations: DonationsClient::new(donations),
            intake: IntakeClient::new(intake),
            matcher: MatcherClient::new(matcher),
            nats_url: to.nats.clone(),
            nats_nkey_file: to.nats_nkey_file.clone(),
            nats_ca_file: to.nats_ca_file.clone(),
            added_tokens: Some((to.tokens_file.clone(), entries)),
            own: None,
        };
        tokio::time::sleep(Duration::from_millis(2500)).await;
        Ok(cluster)
    }

    pub async fn nats(&self) -> anyhow::Result<async_nats::Client> {
        refer_client::bus::connect(&refer_client::bus::Bus {
            url: self.nats_url.clone(),
            nkey_file: self.nats_nkey_file.clone(),
            ca_file: self.nats_ca_file.clone(),
            plaintext: self.nats_ca_file.is_none(),
            // The bench reads and replays with the operator's credential.
            inbox: refer_client::bus::inbox_of("operator"),
        })
        .await
    }

    /// Whether the bench started the services itself (and may restart them).
    pub fn owns_services(&self) -> bool {
        self.own.is_some()
    }

    /// Peak resident memory of each service so far, in MB (`VmHWM`).
    /// Connected services are found by process name, if on this machine.
    pub fn peak_rss_mb(&self) -> Vec<(&'static str, f64)> {
        SERVICES
            .iter()
            .enumerate()
            .filter_map(|(i, name)| {
                let pid = match &self.own {
                    Some(own) => own.children[i].as_ref()?.id(),
                    None => find_process(&format!("refer-{name}"))?,
                };
                let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
                let kb: f64 = status
                    .lines()
                    .find(|l| l.starts_with("VmHWM:"))?
                    .split_whitespace()
                    .nth(1)?
                    .parse()
                    .ok()?;
                Some((*name, kb / 1024.0))
            })
            .collect()
    }

    /// Stops the matcher (SIGTERM, as a deployment would) and forgets its
    /// local state, then starts it again: it rebuilds from the stream.
    /// Returns the new client once the process listens.
    pub async fn restart_matcher_cold(&mut self) -> anyhow::Result<()> {
        let channel = self.restart_cold(3, "matcher").await?;
        self.matcher = MatcherClient::new(channel);
        Ok(())
    }

    /// Restarts intake with its data directory deleted.
    pub async fn restart_intake_cold(&mut self) -> anyhow::Result<()> {
        let channel = self.restart_cold(2, "intake").await?;
        self.intake = IntakeClient::new(channel);
        Ok(())
    }

    /// Stops service `i` (SIGTERM), deletes its data directory `name`,
    /// starts it again; a channel to it once it answers.
    async fn restart_cold(&mut self, i: usize, name: &str) -> anyhow::Result<Channel> {
        let own = self
            .own
            .as_mut()
            .context("only services the bench started can be restarted")?;
        if let Some(mut child) = own.children[i].take() {
            Command::new("kill").arg("-TERM").arg(child.id().to_string()).status()?;
            child.wait()?;
        }
        std::fs::remove_dir_all(own.dir.path().join(name)).ok();
        own.children[i] = Some(own.spawn(i)?);
        own.reach(i).await
    }

    pub fn log(&self, service: &str) -> String {
        self.own
            .as_ref()
            .and_then(|own| std::fs::read_to_string(own.dir.path().join(format!("{service}.log"))).ok())
            .unwrap_or_default()
    }
}

/// A random, non-zero run tag (from the OS's randomness, as v4 uuids are).
fn rand_tag() -> u64 {
    (uuid::Uuid::new_v4().as_u128() as u64).max(1)
}

/// The pid of a process named `name` (its `comm`), if one runs here.
fn find_process(name: &str) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let comm = std::fs::read_to_string(entry.path().join("comm")).ok()?;
        (comm.trim() == name).then_some(pid)
    })
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // (`Own` stops the services it started.)
        // Take this run's tokens out of the services' file again.
        if let Some((file, entries)) = &self.added_tokens {
            if let Ok(text) = std::fs::read_to_string(file) {
                let _ = std::fs::write(file, text.replacen(entries.as_str(), "", 1));
            }
        }
    }
}
