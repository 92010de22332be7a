//! Starting services in tests the way `main` starts them (zero2prod's
//! `spawn_app`): a configuration file, a token file, the metrics listener,
//! port 0, a fresh data directory, and a clock the test moves.

use crate::runtime::{launch, Config, Running, ServiceSpec};
use crate::{ManualClock, Role};
use refer_domain::ids::OrgId;
use refer_domain::Timestamp;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tonic::transport::Channel;

/// What the services of one test share: the NATS server, a directory for
/// the token file and every service's data, the partners' tokens, a clock.
pub struct TestSetup {
    pub nats_url: String,
    /// Each role's credential on the test bus (deploy/nats/auth.conf).
    pub keys: refer_testkit::NatsKeys,
    pub dir: tempfile::TempDir,
    pub clock: ManualClock,
    tokens_file: PathBuf,
    tick_ms: u64,
    stream_replicas: usize,
    /// Services require client certificates from the test CA (mutual TLS).
    mutual_tls: bool,
    /// The certificate and key services started from here serve (the
    /// test CA's service certificate unless set).
    server_cert: Option<(PathBuf, PathBuf)>,
    /// The ports each process instance was given (a restart keeps them).
    ports: std::sync::Mutex<std::collections::HashMap<String, [u16; 2]>>,
    /// Whether the operator made the streams and buckets yet.
    provisioned: std::sync::OnceLock<()>,
}

impl TestSetup {
    /// Writes the token file for `tokens` (`(token, role, org, name)`).
    pub fn new<'a>(
        bus: refer_testkit::BusAccess,
        tokens: impl IntoIterator<Item = (&'a str, Role, OrgId, &'a str)>,
        now: Timestamp,
    ) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let tokens_file = dir.path().join("tokens.toml");
        let mut text = String::new();
        for (token, role, org, name) in tokens {
            let role = format!("{role:?}").to_lowercase();
            text += &format!(
                "[[token]]\nname = \"{name}\"\nrole = \"{role}\"\norg = \"{}\"\nsha256 = \"{}\"\n",
                org.as_uuid(),
                crate::auth::hash_token(token)
            );
        }
        std::fs::write(&tokens_file, text).expect("write the token file");
        // A fresh key-encryption key for this test's sealed data.
        let kek = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
        std::fs::write(dir.path().join("kek.hex"), kek).expect("write the key-encryption key");
        Self {
            nats_url: bus.urls,
            keys: bus.keys,
            dir,
            clock: ManualClock::new(now),
            tokens_file,
            tick_ms: 50,
            stream_replicas: 1,
            mutual_tls: false,
            server_cert: None,
            ports: Default::default(),
            provisioned: Default::default(),
        }
    }

    /// How many copies of the stream (and buckets) the services keep: 3 on
    /// a `refer_testkit::NatsCluster`.
    pub fn stream_replicas(mut self, replicas: usize) -> Self {
        self.stream_replicas = replicas;
        self
    }

    /// Services started from here require a client certificate the test
    /// CA signed (mutual TLS); [`TestSetup::client_tls`] presents one.
    pub fn mutual_tls(mut self) -> Self {
        self.mutual_tls = true;
        self
    }

    /// Services started from here serve this certificate and key.
    pub fn server_cert(mut self, cert: PathBuf, key: PathBuf) -> Self {
        self.server_cert = Some((cert, key));
        self
    }

    /// How a client of the services verifies them (the test CA) and, with
    /// mutual TLS on, the certificate it presents.
    pub fn client_tls(&self) -> crate::tls::ClientTls {
        let tls = crate::tls::ClientTls {
            ca_file: Some(self.keys.ca_file()),
            ..Default::default()
        };
        match self.mutual_tls {
            true => {
                let (cert, key) = self.keys.service_cert();
                tls.with_identity(cert, key)
            }
            false => tls,
        }
    }

    /// An endpoint for a service on `port` of this machine (https, the test CA).
    pub fn endpoint(&self, port: u16) -> tonic::transport::Endpoint {
        self.client_tls()
            .endpoint(&format!("https://127.0.0.1:{port}"), "the test CA")
            .expect("a TLS endpoint")
    }

    /// Makes every stream and bucket with the operator's credential, as
    /// `refer admin provision` does before a deployment's first start (no
    /// service may), once, before the first process or reader of the test.
    /// On a thread of its own: callers may be inside a runtime or not.
    pub fn provision(&self) {
        self.provision_with(self.stream_replicas)
    }

    /// [`TestSetup::provision`] with `replicas` copies of each stream and
    /// bucket (`refer admin provision --replicas`).
    pub fn provision_with(&self, replicas: usize) {
        self.provisioned.get_or_init(|| {
            let access = self.access();
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Runtime::new().expect("a runtime");
                runtime.block_on(provision(&access, replicas))
            })
            .join()
            .expect("provisioning");
        });
    }

    fn operator_bus(&self) -> crate::runtime::Bus {
        operator_bus(&self.access())
    }

    /// How often a matcher started from here checks deadlines.
    pub fn tick_ms(mut self, ms: u64) -> Self {
        self.tick_ms = ms;
        self
    }

    /// A store of the test's own on the same stream, to write events a
    /// test needs (a proposal from no matcher) and to read what happened.
    /// `nats_url` may list a cluster's nodes; the reader moves to another
    /// when one goes.
    pub async fn reader(&self) -> refer_eventstore::EventStore {
        self.provision();
        let client = crate::runtime::connect(&self.operator_bus())
            .await
            .expect("reach the test's NATS");
        let db = sled::open(self.dir.path().join("reader")).expect("open the reader's sled");
        let settings = refer_eventstore::StreamSettings {
            replicas: self.stream_replicas,
            ..Default::default()
        };
        refer_eventstore::EventStore::open(client, settings, db)
            .await
            .expect("open the stream")
    }

    /// The test bus and its credentials, for clients a test starts itself.
    pub fn access(&self) -> refer_testkit::BusAccess {
        refer_testkit::BusAccess {
            urls: self.nats_url.clone(),
            keys: self.keys.clone(),
        }
    }

    /// Writes the configuration of `instance` of the service `role` (data in
    /// `<dir>/<instance>`, listening on `listen` and `metrics_listen`, the
    /// role's own NATS credential): the file `main` reads.
    fn write_config(
        &self,
        role: &str,
        instance: &str,
        listen: &str,
        metrics_listen: &str,
    ) -> (PathBuf, String, PathBuf) {
        self.provision();
        let data_dir = self.dir.path().join(instance);
        let path = self.dir.path().join(format!("{instance}.toml"));
        let (cert, key) = self.server_cert.clone().unwrap_or_else(|| self.keys.service_cert());
        let mut text = format!(
            "tls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n",
            cert.display(),
            key.display()
        );
        if self.mutual_tls {
            text += &format!("tls_client_ca_file = \"{}\"\n", self.keys.ca_file().display());
        }
        text += &format!(
            "nats_url = \"{}\"\nnats_nkey_file = \"{}\"\nnats_ca_file = \"{}\"\ndata_dir = \"{}\"\nlisten = \"{listen}\"\n\
             metrics_listen = \"{metrics_listen}\"\ntokens_file = \"{}\"\ntick_ms = {}\nkek_file = \"{}\"\n\
             stream_replicas = {}\n",
            self.nats_url,
            self.keys.seed_file(role).display(),
            self.keys.nats_ca_file().display(),
            data_dir.display(),
            self.tokens_file.display(),
            self.tick_ms,
            self.kek_file().display(),
            self.stream_replicas,
        );
        std::fs::write(&path, &text).expect("write the configuration");
        (path, text, data_dir)
    }

    /// The service binary `binary` (the service `role`) as an operator
    /// starts it: `REFER_CONFIG` names a configuration written here, on free
    /// ports (returned: the gRPC one, then the metrics one). For tests of
    /// `main` itself. The same `instance` again (a restart) gets the same
    /// ports and data.
    pub fn process(&self, binary: &str, role: &str, instance: &str) -> (std::process::Command, u16, u16) {
        let [port, metrics] = *self
            .ports
            .lock()
            .expect("ports lock")
            .entry(instance.to_owned())
            .or_insert_with(|| refer_testkit::free_ports().expect("free ports"));
        let (path, _, _) = self.write_config(
            role,
            instance,
            &format!("127.0.0.1:{port}"),
            &format!("127.0.0.1:{metrics}"),
        );
        let mut command = std::process::Command::new(binary);
        command
            .env("REFER_CONFIG", path)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        (command, port, metrics)
    }

    /// The key-encryption key every service started here reads.
    pub fn kek_file(&self) -> PathBuf {
        self.dir.path().join("kek.hex")
    }

    /// The token file, to add partners while services run.
    pub fn tokens_file(&self) -> &std::path::Path {
        &self.tokens_file
    }
}

/// One service serving on a free port, started through [`launch`].
pub struct TestApp {
    pub addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    pub data_dir: PathBuf,
    spec: ServiceSpec,
    config: Config,
    clock: ManualClock,
    running: Option<Running>,
    tls: crate::tls::ClientTls,
}

/// The operator's connection to the test bus `access`.
fn operator_bus(access: &refer_testkit::BusAccess) -> crate::runtime::Bus {
    crate::runtime::Bus {
        url: access.urls.clone(),
        nkey_file: Some(access.keys.seed_file("operator")),
        ca_file: Some(access.keys.nats_ca_file()),
        plaintext: false,
        inbox: crate::runtime::inbox_of("operator"),
    }
}

/// Makes every stream and bucket on the test bus `access` with the
/// operator's credential and `replicas` copies, as `refer admin provision`
/// does before a deployment's first start: for tests that start a service
/// binary on a bus of their own.
pub async fn provision(access: &refer_testkit::BusAccess, replicas: usize) {
    let client = crate::runtime::connect(&operator_bus(access))
        .await
        .expect("reach the test's NATS");
    let js = async_nats::jetstream::new(client);
    let stream = refer_eventstore::StreamSettings {
        replicas,
        ..Default::default()
    };
    refer_client::provision::provision(&js, &stream, refer_client::provision::CONSOLE_IDLE)
        .await
        .expect("provision the test's bus");
}

impl TestApp {
    /// Starts `spec` with its data in `<setup dir>/<name>`.
    pub async fn spawn(spec: ServiceSpec, setup: &TestSetup) -> Self {
        Self::spawn_named(spec, setup, spec.name).await
    }

    /// Starts `spec` with its data in `<setup dir>/<instance>` (two
    /// instances of one service need two names).
    pub async fn spawn_named(spec: ServiceSpec, setup: &TestSetup, instance: &str) -> Self {
        let (path, text, data_dir) = setup.write_config(spec.name, instance, "127.0.0.1:0", "127.0.0.1:0");
        let config = Config::from_sources(spec.name, spec.default_port, Some((&path, &text)), |_| None)
            .expect("the test configuration is valid");
        let mut app = Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            metrics_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir,
            spec,
            config,
            clock: setup.clock.clone(),
            running: None,
            tls: setup.client_tls(),
        };
        app.start().await;
        app
    }

    async fn start(&mut self) {
        let running = launch(&self.spec, self.config.clone(), Arc::new(self.clock.clone()))
            .await
            .unwrap_or_else(|e| panic!("{} did not start: {e:#}", self.spec.name));
        // As a client waits for SERVING: the read models caught up.
        running.ready().await;
        self.addr = running.addr;
        self.metrics_addr = running.metrics_addr;
        self.running = Some(running);
    }

    /// Stops the service gracefully (it keeps its data directory).
    pub async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await.expect("a clean stop");
        }
    }

    /// Stops and starts again on the same data (on a new port).
    pub async fn restart(&mut self) {
        self.stop().await;
        self.start().await;
    }

    /// `https://` address of the service.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// A client channel to the service (connects lazily), verifying it
    /// against the test CA.
    pub fn channel(&self) -> Channel {
        self.tls
            .endpoint(&self.url(), "the test CA")
            .expect("a TLS endpoint")
            .connect_lazy()
    }

    /// The CA the service's certificate is verified against.
    pub fn client_tls(&self) -> &crate::tls::ClientTls {
        &self.tls
    }

    /// The metrics page, as Prometheus would scrape it (over TLS).
    pub async fn metrics(&self) -> String {
        metrics(self.metrics_addr, &self.tls).await
    }
}

/// The metrics page at `addr`, over TLS verified as `tls` says.
pub async fn metrics(addr: SocketAddr, tls: &crate::tls::ClientTls) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ca = tls.ca_file.as_ref().expect("a CA");
    let identity = tls.cert_file.as_deref().zip(tls.key_file.as_deref());
    let mut socket = crate::tls::connect(addr, ca, identity)
        .await
        .expect("the metrics listener answers over TLS");
    socket
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .await
        .expect("send");
    let mut text = String::new();
    let _ = socket.read_to_string(&mut text).await;
    text
}

pub use crate::auth::authed;

/// The code of a call that must fail (panics if it succeeded).
pub fn refused<T: std::fmt::Debug>(result: Result<T, tonic::Status>) -> tonic::Code {
    result.expect_err("the call was refused").code()
}

/// One service on a NATS server of its own, with a client and a store of
/// the test's: what most service tests need (a coalition of all four is
/// `refer_tests::Coalition`).
pub struct Solo<C> {
    pub nats: refer_testkit::NatsServer,
    pub setup: TestSetup,
    pub store: refer_eventstore::EventStore,
    pub app: TestApp,
    pub client: C,
    pub clock: ManualClock,
}

impl<C> Solo<C> {
    /// Starts `spec` for `tokens` at `sample::NIGHT`, with `client` on its channel.
    pub async fn start<'a>(
        spec: ServiceSpec,
        tokens: impl IntoIterator<Item = (&'a str, Role, OrgId, &'a str)>,
        client: impl FnOnce(Channel) -> C,
    ) -> Self {
        let nats = refer_testkit::NatsServer::start().await.expect("start nats-server");
        let setup = TestSetup::new(nats.access(), tokens, refer_domain::sample::NIGHT);
        let app = TestApp::spawn(spec, &setup).await;
        Self {
            client: client(app.channel()),
            store: setup.reader().await,
            clock: setup.clock.clone(),
            nats,
            setup,
            app,
        }
    }
}
