//! Starting a service: configuration from the environment, the event store,
//! and the background loop that keeps a projection up to date.

use refer_domain::geo::RegionCode;
use refer_eventstore::{EventStore, Projection, StreamSettings, Subscriber};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::watch;

/// Where a service finds its bus, its data and its callers.
///
/// One TOML format (file named by `REFER_CONFIG`), every key optional but
/// `tokens_file`; each key can be overridden by an environment variable; then
/// safe local defaults. Unknown keys and bad values stop the service at start
/// with the key named.
///
/// | key | environment | default |
/// |---|---|---|
/// | `nats_url` | `REFER_NATS_URL` | `nats://127.0.0.1:4222` (comma-separated for a cluster) |
/// | `nats_nkey_file` | `REFER_NATS_NKEY_FILE` | none: no credential (a bus that checks them refuses); the file holds this process's nkey seed (`refer admin nats-key`) |
/// | `nats_ca_file` | `REFER_NATS_CA_FILE` | none; the CA (PEM) the bus's certificates are verified against: TLS is then required |
/// | `nats_plaintext` | `REFER_NATS_PLAINTEXT` | `false`; `true` allows a bus without TLS (local development only; said loudly at start). One of the two is required |
/// | `tls_cert_file` | `REFER_TLS_CERT_FILE` | none; the certificate (PEM chain) the gRPC and metrics listeners serve, reloaded when it changes (`crate::tls`) |
/// | `tls_key_file` | `REFER_TLS_KEY_FILE` | none; its private key (PEM), never logged |
/// | `tls_client_ca_file` | `REFER_TLS_CLIENT_CA_FILE` | none; with it, every client must present a certificate this CA signed (mutual TLS) |
/// | `tls_plaintext` | `REFER_TLS_PLAINTEXT` | `false`; `true` serves without TLS (local development only; said loudly at start). A certificate or this is required |
/// | `data_dir` | `REFER_DATA_DIR` | `data/<service>` |
/// | `listen` | `REFER_LISTEN` | `127.0.0.1:<the service's port>` |
/// | `metrics_listen` | `REFER_METRICS_LISTEN` | `127.0.0.1:<the service's port + 1000>` |
/// | `tokens_file` | `REFER_TOKENS_FILE` | required |
/// | `stream` | `REFER_STREAM` | `REFER` |
/// | `stream_replicas` | `REFER_STREAM_REPLICAS` | `1` (3 on the compose cluster) |
/// | `tick_ms` | `REFER_TICK_MS` | `1000` (matcher: how often deadlines are checked) |
/// | `log_format` | `REFER_LOG_FORMAT` | `text` (or `json`) |
/// | `kek_file` | `REFER_KEK_FILE` | none; required by intake, capacity and donations (sealed data, docs/privacy.md) |
/// | `previous_kek_files` | `REFER_PREVIOUS_KEK_FILES` | none (comma-separated; during a key rotation) |
/// | `retention_hours` | `REFER_RETENTION_HOURS` | `72` (intake: how long sealed data outlives a final need) |
/// | `longest_consent_hours` | `REFER_LONGEST_CONSENT_HOURS` | `72` (intake: the longest consent to share a note) |
/// | `fresh_for_hours` | `REFER_FRESH_FOR_HOURS` | `24` (the coalition's freshness limit: capacity declared longer ago is stale; set it alike on every service) |
/// | `instance` | `REFER_INSTANCE` | a hash of `data_dir` (names this replica's consumers and lease holder; one process per name, see `crate::identity`) |
/// | `partition` | `REFER_PARTITION` | none: the matcher matches every region (docs/operations.md) |
/// | `partition_regions` | `REFER_PARTITION_REGIONS` | required with `partition` (comma-separated in the environment) |
#[derive(Clone, Debug)]
pub struct Config {
    /// The kind of service (capacity, donations, intake, matcher): its
    /// credential's role on the bus, and so its reply inboxes.
    pub service: String,
    pub nats_url: String,
    /// The file holding this process's nkey seed (deploy/nats/auth.conf).
    pub nats_nkey_file: Option<PathBuf>,
    /// The CA the bus's TLS certificates are verified against.
    pub nats_ca_file: Option<PathBuf>,
    /// No TLS to the bus: local development only.
    pub nats_plaintext: bool,
    /// TLS on the gRPC and metrics listeners.
    pub tls: crate::tls::ServerTls,
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub metrics_listen: SocketAddr,
    pub tokens_file: PathBuf,
    pub stream: StreamSettings,
    pub tick: Duration,
    pub json_logs: bool,
    pub kek_file: Option<PathBuf>,
    pub previous_kek_files: Vec<PathBuf>,
    pub retention: Duration,
    pub longest_consent: Duration,
    /// How long declared capacity stays fresh (`refer_domain::Freshness`).
    pub freshness: refer_domain::Freshness,
    /// This replica's name: its durable consumers are `<consumer>-<instance>`.
    pub instance: String,
    /// The matcher's partition: its name and regions (`None`: every region).
    pub partition: Option<(String, BTreeSet<RegionCode>)>,
}

#[derive(Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    nats_url: Option<String>,
    nats_nkey_file: Option<String>,
    nats_ca_file: Option<String>,
    nats_plaintext: Option<bool>,
    tls_cert_file: Option<String>,
    tls_key_file: Option<String>,
    tls_client_ca_file: Option<String>,
    tls_plaintext: Option<bool>,
    data_dir: Option<String>,
    listen: Option<String>,
    metrics_listen: Option<String>,
    tokens_file: Option<String>,
    stream: Option<String>,
    stream_replicas: Option<u32>,
    tick_ms: Option<u64>,
    log_format: Option<String>,
    kek_file: Option<String>,
    previous_kek_files: Option<Vec<String>>,
    retention_hours: Option<u64>,
    longest_consent_hours: Option<u64>,
    fresh_for_hours: Option<u64>,
    instance: Option<String>,
    partition: Option<String>,
    partition_regions: Option<Vec<String>>,
}

impl Config {
    /// How this process reaches the bus.
    pub fn bus(&self) -> Bus {
        Bus {
            url: self.nats_url.clone(),
            nkey_file: self.nats_nkey_file.clone(),
            ca_file: self.nats_ca_file.clone(),
            plaintext: self.nats_plaintext,
            inbox: inbox_of(&self.service),
        }
    }

    /// Reads `REFER_CONFIG` (if set) and the environment.
    pub fn from_env(service: &str, default_port: u16) -> anyhow::Result<Self> {
        let file = match std::env::var_os("REFER_CONFIG") {
            Some(path) => {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| anyhow::anyhow!("cannot read REFER_CONFIG={}: {e}", PathBuf::from(&path).display()))?;
                Some((PathBuf::from(path), text))
            }
            None => None,
        };
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Self::from_sources(
            service,
            default_port,
            file.as_ref().map(|(p, t)| (p.as_path(), t.as_str())),
            env,
        )
    }

    /// The configuration from a file's text (if any) and an environment.
    pub fn from_sources(
        service: &str,
        default_port: u16,
        file: Option<(&std::path::Path, &str)>,
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Self> {
        let f: FileConfig = match file {
            Some((path, text)) => toml::from_str(text)
                .map_err(|e| anyhow::anyhow!("configuration file {} is not valid: {e}", path.display()))?,
            None => FileConfig::default(),
        };
        // The environment wins over the file; both name the setting in errors.
        let pick = |var: &str, key: &'static str, value: Option<String>| -> Option<(String, String)> {
            env(var)
                .map(|v| (v, var.to_owned()))
                .or(value.map(|v| (v, key.to_owned())))
        };
        let address =
            |var: &str, key: &'static str, value: Option<String>, default: String| -> anyhow::Result<SocketAddr> {
                let (text, from) = pick(var, key, value).unwrap_or((default, "default".into()));
                text.parse()
                    .map_err(|_| anyhow::anyhow!("{from}={text:?} is not an address like 127.0.0.1:50051"))
            };
        let listen = address("REFER_LISTEN", "listen", f.listen, format!("127.0.0.1:{default_port}"))?;
        let metrics_listen = address(
            "REFER_METRICS_LISTEN",
            "metrics_listen",
            f.metrics_listen,
            format!("127.0.0.1:{}", default_port + 1000),
        )?;
        let (tokens_file, _) = pick("REFER_TOKENS_FILE", "tokens_file", f.tokens_file).ok_or_else(|| {
            anyhow::anyhow!("no token file: set tokens_file in the configuration or REFER_TOKENS_FILE (docs/api.md)")
        })?;
        let replicas = replicas(pick(
            "REFER_STREAM_REPLICAS",
            "stream_replicas",
            f.stream_replicas.map(|r| r.to_string()),
        ))?;
        let tick_ms: u64 = match pick("REFER_TICK_MS", "tick_ms", f.tick_ms.map(|t| t.to_string())) {
            None => 1000,
            Some((text, from)) => text
                .parse()
                .ok()
                .filter(|t| (10..=60_000).contains(t))
                .ok_or_else(|| anyhow::anyhow!("{from}={text:?} must be 10 to 60000 (milliseconds)"))?,
        };
        let json_logs = match pick("REFER_LOG_FORMAT", "log_format", f.log_format) {
            None => false,
            Some((text, _)) if text == "text" => false,
            Some((text, _)) if text == "json" => true,
            Some((text, from)) => anyhow::bail!("{from}={text:?} must be text or json"),
        };
        let hours = |var: &str,
                     key: &'static str,
                     value: Option<u64>,
                     range: std::ops::RangeInclusive<u64>,
                     default: u64| match pick(var, key, value.map(|v| v.to_string())) {
            None => Ok(Duration::from_secs(default * 3600)),
            Some((text, from)) => text
                .parse::<u64>()
                .ok()
                .filter(|h| range.contains(h))
                .map(|h| Duration::from_secs(h * 3600))
                .ok_or_else(|| anyhow::anyhow!("{from}={text:?} must be {} to {} (hours)", range.start(), range.end())),
        };
        let retention = hours(
            "REFER_RETENTION_HOURS",
            "retention_hours",
            f.retention_hours,
            1..=8760,
            72,
        )?;
        let longest_consent = hours(
            "REFER_LONGEST_CONSENT_HOURS",
            "longest_consent_hours",
            f.longest_consent_hours,
            1..=720,
            72,
        )?;
        let fresh_for = hours(
            "REFER_FRESH_FOR_HOURS",
            "fresh_for_hours",
            f.fresh_for_hours,
            1..=8784,
            24,
        )?;
        let freshness = refer_domain::Freshness::new(fresh_for.as_secs() as i64)?;
        let previous_kek_files = match env("REFER_PREVIOUS_KEK_FILES") {
            Some(list) => list.split(',').map(|p| PathBuf::from(p.trim())).collect(),
            None => f
                .previous_kek_files
                .unwrap_or_default()
                .into_iter()
                .map(PathBuf::from)
                .collect(),
        };
        let partition = partition(
            pick("REFER_PARTITION", "partition", f.partition),
            match env("REFER_PARTITION_REGIONS") {
                Some(list) => Some((
                    list.split(',').map(|r| r.trim().to_owned()).collect(),
                    "REFER_PARTITION_REGIONS".to_owned(),
                )),
                None => f.partition_regions.map(|r| (r, "partition_regions".to_owned())),
            },
        )?;
        let nats_plaintext = match pick(
            "REFER_NATS_PLAINTEXT",
            "nats_plaintext",
            f.nats_plaintext.map(|b| b.to_string()),
        ) {
            None => false,
            Some((text, from)) => text
                .parse()
                .map_err(|_| anyhow::anyhow!("{from}={text:?} must be true or false"))?,
        };
        let tls = crate::tls::ServerTls {
            cert_file: pick("REFER_TLS_CERT_FILE", "tls_cert_file", f.tls_cert_file).map(|(v, _)| PathBuf::from(v)),
            key_file: pick("REFER_TLS_KEY_FILE", "tls_key_file", f.tls_key_file).map(|(v, _)| PathBuf::from(v)),
            client_ca_file: pick("REFER_TLS_CLIENT_CA_FILE", "tls_client_ca_file", f.tls_client_ca_file)
                .map(|(v, _)| PathBuf::from(v)),
            plaintext: match pick(
                "REFER_TLS_PLAINTEXT",
                "tls_plaintext",
                f.tls_plaintext.map(|b| b.to_string()),
            ) {
                None => false,
                Some((text, from)) => text
                    .parse()
                    .map_err(|_| anyhow::anyhow!("{from}={text:?} must be true or false"))?,
            },
        };
        let data_dir = pick("REFER_DATA_DIR", "data_dir", f.data_dir)
            .map_or_else(|| PathBuf::from("data").join(service), |(v, _)| PathBuf::from(v));
        let instance = match pick("REFER_INSTANCE", "instance", f.instance) {
            None => instance_of(&data_dir),
            Some((text, from)) => {
                name(&text, &from)?;
                text
            }
        };
        Ok(Self {
            service: service.to_owned(),
            instance,
            partition,
            kek_file: pick("REFER_KEK_FILE", "kek_file", f.kek_file).map(|(v, _)| PathBuf::from(v)),
            previous_kek_files,
            retention,
            longest_consent,
            freshness,
            nats_url: pick("REFER_NATS_URL", "nats_url", f.nats_url)
                .map_or_else(|| "nats://127.0.0.1:4222".into(), |(v, _)| v),
            nats_nkey_file: pick("REFER_NATS_NKEY_FILE", "nats_nkey_file", f.nats_nkey_file)
                .map(|(v, _)| PathBuf::from(v)),
            nats_ca_file: pick("REFER_NATS_CA_FILE", "nats_ca_file", f.nats_ca_file).map(|(v, _)| PathBuf::from(v)),
            nats_plaintext,
            tls,
            data_dir,
            listen,
            metrics_listen,
            tokens_file: tokens_file.into(),
            stream: StreamSettings {
                name: pick("REFER_STREAM", "stream", f.stream).map_or_else(|| "REFER".into(), |(v, _)| v),
                replicas,
                ..Default::default()
            },
            tick: Duration::from_millis(tick_ms),
            json_logs,
        })
    }

    /// Connects to NATS (`nats_url` may list several servers, comma-separated,
    /// so a cluster node being down at start does not matter) and opens the
    /// event store with its sled directory.
    pub async fn open_store(&self) -> anyhow::Result<EventStore> {
        let client = connect(&self.bus())
            .await
            .map_err(|e| anyhow::anyhow!("nats_url: {e}"))?;
        std::fs::create_dir_all(&self.data_dir)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", self.data_dir.display()))?;
        // Read models and the consumers' server names: the service's alone.
        use std::os::unix::fs::PermissionsExt;
        if let Err(e) = std::fs::set_permissions(&self.data_dir, std::fs::Permissions::from_mode(0o700)) {
            tracing::warn!(data_dir = %self.data_dir.display(), error = %e, "the data directory could not be made private to this service's user");
        }
        let db = sled::open(&self.data_dir)
            .map_err(|e| anyhow::anyhow!("cannot open sled at {}: {e}", self.data_dir.display()))?;
        Ok(EventStore::open(client, self.stream.clone(), db).await?)
    }
}

/// Checks a name made of 1-32 of a-z, 0-9 and `-` (it goes into consumer
/// and lease names), or says which setting is wrong.
fn name(text: &str, from: &str) -> anyhow::Result<()> {
    let ok = (1..=32).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    anyhow::ensure!(ok, "{from}={text:?} must be 1-32 of a-z, 0-9 and -");
    Ok(())
}

/// The matcher's partition from its two settings, which go together.
fn partition(
    name_setting: Option<(String, String)>,
    regions_setting: Option<(Vec<String>, String)>,
) -> anyhow::Result<Option<(String, BTreeSet<RegionCode>)>> {
    match (name_setting, regions_setting) {
        (None, None) => Ok(None),
        (Some((_, from)), None) => {
            anyhow::bail!("{from} is set without its regions: set partition_regions or REFER_PARTITION_REGIONS")
        }
        (None, Some((_, from))) => {
            anyhow::bail!("{from} is set without a partition name: set partition or REFER_PARTITION")
        }
        (Some((text, from)), Some((list, regions_from))) => {
            name(&text, &from)?;
            let mut regions = BTreeSet::new();
            for (i, region) in list.iter().enumerate() {
                let code = RegionCode::new(region.clone()).map_err(|_| {
                    anyhow::anyhow!("{regions_from}[{i}]={region:?} is not a region code like US-06-037")
                })?;
                anyhow::ensure!(regions.insert(code), "{regions_from}[{i}]={region:?} is listed twice");
            }
            anyhow::ensure!(
                (1..=1024).contains(&regions.len()),
                "{regions_from} must list 1 to 1024 regions"
            );
            Ok(Some((text, regions)))
        }
    }
}

pub use refer_client::bus::{connect, inbox_of, read_nkey_seed, reconnect_delay, replicas, Bus};

/// A replica's default name: the first 8 bytes of the SHA-256 of its data
/// directory's absolute path, stable across its restarts, distinct between
/// replicas (each has its own data directory).
pub fn instance_of(data_dir: &std::path::Path) -> String {
    use sha2::{Digest, Sha256};
    let absolute = std::path::absolute(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
    hex::encode(&Sha256::digest(absolute.display().to_string().as_bytes())[..8])
}

/// Keeps `projection` up to date from the durable consumer `name` until
/// `shutdown` turns true. Errors (the bus away) are logged and retried.
pub fn spawn_projection<P: Projection + Send + 'static>(
    mut subscriber: Subscriber,
    mut projection: P,
    mut shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if *shutdown.borrow() {
                break;
            }
            tokio::select! {
                _ = shutdown.changed() => {}
                result = subscriber.poll(&mut projection, 512, Duration::from_secs(2)) => {
                    if let Err(err) = result {
                        pause_after(&err, "projection").await;
                    }
                }
            }
        }
        // What was applied since the last write: the next start need not read it again.
        if let Err(err) = subscriber.persist(&mut projection) {
            tracing::warn!(error = %err, "projection not written at stop; the next start reads it again");
        }
    })
}

/// Opens something a service needs at start (a bucket made at the same
/// moment by every service on a new cluster, whose nodes may still elect):
/// tries again as every step of a start does (`refer_eventstore::patiently`).
/// A refusal for good (a bad setting) is said at once.
async fn patiently<T, E, Fut>(what: &str, open: impl Fn() -> Fut) -> anyhow::Result<T>
where
    Fut: std::future::Future<Output = Result<T, E>>,
    E: Into<anyhow::Error> + std::fmt::Display,
{
    let opened = refer_eventstore::patiently(
        what,
        || async { open().await.map_err(Into::into) },
        |e| !refused_for_good(&e.to_string()),
        || anyhow::anyhow!(refer_eventstore::unanswered(what)),
    );
    opened.await
}

/// Errors no wait will mend: say them at once.
fn refused_for_good(why: &str) -> bool {
    ["migrate-sealed", "refuses secure deletes", "key-encryption key"]
        .iter()
        .any(|w| why.contains(w))
}

/// After a failed poll (the bus away): logs it, and waits a moment before
/// the next try, so an outage is not a busy loop.
pub fn pause_after(error: &dyn std::fmt::Display, what: &str) -> tokio::time::Sleep {
    tracing::warn!(error = %error, "{what} paused; retrying");
    tokio::time::sleep(Duration::from_millis(500))
}

/// What a service gets to start: its store, clock, configuration, the
/// signal to stop its background tasks, and the callers' tokens (reached
/// only through [`Context::authenticate`]).
pub struct Context {
    pub store: EventStore,
    pub clock: crate::SharedClock,
    pub shutdown: watch::Receiver<bool>,
    pub config: Config,
    tokens: crate::TokenBook,
    ready: Readiness,
    named: crate::lease::Fence,
    callers: Callers,
}

type ReadyFuture = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// What must happen before a replica serves: each read model caught up
/// with the stream's last sequence as it stood at start. Until then the
/// health service says NOT_SERVING and every call answers UNAVAILABLE.
#[derive(Clone)]
struct Readiness {
    ready: watch::Receiver<bool>,
    waits: std::sync::Arc<std::sync::Mutex<Vec<ReadyFuture>>>,
}

impl Context {
    /// Serves only once `caught_up` resolves (with every other condition
    /// given): see [`crate::read_model::ReadModel::caught_up`].
    pub fn ready_when(&self, caught_up: impl std::future::Future<Output = ()> + Send + 'static) {
        self.ready
            .waits
            .lock()
            .expect("readiness lock")
            .push(Box::pin(caught_up));
    }

    /// This replica's durable consumer for `base` (`<base>-<instance>`):
    /// each replica keeps its own read model from its own consumer.
    pub fn consumer(&self, base: &str) -> String {
        format!("{base}-{}", self.config.instance)
    }

    /// The sealed-data store (`crates/sealed`): the KEK from `kek_file`
    /// (refused at start if missing or malformed), this service's own key
    /// bucket `<stream>_DATA_KEYS_<SERVICE>`, and those of the services
    /// whose items it reads (`refer_client::provision::SEALERS`).
    pub async fn vault(&self) -> anyhow::Result<refer_sealed::Vault> {
        let path = self.config.kek_file.as_ref().ok_or_else(|| {
            anyhow::anyhow!(
                "no key-encryption key: set kek_file in the configuration or REFER_KEK_FILE (docs/privacy.md)"
            )
        })?;
        let current = refer_sealed::Kek::load(path)?;
        let previous = self
            .config
            .previous_kek_files
            .iter()
            .map(|p| refer_sealed::Kek::load(p))
            .collect::<Result<Vec<_>, _>>()?;
        let sealer = self.config.service.as_str();
        let bucket = refer_sealed::bucket_for(&self.config.stream.name, sealer);
        let vault = patiently("sealed-key bucket", || {
            refer_sealed::Vault::open_for_stream(
                self.store.jetstream(),
                &self.config.stream.name,
                sealer,
                refer_client::provision::reads_of(sealer),
                current.clone(),
                previous.clone(),
            )
        })
        .await?;
        tracing::info!(bucket, "sealed-data store open");
        Ok(vault)
    }

    /// What a sealing service's handlers share (`crate::handler::Shell`):
    /// the store, the clock, the idempotency records, the sealed-data store
    /// and its read log.
    pub async fn shell(&self) -> anyhow::Result<crate::handler::Shell> {
        Ok(crate::handler::Shell {
            store: self.store.clone(),
            clock: self.clock.clone(),
            keys: self.key_book().await?,
            vault: self.vault().await?,
            reads: self.read_log().await?,
            freshness: self.config.freshness,
        })
    }

    /// The read log of sealed items (`<stream>_READS`, replicated like the
    /// stream; `crate::reads`).
    pub async fn read_log(&self) -> anyhow::Result<crate::reads::ReadLog> {
        Ok(crate::reads::ReadLog::open(self.store.jetstream(), self.store.settings()).await?)
    }

    /// The idempotency records every replica shares (`<stream>_KEYS`,
    /// replicated like the stream), with this replica's copy in sled.
    pub async fn key_book(&self) -> anyhow::Result<crate::idempotency::KeyBook> {
        let bucket = refer_client::provision::idempotency(&self.config.stream);
        patiently("idempotency bucket", || {
            crate::idempotency::KeyBook::open(self.store.local().db(), self.store.jetstream(), &bucket)
        })
        .await
    }

    /// What the service hands back to the shell: its generated gRPC server,
    /// which the shell caps in size and guards with authentication and the
    /// roles of the service's spec (`ServiceSpec::callers`), and its
    /// background tasks. No service wires either itself.
    pub fn serve<S>(&self, server: S, tasks: Vec<tokio::task::JoinHandle<()>>) -> Started
    where
        S: GrpcServer,
        S: tower::Service<
                tonic::codegen::http::Request<tonic::body::Body>,
                Response = tonic::codegen::http::Response<tonic::body::Body>,
                Error = std::convert::Infallible,
            > + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        let callers = self.callers;
        let guarded = crate::auth::MethodRoles::new(
            server.capped(crate::server::MAX_REQUEST_BYTES),
            callers.by_default,
            callers.methods,
        );
        Started {
            routes: tonic::service::Routes::new(tonic::service::interceptor::InterceptedService::new(
                guarded,
                self.authenticate(callers.roles),
            )),
            tasks,
        }
    }

    /// The interceptor that authenticates every call before it is decoded
    /// and admits only `roles`.
    pub fn authenticate(&self, roles: &'static [crate::Role]) -> crate::auth::Authenticate {
        crate::auth::Authenticate::new(self.tokens.clone(), roles)
            .until_ready(self.ready.ready.clone())
            .while_named(self.named.clone())
    }
}

/// What a started service hands back: its gRPC routes and the background
/// tasks (projections, the matcher's loop) that end once `shutdown` turns.
pub struct Started {
    pub routes: tonic::service::Routes,
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
}

type StartFuture = std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<Started>> + Send>>;

/// A service as `main` and the tests start it.
#[derive(Clone, Copy)]
pub struct ServiceSpec {
    /// Short name: logs, the default data directory, configuration errors.
    pub name: &'static str,
    /// The gRPC service name reported by the health service.
    pub grpc_name: &'static str,
    /// Default port; metrics listen on this port + 1000.
    pub default_port: u16,
    /// Who may call it (`Context::serve` applies it).
    pub callers: Callers,
    pub start: fn(Context) -> StartFuture,
}

/// Who may call a service: the roles authenticated at all, and per method
/// (checked before the body is read) who may call it, `by_default` for
/// the methods not listed.
#[derive(Clone, Copy)]
pub struct Callers {
    pub roles: &'static [crate::Role],
    pub by_default: &'static [crate::Role],
    pub methods: &'static [(&'static str, &'static [crate::Role])],
}

impl Callers {
    /// Every method open to `roles`.
    pub const fn all(roles: &'static [crate::Role]) -> Self {
        Self {
            roles,
            by_default: roles,
            methods: &[],
        }
    }
}

/// A generated gRPC server, as the shell caps its request size.
pub trait GrpcServer: tonic::server::NamedService + Clone {
    fn capped(self, bytes: usize) -> Self;
}

macro_rules! grpc_servers {
    ($($server:ident < $trait:path >),* $(,)?) => {$(
        impl<T: $trait> GrpcServer for $server<T> {
            fn capped(self, bytes: usize) -> Self {
                self.max_decoding_message_size(bytes)
            }
        }
    )*};
}
use refer_proto::capacity::v1::capacity_server::{Capacity, CapacityServer};
use refer_proto::donations::v1::donations_server::{Donations, DonationsServer};
use refer_proto::intake::v1::intake_server::{Intake, IntakeServer};
use refer_proto::matcher::v1::matcher_server::{Matcher, MatcherServer};
grpc_servers!(
    CapacityServer<Capacity>,
    DonationsServer<Donations>,
    IntakeServer<Intake>,
    MatcherServer<Matcher>
);

/// A service serving: where it listens, and how to stop it.
pub struct Running {
    pub addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    stop: std::sync::Arc<watch::Sender<bool>>,
    /// Set when another process took this one's instance name (it stops).
    lost: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Turns true once the read models caught up with the stream.
    ready: watch::Receiver<bool>,
    server: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    helpers: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Returns once the service serves (its read models caught up).
    pub async fn ready(&self) {
        let _ = self.ready.clone().wait_for(|ready| *ready).await;
    }

    /// Stops serving (in-flight calls finish), then the background tasks,
    /// and waits for all of them, as mini-redis does.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        // Calls in flight finish; a watch never does by itself, and a
        // process that lost its name must not linger serving one: after
        // the grace its connections are closed, and the client sees the
        // stream end with an error (it reconnects to another replica).
        let mut server = self.server;
        match tokio::time::timeout(STOP_GRACE, &mut server).await {
            Ok(served) => served??,
            Err(_) => {
                tracing::warn!(grace = ?STOP_GRACE, "calls still open at stop (watches); closing them");
                server.abort();
            }
        }
        for task in self.tasks {
            task.await?;
        }
        for helper in self.helpers {
            helper.abort();
        }
        anyhow::ensure!(
            !self.lost.load(std::sync::atomic::Ordering::SeqCst),
            "stopped: another process took this instance's name (docs/operations.md)"
        );
        Ok(())
    }

    /// Serves until `signal` resolves, then stops.
    pub async fn until(self, signal: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
        let mut stopped = self.stop.subscribe();
        tokio::select! {
            _ = signal => {}
            _ = stopped.wait_for(|stop| *stop) => {}
        }
        self.stop().await
    }
}

/// How long a stopping service lets open calls finish.
pub const STOP_GRACE: Duration = Duration::from_secs(2);

/// Starts `spec` with `config`: loads the token file (refused at start if
/// missing or invalid) and watches it, opens the store, starts the service,
/// binds the metrics and gRPC listeners (port 0 picks a free one), serves.
/// `main` and `TestApp` both come through here.
pub async fn launch(spec: &ServiceSpec, config: Config, clock: crate::SharedClock) -> anyhow::Result<Running> {
    let tokens = crate::TokenBook::load(&config.tokens_file)?;
    // TLS settings first: a missing certificate stops the service before it
    // touches the bus.
    let grpc_tls = config.tls.listening(spec.name, &[b"h2"])?;
    let metrics_tls = config
        .tls
        .listening(&format!("{} metrics", spec.name), &[b"http/1.1"])?;
    let token_watch = tokens.watch_file(config.tokens_file.clone());
    let store = config.open_store().await?;
    // Before anything that uses the instance's name (consumers, a lease).
    let claim = crate::identity::Claim::take(store.jetstream(), &config.stream, spec.name, &config.instance).await?;
    let (stop, stopped) = watch::channel(false);
    let stop = std::sync::Arc::new(stop);
    let lost = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let named = claim.confirmed();
    let claiming = claim.keep(stopped.clone(), stop.clone(), lost.clone());
    let (caught_up, ready) = watch::channel(false);
    let readiness = Readiness {
        ready: ready.clone(),
        waits: Default::default(),
    };
    let context = Context {
        store,
        clock,
        shutdown: stopped.clone(),
        config: config.clone(),
        tokens,
        ready: readiness.clone(),
        named,
        callers: spec.callers,
    };
    let Started { routes, tasks } = match (spec.start)(context).await {
        Ok(started) => started,
        Err(err) => {
            // Give the name up again: nothing runs under it.
            let _ = stop.send(true);
            let _ = claiming.await;
            return Err(err);
        }
    };
    let metrics = tokio::net::TcpListener::bind(config.metrics_listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen for metrics on {}: {e}", config.metrics_listen))?;
    let metrics_addr = metrics.local_addr()?;
    let mut helpers = vec![token_watch];
    let metrics_task = match metrics_tls {
        crate::tls::Listening::Plaintext => tokio::spawn(refer_metrics::serve(metrics)),
        crate::tls::Listening::Tls(acceptor) => {
            helpers.push(acceptor.keep_fresh());
            let mut incoming = acceptor.incoming(metrics, false);
            tokio::spawn(async move {
                while let Some((socket, _)) = incoming.accept().await {
                    tokio::spawn(refer_metrics::answer(socket));
                }
            })
        }
    };
    helpers.push(metrics_task);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(service = spec.name, %addr, metrics = %metrics_addr, data = %config.data_dir.display(), "listening");
    if let crate::tls::Listening::Tls(acceptor) = &grpc_tls {
        helpers.push(acceptor.keep_fresh());
    }
    let mut shutdown = stopped;
    let server = tokio::spawn(crate::server::serve(
        spec.grpc_name,
        routes,
        listener,
        grpc_tls,
        ready.clone(),
        async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        },
    ));
    let mut tasks = tasks;
    tasks.push(claiming);
    let waits = std::mem::take(&mut *readiness.waits.lock().expect("readiness lock"));
    let readying = tokio::spawn(async move {
        let started = std::time::Instant::now();
        let waiting = !waits.is_empty();
        for wait in waits {
            wait.await;
        }
        if waiting {
            tracing::info!(
                took_ms = started.elapsed().as_millis() as u64,
                "caught up with the stream; serving"
            );
        }
        caught_up.send_replace(true);
    });
    Ok(Running {
        addr,
        metrics_addr,
        stop,
        lost,
        ready,
        server,
        tasks,
        helpers: {
            helpers.push(readying);
            helpers
        },
    })
}

/// A service's `main`: configuration from the environment, tracing, then
/// [`launch`], serving until SIGINT or SIGTERM.
pub async fn run(spec: ServiceSpec) -> anyhow::Result<()> {
    let config = Config::from_env(spec.name, spec.default_port)?;
    crate::server::init_tracing(config.json_logs);
    let running = launch(&spec, config, std::sync::Arc::new(crate::SystemClock)).await?;
    running.until(crate::server::shutdown_signal()).await?;
    tracing::info!(service = spec.name, "stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::path::Path;

    fn load(file: Option<&str>, env: &[(&str, &str)]) -> anyhow::Result<Config> {
        let env: HashMap<String, String> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_sources("capacity", 50051, file.map(|t| (Path::new("refer.toml"), t)), |k| {
            env.get(k).cloned()
        })
    }

    #[test]
    fn defaults_are_local_and_safe() {
        let c = load(None, &[("REFER_TOKENS_FILE", "tokens.toml")]).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:50051");
        assert_eq!(c.metrics_listen.to_string(), "127.0.0.1:51051");
        assert_eq!(c.nats_url, "nats://127.0.0.1:4222");
        assert_eq!(c.data_dir, PathBuf::from("data/capacity"));
        assert_eq!(
            (c.stream.name.as_str(), c.stream.replicas, c.json_logs),
            ("REFER", 1, false)
        );
    }

    #[test]
    fn the_environment_overrides_the_file() {
        let file = "tokens_file = \"t.toml\"\nlisten = \"0.0.0.0:6000\"\nstream_replicas = 3\nlog_format = \"json\"\n";
        let c = load(Some(file), &[("REFER_LISTEN", "127.0.0.1:7000")]).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:7000");
        assert_eq!((c.stream.replicas, c.json_logs), (3, true));
        assert_eq!(c.tokens_file, PathBuf::from("t.toml"));
    }

    #[test]
    fn bad_configuration_is_refused_with_the_setting_named() {
        let err = load(Some("tokens_file = \"t\"\nlisen = \"x\"\n"), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("refer.toml") && err.contains("lisen"), "{err}");
        let err = load(None, &[("REFER_TOKENS_FILE", "t"), ("REFER_LISTEN", "nowhere")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("REFER_LISTEN=\"nowhere\""), "{err}");
        let err = load(Some("tokens_file = \"t\"\nstream_replicas = 9\n"), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("stream_replicas"), "{err}");
        let err = load(None, &[]).unwrap_err().to_string();
        assert!(err.contains("REFER_TOKENS_FILE"), "{err}");
        let err = load(Some("tokens_file = \"t\"\ninstance = \"a.b\"\n"), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("instance=\"a.b\" must be 1-32 of a-z, 0-9 and -"), "{err}");
    }

    #[test]
    fn tls_is_a_certificate_or_an_explicit_plaintext_never_a_default() {
        let c = load(None, &[("REFER_TOKENS_FILE", "t")]).unwrap();
        assert_eq!(c.tls, crate::tls::ServerTls::default());
        let err = match c.tls.listening("capacity", &[b"h2"]) {
            Ok(_) => panic!("no certificate and no tls_plaintext must not serve"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains("tls_cert_file") && err.contains("tls_plaintext"), "{err}");
        let file = "tokens_file = \"t\"\ntls_cert_file = \"c.pem\"\ntls_key_file = \"k.pem\"\ntls_client_ca_file = \"ca.pem\"\n";
        let c = load(Some(file), &[("REFER_TLS_KEY_FILE", "other.pem")]).unwrap();
        assert_eq!(c.tls.cert_file, Some(PathBuf::from("c.pem")));
        assert_eq!(c.tls.key_file, Some(PathBuf::from("other.pem")), "the environment wins");
        assert_eq!(c.tls.client_ca_file, Some(PathBuf::from("ca.pem")));
        let err = load(None, &[("REFER_TOKENS_FILE", "t"), ("REFER_TLS_PLAINTEXT", "yes")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("REFER_TLS_PLAINTEXT=\"yes\" must be true or false"),
            "{err}"
        );
        let half = crate::tls::ServerTls {
            key_file: Some("k.pem".into()),
            ..Default::default()
        };
        let err = half.listening("capacity", &[b"h2"]).err().expect("refused").to_string();
        assert!(err.contains("tls_key_file is set without tls_cert_file"), "{err}");
        let plain = crate::tls::ServerTls {
            plaintext: true,
            ..Default::default()
        };
        assert!(matches!(
            plain.listening("capacity", &[b"h2"]),
            Ok(crate::tls::Listening::Plaintext)
        ));
    }

    #[test]
    fn each_replica_is_named_by_its_data_directory_unless_named() {
        let a = load(None, &[("REFER_TOKENS_FILE", "t"), ("REFER_DATA_DIR", "/data/a")]).unwrap();
        let b = load(None, &[("REFER_TOKENS_FILE", "t"), ("REFER_DATA_DIR", "/data/b")]).unwrap();
        let a_again = load(None, &[("REFER_TOKENS_FILE", "t"), ("REFER_DATA_DIR", "/data/a")]).unwrap();
        assert_ne!(a.instance, b.instance);
        assert_eq!(a.instance, a_again.instance, "stable across restarts");
        let named = load(None, &[("REFER_TOKENS_FILE", "t"), ("REFER_INSTANCE", "capacity-2")]).unwrap();
        assert_eq!(named.instance, "capacity-2");
    }

    #[test]
    fn a_partition_is_a_name_and_its_regions_together() {
        let none = load(None, &[("REFER_TOKENS_FILE", "t")]).unwrap();
        assert_eq!(none.partition, None, "every region by default");
        let file = "tokens_file = \"t\"\npartition = \"north\"\npartition_regions = [\"US-06-075\", \"US-06-081\"]\n";
        let (name, regions) = load(Some(file), &[]).unwrap().partition.unwrap();
        assert_eq!(name, "north");
        assert_eq!(
            regions.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
            ["US-06-075", "US-06-081"]
        );
        let from_env = load(
            None,
            &[
                ("REFER_TOKENS_FILE", "t"),
                ("REFER_PARTITION", "south"),
                ("REFER_PARTITION_REGIONS", "US-06-037, US-06-059"),
            ],
        )
        .unwrap();
        assert_eq!(from_env.partition.unwrap().1.len(), 2);

        let refused = |file: &str, env: &[(&str, &str)]| load(Some(file), env).unwrap_err().to_string();
        let err = refused("tokens_file = \"t\"\npartition = \"north\"\n", &[]);
        assert!(err.contains("partition is set without its regions"), "{err}");
        let err = refused("tokens_file = \"t\"\n", &[("REFER_PARTITION_REGIONS", "US-06-075")]);
        assert!(
            err.contains("REFER_PARTITION_REGIONS is set without a partition name"),
            "{err}"
        );
        let err = refused(
            "tokens_file = \"t\"\npartition = \"North\"\npartition_regions = [\"US-06-075\"]\n",
            &[],
        );
        assert!(err.contains("partition=\"North\" must be 1-32 of a-z"), "{err}");
        let err = refused(
            "tokens_file = \"t\"\npartition = \"north\"\npartition_regions = [\"US-06-075\", \"us 6\"]\n",
            &[],
        );
        assert!(
            err.contains("partition_regions[1]=\"us 6\" is not a region code"),
            "{err}"
        );
        let err = refused(
            "tokens_file = \"t\"\n",
            &[("REFER_PARTITION", "n"), ("REFER_PARTITION_REGIONS", "A,A")],
        );
        assert!(
            err.contains("REFER_PARTITION_REGIONS[1]=\"A\" is listed twice"),
            "{err}"
        );
    }
}
