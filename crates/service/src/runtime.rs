//! Starting a service: configuration from the environment, the event store,
//! and the background loop that keeps a projection up to date.

use refer_eventstore::{EventStore, Projection, StreamSettings, Subscriber};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::watch;

/// Where a service finds its bus, its data and its callers. Read from the
/// environment (every variable optional but the token file):
///
/// | variable | default |
/// |---|---|
/// | `REFER_NATS_URL` | `nats://127.0.0.1:4222` |
/// | `REFER_DATA_DIR` | `data/<service>` |
/// | `REFER_LISTEN` | `127.0.0.1:<the service's port>` |
/// | `REFER_TOKENS_FILE` | required |
/// | `REFER_STREAM` | `REFER` |
/// | `REFER_STREAM_REPLICAS` | `1` (3 on the compose cluster) |
#[derive(Clone, Debug)]
pub struct Config {
    pub nats_url: String,
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub tokens_file: PathBuf,
    pub stream: StreamSettings,
}

impl Config {
    pub fn from_env(service: &str, default_port: u16) -> anyhow::Result<Self> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let listen = var("REFER_LISTEN").unwrap_or_else(|| format!("127.0.0.1:{default_port}"));
        let listen = listen
            .parse()
            .map_err(|_| anyhow::anyhow!("REFER_LISTEN={listen:?} is not an address like 127.0.0.1:50051"))?;
        let tokens_file = var("REFER_TOKENS_FILE")
            .ok_or_else(|| anyhow::anyhow!("REFER_TOKENS_FILE is not set: point it at the token file (see README)"))?;
        let replicas = var("REFER_STREAM_REPLICAS").unwrap_or_else(|| "1".into());
        let replicas = replicas
            .parse()
            .ok()
            .filter(|r| (1..=5).contains(r))
            .ok_or_else(|| anyhow::anyhow!("REFER_STREAM_REPLICAS={replicas:?} must be 1 to 5"))?;
        Ok(Self {
            nats_url: var("REFER_NATS_URL").unwrap_or_else(|| "nats://127.0.0.1:4222".into()),
            data_dir: var("REFER_DATA_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("data").join(service)),
            listen,
            tokens_file: tokens_file.into(),
            stream: StreamSettings {
                name: var("REFER_STREAM").unwrap_or_else(|| "REFER".into()),
                replicas,
                ..Default::default()
            },
        })
    }

    /// Connects to NATS and opens the event store with its sled directory.
    pub async fn open_store(&self) -> anyhow::Result<EventStore> {
        let client = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connect(&self.nats_url)
            .await
            .map_err(|e| anyhow::anyhow!("cannot reach NATS at {}: {e}", self.nats_url))?;
        std::fs::create_dir_all(&self.data_dir)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", self.data_dir.display()))?;
        let db = sled::open(&self.data_dir)
            .map_err(|e| anyhow::anyhow!("cannot open sled at {}: {e}", self.data_dir.display()))?;
        Ok(EventStore::open(client, self.stream.clone(), db).await?)
    }
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
                        tracing::warn!(error = %err, "projection paused; retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
        }
    })
}

/// A service's `main`: configuration from the environment, tracing, the
/// event store, then `start` (which returns the gRPC routes and its
/// projection task), served until SIGINT/SIGTERM; then the projection stops.
pub async fn run<F, Fut>(
    service: &'static str,
    grpc_name: &'static str,
    default_port: u16,
    start: F,
) -> anyhow::Result<()>
where
    F: FnOnce(EventStore, crate::TokenBook, crate::SharedClock, watch::Receiver<bool>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<(tonic::service::Routes, tokio::task::JoinHandle<()>)>>,
{
    crate::server::init_tracing();
    let config = Config::from_env(service, default_port)?;
    let tokens = crate::TokenBook::load(&config.tokens_file)?;
    tokens.watch_file(config.tokens_file.clone());
    let store = config.open_store().await?;
    let (stop, stopped) = watch::channel(false);
    let (routes, projection) = start(store, tokens, std::sync::Arc::new(crate::SystemClock), stopped).await?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
    tracing::info!(service, addr = %config.listen, data = %config.data_dir.display(), "listening");
    crate::server::serve(grpc_name, routes, listener, crate::server::shutdown_signal()).await?;
    let _ = stop.send(true);
    projection.await?;
    tracing::info!(service, "stopped");
    Ok(())
}
