//! The system under test: a private nats-server (fsync before every ack)
//! and the four services as their own processes, as in production, so each
//! one's memory can be read and the matcher can be restarted cold.

use anyhow::{bail, Context};
use refer_domain::ids::OrgId;
use refer_proto::capacity::v1::capacity_client::CapacityClient;
use refer_proto::donations::v1::donations_client::DonationsClient;
use refer_proto::intake::v1::intake_client::IntakeClient;
use refer_proto::matcher::v1::matcher_client::MatcherClient;
use refer_service::auth::hash_token;
use refer_testkit::{NatsServer, ServerOptions};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

pub const ADMIN: &str = "bench-admin";
pub const INTAKE: &str = "bench-intake";
pub const AGENCY: OrgId = OrgId::from_u128(0xA6E0);
/// Provider sites are run by this many partner organisations, round robin.
pub const PROVIDER_ORGS: usize = 16;
pub const BUSINESS: &str = "bench-business";
pub const BUSINESS_ORG: OrgId = OrgId::from_u128(0xB0);

pub fn provider_token(org: usize) -> String {
    format!("bench-provider-{org}")
}
pub fn provider_org(org: usize) -> OrgId {
    OrgId::from_u128(0x1000 + org as u128)
}

pub const SERVICES: [&str; 4] = ["capacity", "donations", "intake", "matcher"];

pub struct Cluster {
    pub nats: NatsServer,
    pub dir: tempfile::TempDir,
    bins: PathBuf,
    ports: [u16; 4],
    children: [Option<Child>; 4],
    pub capacity: CapacityClient<Channel>,
    pub donations: DonationsClient<Channel>,
    pub intake: IntakeClient<Channel>,
    pub matcher: MatcherClient<Channel>,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn tokens_file(dir: &Path) -> anyhow::Result<PathBuf> {
    let mut text = String::new();
    let mut add = |name: &str, role: &str, org: OrgId, token: &str| {
        text.push_str(&format!(
            "[[token]]\nname = \"{name}\"\nrole = \"{role}\"\norg = \"{}\"\nsha256 = \"{}\"\n\n",
            org.as_uuid(),
            hash_token(token)
        ));
    };
    add("bench admin", "admin", OrgId::from_u128(0xAD), ADMIN);
    add("bench intake", "intake", AGENCY, INTAKE);
    add("bench business", "business", BUSINESS_ORG, BUSINESS);
    for org in 0..PROVIDER_ORGS {
        add(
            &format!("bench provider {org}"),
            "provider",
            provider_org(org),
            &provider_token(org),
        );
    }
    let path = dir.join("tokens.toml");
    std::fs::write(&path, text)?;
    Ok(path)
}

/// Starts one service binary with its own data directory, listening on `port`.
fn spawn(bins: &Path, dir: &Path, nats_url: &str, port: u16, service: &str) -> anyhow::Result<Child> {
    let log = std::fs::File::create(dir.join(format!("{service}.log")))?;
    Command::new(bins.join(format!("refer-{service}")))
        .env("REFER_NATS_URL", nats_url)
        .env("REFER_DATA_DIR", dir.join(service))
        .env("REFER_LISTEN", format!("127.0.0.1:{port}"))
        .env("REFER_METRICS_LISTEN", format!("127.0.0.1:{}", free_port()?))
        .env("REFER_TOKENS_FILE", dir.join("tokens.toml"))
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

async fn channel(port: u16) -> anyhow::Result<Channel> {
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match Channel::from_shared(url.clone())?.connect().await {
            Ok(channel) => return Ok(channel),
            Err(e) if Instant::now() > deadline => bail!("no service at {url} after 60 s: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
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
        let nats = NatsServer::start_with(ServerOptions { fsync_always: true })
            .await
            .context("starting nats-server")?;
        let dir = tempfile::tempdir()?;
        tokens_file(dir.path())?;
        let ports = [free_port()?, free_port()?, free_port()?, free_port()?];
        let mut children = [None, None, None, None];
        for (i, child) in children.iter_mut().enumerate() {
            *child = Some(spawn(&bins, dir.path(), &nats.url(), ports[i], SERVICES[i])?);
        }
        Ok(Cluster {
            capacity: CapacityClient::new(channel(ports[0]).await?),
            donations: DonationsClient::new(channel(ports[1]).await?),
            intake: IntakeClient::new(channel(ports[2]).await?),
            matcher: MatcherClient::new(channel(ports[3]).await?),
            nats,
            dir,
            bins,
            ports,
            children,
        })
    }

    /// Peak resident memory of each service so far, in MB (`VmHWM`).
    pub fn peak_rss_mb(&self) -> Vec<(&'static str, f64)> {
        SERVICES
            .iter()
            .zip(&self.children)
            .filter_map(|(name, child)| {
                let pid = child.as_ref()?.id();
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
        if let Some(mut child) = self.children[3].take() {
            Command::new("kill").arg("-TERM").arg(child.id().to_string()).status()?;
            child.wait()?;
        }
        std::fs::remove_dir_all(self.dir.path().join("matcher")).ok();
        self.children[3] = Some(spawn(
            &self.bins,
            self.dir.path(),
            &self.nats.url(),
            self.ports[3],
            "matcher",
        )?);
        self.matcher = MatcherClient::new(channel(self.ports[3]).await?);
        Ok(())
    }

    pub fn log(&self, service: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{service}.log"))).unwrap_or_default()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in self.children.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
