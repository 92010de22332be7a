//! A private `nats-server` with JetStream for each test.
//!
//! Every test gets its own server on a free port with its own temporary store,
//! so tests run in parallel and never see each other's (or the machine's)
//! streams. The server is stopped when the handle is dropped.
//!
//! The binary is found in this order: `$REFER_NATS_SERVER`, the repository's
//! `.tools/bin/nats-server` (put there by `scripts/install-nats`), then
//! `nats-server` on `PATH`. It must be 2.12 or newer (atomic batch publish).
//!
//! Every server enforces `deploy/nats/auth.conf`, the permissions compose
//! deploys, with fresh keys ([`NatsKeys`]): [`NatsServer::connect`] is the
//! operator; a service gets its own role's seed from [`BusAccess`].
#![forbid(unsafe_code)]

mod keys;
pub mod tls;
pub use keys::{BusAccess, NatsKeys, ROLES};

use std::fs;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum TestkitError {
    #[error("no usable nats-server: {0}. Run scripts/install-nats (or set REFER_NATS_SERVER).")]
    NoServer(String),
    #[error("nats-server did not become ready within {timeout:?}; its log ends with:\n{log}")]
    NotReady { timeout: Duration, log: String },
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// How the test server stores data.
#[derive(Clone, Copy, Debug)]
pub struct ServerOptions {
    /// `sync_interval: always`: fsync every write before acknowledging it, the
    /// durable setting. Without it JetStream acks before fsync (2-minute sync).
    pub fsync_always: bool,
    /// The store encrypted at rest (`cipher` with a key of the test's own),
    /// as deployed; off only for tests that read the store's bytes as an
    /// attacker holding the operator's store key would see them.
    pub encrypted: bool,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            fsync_always: true,
            encrypted: true,
        }
    }
}

impl ServerOptions {
    /// Durable and not encrypted: for tests that read the store's files.
    pub fn unencrypted() -> Self {
        Self {
            encrypted: false,
            ..Self::default()
        }
    }
}

/// The cipher deployments use (deploy/nats/nats.conf).
pub const STORE_CIPHER: &str = "chachapoly";

/// A running `nats-server` owned by one test.
pub struct NatsServer {
    bin: PathBuf,
    dir: TempDir,
    port: u16,
    options: ServerOptions,
    child: Option<Child>,
    /// As a node of a cluster: the cluster's name, this node's route port,
    /// and every node's route port.
    cluster: Option<(String, u16, Vec<u16>)>,
    /// The credentials it accepts (a cluster's nodes share them).
    keys: NatsKeys,
}

const READY_TIMEOUT: Duration = Duration::from_secs(15);

impl NatsServer {
    /// Starts a durable server (fsync before ack) on a free port.
    pub async fn start() -> Result<Self, TestkitError> {
        Self::start_with(ServerOptions::default()).await
    }

    pub async fn start_with(options: ServerOptions) -> Result<Self, TestkitError> {
        let bin = server_binary()?;
        let keys = NatsKeys::generate()?;
        // A port picked now may be taken before the server binds it; try again then.
        let mut last_err = None;
        for _ in 0..5 {
            let dir = tempfile::Builder::new().prefix("refer-nats-").tempdir()?;
            let mut server = Self {
                bin: bin.clone(),
                dir,
                port: free_port()?,
                options,
                child: None,
                cluster: None,
                keys: keys.clone(),
            };
            match server.launch().await {
                Ok(()) => return Ok(server),
                Err(err) => last_err = Some(err),
            }
        }
        Err(last_err.expect("at least one attempt"))
    }

    /// `nats://127.0.0.1:<port>`
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// As a node of a cluster, the cluster's name.
    pub fn cluster_name(&self) -> Option<&str> {
        self.cluster.as_ref().map(|(name, _, _)| name.as_str())
    }

    /// As a node of a cluster, where other nodes open routes to it.
    pub fn route_url(&self) -> Option<String> {
        let (_, port, _) = self.cluster.as_ref()?;
        Some(format!("nats-route://127.0.0.1:{port}"))
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The JetStream store directory (survives restarts of this server).
    pub fn store_dir(&self) -> PathBuf {
        self.dir.path().join("jetstream")
    }

    /// The operator's client (every permission), retrying its first
    /// connection and reconnecting quickly after a server restart.
    pub async fn connect(&self) -> async_nats::Client {
        self.access()
            .connect_as("operator")
            .await
            .expect("connect to the test nats-server")
    }

    /// Its URL and the credential of each role.
    pub fn access(&self) -> BusAccess {
        BusAccess {
            urls: self.url(),
            keys: self.keys.clone(),
        }
    }

    /// Kills the server with SIGKILL, as a crash would. Data acknowledged with
    /// `fsync_always` survives; `restart` brings it back on the same port.
    pub fn kill(&mut self) {
        self.stop();
    }

    /// Suspends the server (SIGSTOP), as a frozen VM or a long stall
    /// would: its sockets stay open and silent, which clients and peers
    /// notice only by missed heartbeats. `resume` wakes it; a paused
    /// server is woken before it is dropped.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Wakes a paused server (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let Some(child) = &self.child else { return };
        let _ = Command::new("kill").args([signal, &child.id().to_string()]).status();
    }

    /// Starts the server again on the same port with the same store.
    pub async fn restart(&mut self) -> Result<(), TestkitError> {
        self.stop();
        self.launch().await
    }

    /// Rewrites the server's copy of deploy/nats/auth.conf with `edit` and
    /// reloads it as an operator would (`nats-server --signal reload`):
    /// connections stay open; credentials the new file drops are refused
    /// from then on. Returns once the server has taken it.
    pub async fn reload_auth(&self, edit: impl FnOnce(&str) -> String) -> Result<(), TestkitError> {
        let path = self.dir.path().join("auth.conf");
        let edited = edit(&fs::read_to_string(&path)?);
        fs::write(&path, edited)?;
        let pid = self
            .child
            .as_ref()
            .map(Child::id)
            .ok_or_else(|| TestkitError::Io(std::io::Error::other("the server is not running")))?;
        let before = self.log().matches("Reloaded server configuration").count();
        let status = Command::new(&self.bin)
            .arg("--signal")
            .arg(format!("reload={pid}"))
            .status()?;
        if !status.success() {
            return Err(TestkitError::Io(std::io::Error::other(format!("reload: {status}"))));
        }
        let deadline = Instant::now() + READY_TIMEOUT;
        while self.log().matches("Reloaded server configuration").count() == before {
            if Instant::now() > deadline {
                return Err(TestkitError::NotReady {
                    timeout: READY_TIMEOUT,
                    log: tail(&self.log(), 20),
                });
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        Ok(())
    }

    /// The server's log so far (for diagnosing a failed test).
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("nats.log")
    }

    fn config(&self) -> String {
        let sync = if self.options.fsync_always {
            "  sync_interval: always\n"
        } else {
            ""
        };
        let sync = match self.options.encrypted {
            true => format!("{sync}  cipher: {STORE_CIPHER}\n  key: \"{}\"\n", self.keys.store_key()),
            false => sync.to_owned(),
        };
        // TLS as deployed: clients verify the node; nodes verify each other.
        let (cert, key) = self.keys.node_cert();
        let ca = self.keys.nats_ca_file();
        let tls = |verify: bool| {
            format!(
                "tls {{ cert_file: \"{}\", key_file: \"{}\", ca_file: \"{}\", verify: {verify}, timeout: 2 }}",
                cert.display(),
                key.display(),
                ca.display()
            )
        };
        let cluster = match &self.cluster {
            None => String::new(),
            Some((name, port, routes)) => {
                let routes: Vec<String> = routes.iter().map(|r| format!("nats-route://127.0.0.1:{r}")).collect();
                format!(
                    "cluster {{\n  name: {name}\n  listen: 127.0.0.1:{port}\n  routes: [{}]\n  {}\n}}\n",
                    routes.join(", "),
                    tls(true)
                )
            }
        };
        format!(
            "listen: 127.0.0.1:{port}\nserver_name: refer-test-{port}\nlog_file: \"{log}\"\n\
             jetstream {{\n  store_dir: \"{store}\"\n{sync}}}\n{cluster}{}\ninclude \"auth.conf\"\n",
            tls(false),
            port = self.port,
            log = self.log_path().display(),
            store = self.store_dir().display(),
        )
    }

    async fn launch(&mut self) -> Result<(), TestkitError> {
        self.spawn()?;
        self.ready().await
    }

    /// Starts the process (not waiting for it to be ready).
    fn spawn(&mut self) -> Result<(), TestkitError> {
        let config_path = self.dir.path().join("nats.conf");
        fs::write(&config_path, self.config())?;
        fs::write(self.dir.path().join("auth.conf"), keys::AUTH_CONF)?;
        let child = Command::new(&self.bin)
            .arg("-c")
            .arg(&config_path)
            .envs(self.keys.environment())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        self.child = Some(child);
        Ok(())
    }

    /// Waits until the server answers JetStream requests (in a cluster:
    /// once its meta group has a leader, which needs a quorum of nodes).
    async fn ready(&mut self) -> Result<(), TestkitError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut() {
                if child.try_wait()?.is_some() {
                    break;
                }
            }
            if self.jetstream_ready().await {
                return Ok(());
            }
            if Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        Err(TestkitError::NotReady {
            timeout: READY_TIMEOUT,
            log: tail(&self.log(), 20),
        })
    }

    async fn jetstream_ready(&self) -> bool {
        let connect = async_nats::ConnectOptions::new()
            .nkey(self.keys.seed("operator"))
            .add_root_certificates(self.keys.nats_ca_file())
            .require_tls(true)
            .connection_timeout(Duration::from_millis(500))
            .connect(self.url());
        let Ok(Ok(client)) = tokio::time::timeout(Duration::from_secs(1), connect).await else {
            return false;
        };
        let js = async_nats::jetstream::new(client);
        matches!(
            tokio::time::timeout(Duration::from_secs(1), js.query_account()).await,
            Ok(Ok(_))
        )
    }

    fn stop(&mut self) {
        self.resume();
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

pub mod forensic;

/// A JetStream cluster of three `nats-server`s on loopback, each with its
/// own store, owned by one test: a stream replicated 3 times survives the
/// loss of any one node. Nodes can be killed and restarted one by one.
pub struct NatsCluster {
    nodes: Vec<NatsServer>,
}

impl NatsCluster {
    /// Starts three durable nodes (fsync before ack) and waits until each
    /// answers JetStream requests.
    pub async fn start() -> Result<Self, TestkitError> {
        Self::start_with(ServerOptions::default()).await
    }

    /// Three nodes with `options`.
    pub async fn start_with(options: ServerOptions) -> Result<Self, TestkitError> {
        let bin = server_binary()?;
        let mut last_err = None;
        for _ in 0..3 {
            let ports = free_ports::<6>()?;
            let routes = ports[3..].to_vec();
            let name = format!("refer-test-{}", ports[0]);
            let keys = NatsKeys::generate()?;
            let mut nodes = Vec::new();
            for i in 0..3 {
                nodes.push(NatsServer {
                    bin: bin.clone(),
                    dir: tempfile::Builder::new().prefix("refer-nats-").tempdir()?,
                    port: ports[i],
                    options,
                    child: None,
                    cluster: Some((name.clone(), routes[i], routes.clone())),
                    keys: keys.clone(),
                });
            }
            let mut cluster = Self { nodes };
            match cluster.launch_all().await {
                Ok(()) => return Ok(cluster),
                Err(err) => last_err = Some(err),
            }
        }
        Err(last_err.expect("at least one attempt"))
    }

    async fn launch_all(&mut self) -> Result<(), TestkitError> {
        // All at once: none is ready before a quorum of them runs.
        for node in &mut self.nodes {
            node.spawn()?;
        }
        for node in &mut self.nodes {
            node.ready().await?;
        }
        self.placing_on_three().await
    }

    /// Waits until the cluster places a stream on all three nodes: each
    /// node answering is not enough, the meta leader may not count every
    /// peer online yet ("no suitable peers for placement").
    async fn placing_on_three(&self) -> Result<(), TestkitError> {
        let js = async_nats::jetstream::new(self.nodes[0].connect().await);
        let probe = async_nats::jetstream::stream::Config {
            name: "REFER_TESTKIT_PROBE".into(),
            subjects: vec!["refer-testkit-probe".into()],
            num_replicas: 3,
            storage: async_nats::jetstream::stream::StorageType::Memory,
            ..Default::default()
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match js.create_stream(probe.clone()).await {
                Ok(_) => {
                    let _ = js.delete_stream(&probe.name).await;
                    return Ok(());
                }
                Err(err) if Instant::now() > deadline => {
                    return Err(TestkitError::NotReady {
                        timeout: READY_TIMEOUT,
                        log: format!("no stream of 3 replicas could be placed: {err}\n{}", self.logs()),
                    })
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// Every node's URL, comma-separated (as `nats_url` takes them).
    pub fn urls(&self) -> String {
        self.nodes.iter().map(NatsServer::url).collect::<Vec<_>>().join(",")
    }

    /// Every node's URL and the credential of each role.
    pub fn access(&self) -> BusAccess {
        BusAccess {
            urls: self.urls(),
            keys: self.nodes[0].keys.clone(),
        }
    }

    /// The three nodes, for a test that keeps them beside other state.
    pub fn into_nodes(self) -> Vec<NatsServer> {
        self.nodes
    }

    /// Node `i` (0, 1 or 2).
    pub fn node(&self, i: usize) -> &NatsServer {
        &self.nodes[i]
    }

    /// SIGKILL of node `i`, as a crash would.
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].kill();
    }

    /// SIGSTOP of node `i` (see [`NatsServer::pause`]).
    pub fn pause(&self, i: usize) {
        self.nodes[i].pause();
    }

    /// SIGCONT of node `i`.
    pub fn resume(&self, i: usize) {
        self.nodes[i].resume();
    }

    /// Starts node `i` again with its store, and waits until it answers.
    pub async fn restart(&mut self, i: usize) -> Result<(), TestkitError> {
        self.nodes[i].restart().await
    }

    /// Every node's log (for diagnosing a failed test).
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("--- node {} ---\n{}", n.port, tail(&n.log(), 30)))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// `N` distinct free ports for processes a test starts: all are held open
/// together while picked, so none is handed out twice (ports picked one
/// after the other can repeat, and two services then fight for one).
pub fn free_ports<const N: usize>() -> std::io::Result<[u16; N]> {
    let listeners = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()?;
    let mut ports = [0; N];
    for (port, listener) in ports.iter_mut().zip(&listeners) {
        *port = listener.local_addr()?.port();
    }
    Ok(ports)
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Finds a nats-server of version 2.12 or newer.
pub fn server_binary() -> Result<PathBuf, TestkitError> {
    let repo_tools = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.tools/bin/nats-server");
    let mut candidates = Vec::new();
    if let Some(path) = std::env::var_os("REFER_NATS_SERVER") {
        candidates.push(PathBuf::from(path));
    }
    candidates.push(repo_tools);
    candidates.push(PathBuf::from("nats-server"));
    let mut seen = Vec::new();
    for candidate in candidates {
        match version(&candidate) {
            Some((major, minor)) if (major, minor) >= (2, 12) => return Ok(candidate),
            Some((major, minor)) => seen.push(format!("{} is {major}.{minor}", candidate.display())),
            None => {}
        }
    }
    Err(TestkitError::NoServer(if seen.is_empty() {
        "none found".into()
    } else {
        format!("{}; 2.12 or newer is required", seen.join(", "))
    }))
}

fn version(bin: &Path) -> Option<(u32, u32)> {
    let output = Command::new(bin).arg("--version").output().ok()?;
    let line = BufReader::new(&output.stdout[..]).lines().next()?.ok()?;
    // "nats-server: v2.15.1"
    let v = line.rsplit('v').next()?;
    let mut parts = v.split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}
