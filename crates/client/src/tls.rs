//! TLS for every listener and every gRPC client, in one place: the four
//! services (gRPC and metrics), the console, the CLI, `refer-bench` and the
//! test kit all build their TLS here (docs/operations.md, "TLS").
//!
//! * A **server** reads its certificate and key from files (PEM) and reads
//!   them again when they change ([`Acceptor::keep_fresh`]): new connections
//!   get the new certificate, open ones keep theirs, the listener never
//!   closes. With a client CA it requires every client to present a
//!   certificate that CA signed (mutual TLS); the CA file is read again
//!   when it changes too, so a new client CA is trusted without a restart.
//!   Without TLS it serves only
//!   when told to (`tls_plaintext = true`), and says so loudly.
//! * A **client** verifies the server against a configured CA (never the
//!   system's store: a Refer deployment has its own CA), and may present a
//!   certificate of its own for mutual TLS. An `http://` address is the
//!   client's explicit choice of plaintext (local development only).
//!
//! Keys are never logged: a reload logs the file and the certificate's
//! SHA-256 fingerprint, which is public.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;

/// A TLS connection a server accepted.
pub type TlsConnection = TlsStream<TcpStream>;

/// How often a server looks at its certificate files for a new version.
pub const RELOAD_EVERY: Duration = Duration::from_secs(1);

/// The longest a client may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// At most this many handshakes at once per listener (a slow client holds
/// one; many cannot exhaust the process).
const MAX_HANDSHAKES: usize = 256;

/// The crypto every Refer TLS endpoint uses (ring, as async-nats does).
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A server's TLS settings: `tls_cert_file`, `tls_key_file`,
/// `tls_client_ca_file` and `tls_plaintext` (the same keys for the services
/// and the console).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerTls {
    /// The certificate chain (PEM, the server's own first).
    pub cert_file: Option<PathBuf>,
    /// Its private key (PEM).
    pub key_file: Option<PathBuf>,
    /// With it, clients must present a certificate this CA signed (mutual TLS).
    pub client_ca_file: Option<PathBuf>,
    /// No TLS: local development only.
    pub plaintext: bool,
}

/// What a server's settings come to.
pub enum Listening {
    Tls(Acceptor),
    /// Plaintext, as `tls_plaintext = true` asked.
    Plaintext,
}

impl ServerTls {
    /// Checks the settings and loads the certificate: TLS when a certificate
    /// and key are set, plaintext only when `tls_plaintext` says so (warned
    /// loudly, naming `what`), else refused with the settings named.
    pub fn listening(&self, what: &str, alpn: &[&[u8]]) -> anyhow::Result<Listening> {
        match (&self.cert_file, &self.key_file, self.plaintext) {
            (Some(cert), Some(key), _) => Ok(Listening::Tls(Acceptor::new(
                cert,
                key,
                self.client_ca_file.as_deref(),
                alpn,
            )?)),
            (Some(_), None, _) => anyhow::bail!("tls_cert_file is set without tls_key_file"),
            (None, Some(_), _) => anyhow::bail!("tls_key_file is set without tls_cert_file"),
            (None, None, true) => {
                anyhow::ensure!(
                    self.client_ca_file.is_none(),
                    "tls_client_ca_file needs TLS: set tls_cert_file and tls_key_file"
                );
                tracing::warn!(
                    "{what} SERVES WITHOUT TLS (tls_plaintext = true): tokens and personal data cross the \
                     network in clear; local development only"
                );
                Ok(Listening::Plaintext)
            }
            (None, None, false) => anyhow::bail!(
                "no TLS for {what}: set tls_cert_file and tls_key_file (REFER_TLS_CERT_FILE, REFER_TLS_KEY_FILE), \
                 or tls_plaintext = true for local development only"
            ),
        }
    }
}

/// The certificate chain and key in two PEM files, checked to belong together.
fn load_certified(cert_file: &Path, key_file: &Path) -> anyhow::Result<(CertifiedKey, String)> {
    let certs = CertificateDer::pem_file_iter(cert_file)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow::anyhow!("tls_cert_file {}: not a PEM certificate: {e}", cert_file.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "tls_cert_file {}: holds no certificate",
        cert_file.display()
    );
    // The key's own error could quote it: say only which file.
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|_| anyhow::anyhow!("tls_key_file {}: not a PEM private key", key_file.display()))?;
    let fingerprint = fingerprint(&certs[0]);
    let certified = CertifiedKey::from_der(certs, key, &provider()).map_err(|e| {
        anyhow::anyhow!(
            "tls_key_file {} does not go with tls_cert_file {}: {e}",
            key_file.display(),
            cert_file.display()
        )
    })?;
    Ok((certified, fingerprint))
}

/// A certificate's SHA-256 fingerprint (hex): public, safe to log.
pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(cert.as_ref()))
}

/// The fingerprint of the first certificate in `pem` (None if it holds none).
pub fn fingerprint_pem(pem: &str) -> Option<String> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .ok()
        .map(|der| fingerprint(&der))
}

/// The certificates of a CA file (PEM).
fn roots(ca_file: &Path, setting: &str) -> anyhow::Result<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(ca_file)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow::anyhow!("{setting} {}: not a PEM certificate: {e}", ca_file.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "{setting} {}: holds no certificate",
        ca_file.display()
    );
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| anyhow::anyhow!("{setting} {}: {e}", ca_file.display()))?;
    }
    Ok(roots)
}

/// The server's certificate, replaced when its files change.
struct Reloading {
    cert_file: PathBuf,
    key_file: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
    /// The files' bytes last loaded (or last refused), to notice a change.
    seen: std::sync::Mutex<(Vec<u8>, Vec<u8>)>,
}

// No key material in a debug print.
impl std::fmt::Debug for Reloading {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloading")
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .finish_non_exhaustive()
    }
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().expect("certificate lock").clone())
    }
}

impl Reloading {
    fn files(&self) -> (Vec<u8>, Vec<u8>) {
        (
            std::fs::read(&self.cert_file).unwrap_or_default(),
            std::fs::read(&self.key_file).unwrap_or_default(),
        )
    }

    /// Loads the files again if they changed since last time. A pair that
    /// does not load (a key written before its certificate) keeps the old
    /// certificate serving and is tried again once the files change again.
    fn refresh(&self) {
        let now = self.files();
        let mut seen = self.seen.lock().expect("seen lock");
        if *seen == now {
            return;
        }
        *seen = now;
        match load_certified(&self.cert_file, &self.key_file) {
            Ok((certified, fingerprint)) => {
                *self.current.write().expect("certificate lock") = Arc::new(certified);
                tracing::info!(cert_file = %self.cert_file.display(), sha256 = %fingerprint, "TLS certificate reloaded");
            }
            Err(e) => {
                tracing::warn!(error = %e, "new TLS certificate files not loaded; the old certificate still serves")
            }
        }
    }
}

/// A server's TLS: its configuration (the certificate resolved per
/// connection from [`Reloading`]; the configuration itself replaced when
/// the client CA changes) and how to accept connections with it.
#[derive(Clone)]
pub struct Acceptor {
    config: Arc<RwLock<Arc<rustls::ServerConfig>>>,
    reloading: Arc<Reloading>,
    client_ca: Option<Arc<ClientCa>>,
    alpn: Vec<Vec<u8>>,
}

/// The CA file a server verifies client certificates against, and its
/// bytes last loaded (or last refused), to notice a change.
struct ClientCa {
    file: PathBuf,
    seen: std::sync::Mutex<Vec<u8>>,
}

/// A server configuration: certificates from `reloading`, clients verified
/// against `client_ca` if any.
fn server_config(
    reloading: &Arc<Reloading>,
    client_ca: Option<&Path>,
    alpn: &[Vec<u8>],
) -> anyhow::Result<rustls::ServerConfig> {
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .map_err(|e| anyhow::anyhow!("TLS: {e}"))?;
    let builder = match client_ca {
        Some(ca) => {
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots(ca, "tls_client_ca_file")?),
                provider(),
            )
            .build()
            .map_err(|e| anyhow::anyhow!("tls_client_ca_file {}: {e}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(reloading.clone());
    config.alpn_protocols = alpn.to_vec();
    Ok(config)
}

impl Acceptor {
    /// Loads the certificate and key (refused at start if they do not load
    /// or do not match) and, with `client_ca`, requires client certificates
    /// it signed. `alpn`: `h2` for gRPC, `http/1.1` for the console.
    pub fn new(cert_file: &Path, key_file: &Path, client_ca: Option<&Path>, alpn: &[&[u8]]) -> anyhow::Result<Self> {
        let (certified, fingerprint) = load_certified(cert_file, key_file)?;
        let reloading = Arc::new(Reloading {
            cert_file: cert_file.to_owned(),
            key_file: key_file.to_owned(),
            current: RwLock::new(Arc::new(certified)),
            seen: std::sync::Mutex::new((std::fs::read(cert_file)?, std::fs::read(key_file)?)),
        });
        let alpn: Vec<Vec<u8>> = alpn.iter().map(|p| p.to_vec()).collect();
        let config = server_config(&reloading, client_ca, &alpn)?;
        let client_ca = match client_ca {
            Some(file) => Some(Arc::new(ClientCa {
                file: file.to_owned(),
                seen: std::sync::Mutex::new(std::fs::read(file)?),
            })),
            None => None,
        };
        tracing::info!(
            cert_file = %cert_file.display(),
            sha256 = %fingerprint,
            mutual = client_ca.is_some(),
            "TLS on"
        );
        Ok(Self {
            config: Arc::new(RwLock::new(Arc::new(config))),
            reloading,
            client_ca,
            alpn,
        })
    }

    /// Whether clients must present a certificate.
    pub fn mutual(&self) -> bool {
        self.client_ca.is_some()
    }

    /// Looks at the certificate files and the client CA every
    /// [`RELOAD_EVERY`] and serves new ones from the next connection on
    /// (open connections keep theirs). Runs until the task is aborted.
    pub fn keep_fresh(&self) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(RELOAD_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                let this = this.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    this.reloading.refresh();
                    this.refresh_client_ca();
                })
                .await;
            }
        })
    }

    /// Verifies client certificates against the client CA file as it is
    /// now, if it changed. A file that does not load (half written, no
    /// certificate) keeps the old CA and is tried again once it changes.
    fn refresh_client_ca(&self) {
        let Some(ca) = &self.client_ca else { return };
        let now = std::fs::read(&ca.file).unwrap_or_default();
        let mut seen = ca.seen.lock().expect("seen lock");
        if *seen == now {
            return;
        }
        *seen = now;
        match server_config(&self.reloading, Some(&ca.file), &self.alpn) {
            Ok(config) => {
                *self.config.write().expect("config lock") = Arc::new(config);
                tracing::info!(client_ca_file = %ca.file.display(), "client CA reloaded");
            }
            Err(e) => tracing::warn!(error = %e, "new client CA not loaded; the old one still verifies"),
        }
    }

    /// The TLS connections arriving on `listener`: handshakes run
    /// concurrently (at most [`MAX_HANDSHAKES`], each within
    /// [`HANDSHAKE_TIMEOUT`]); a client that fails one (plaintext, a CA of
    /// its own, no certificate when one is required) is dropped with a
    /// debug line and never reaches the service.
    pub fn incoming(&self, listener: TcpListener, nodelay: bool) -> Incoming {
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let config = self.config.clone();
        let local = listener.local_addr().ok();
        let task = tokio::spawn(async move {
            let permits = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
            loop {
                let (socket, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::debug!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                if tx.is_closed() {
                    break;
                }
                let _ = socket.set_nodelay(nodelay);
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    break;
                };
                // The configuration as it is now (a new client CA counts).
                let current = config.read().expect("config lock").clone();
                let acceptor = tokio_rustls::TlsAcceptor::from(current);
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(socket)).await {
                        Ok(Ok(stream)) => {
                            drop(permit);
                            let _ = tx.send((stream, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake refused"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Incoming {
            rx,
            local,
            _accepting: AbortOnDrop(task),
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// TLS connections that completed their handshake, with their peers'
/// addresses. Dropping it stops accepting.
pub struct Incoming {
    rx: tokio::sync::mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: Option<SocketAddr>,
    _accepting: AbortOnDrop,
}

impl Incoming {
    /// The next connection (`None` once the listener is gone).
    pub async fn accept(&mut self) -> Option<(TlsStream<TcpStream>, SocketAddr)> {
        self.rx.recv().await
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local
    }

    /// As a stream, for `tonic`'s `serve_with_incoming`.
    pub fn into_stream(self) -> impl tokio_stream::Stream<Item = std::io::Result<TlsStream<TcpStream>>> + Send {
        let Incoming {
            rx, _accepting: guard, ..
        } = self;
        tokio_stream::StreamExt::map(tokio_stream::wrappers::ReceiverStream::new(rx), move |(stream, _)| {
            // The accepting task lives as long as the stream.
            let _ = &guard;
            Ok(stream)
        })
    }
}

/// A client's TLS settings for reaching a Refer gRPC service.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientTls {
    /// The CA the services' certificates are verified against (required
    /// for `https://` addresses).
    pub ca_file: Option<PathBuf>,
    /// This client's own certificate and key, for services that require
    /// mutual TLS.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

impl ClientTls {
    /// The same CA, with a certificate of this client's own.
    pub fn with_identity(mut self, cert_file: PathBuf, key_file: PathBuf) -> Self {
        self.cert_file = Some(cert_file);
        self.key_file = Some(key_file);
        self
    }

    /// An endpoint for `url`: `https://` verified against `ca_file` (and
    /// presenting this client's certificate when one is set); `http://`
    /// in plaintext, the caller's explicit choice (warned once per process).
    /// `setting` names where the CA comes from in errors (`--ca-file`, ...).
    pub fn endpoint(&self, url: &str, setting: &str) -> anyhow::Result<tonic::transport::Endpoint> {
        let endpoint = tonic::transport::Endpoint::from_shared(url.to_owned())
            .map_err(|e| anyhow::anyhow!("{url:?} is not a URL: {e}"))?;
        if url.starts_with("http://") {
            static WARNED: std::sync::Once = std::sync::Once::new();
            WARNED.call_once(|| {
                tracing::warn!("gRPC WITHOUT TLS to {url}: tokens cross the network in clear; local development only");
            });
            return Ok(endpoint);
        }
        anyhow::ensure!(
            url.starts_with("https://"),
            "{url:?} must be an https:// address (http:// only for local development)"
        );
        let ca_file = self
            .ca_file
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("{url} is https: set {setting} to the CA of the services' certificates"))?;
        let ca = std::fs::read(ca_file).map_err(|e| anyhow::anyhow!("{setting} {}: {e}", ca_file.display()))?;
        let mut config =
            tonic::transport::ClientTlsConfig::new().ca_certificate(tonic::transport::Certificate::from_pem(ca));
        match (&self.cert_file, &self.key_file) {
            (Some(cert), Some(key)) => {
                let cert =
                    std::fs::read(cert).map_err(|e| anyhow::anyhow!("client certificate {}: {e}", cert.display()))?;
                let key =
                    std::fs::read(key).map_err(|_| anyhow::anyhow!("client key {}: cannot be read", key.display()))?;
                config = config.identity(tonic::transport::Identity::from_pem(cert, key));
            }
            (None, None) => {}
            _ => anyhow::bail!("a client certificate needs both its certificate and its key file"),
        }
        endpoint
            .tls_config(config)
            .map_err(|e| anyhow::anyhow!("TLS for {url}: {e}"))
    }
}

/// A client configuration for HTTPS calls outside gRPC (probes and tests
/// reading a metrics page): verifies against `ca_file`.
pub fn client_config(ca_file: &Path, identity: Option<(&Path, &Path)>) -> anyhow::Result<rustls::ClientConfig> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .map_err(|e| anyhow::anyhow!("TLS: {e}"))?
        .with_root_certificates(roots(ca_file, "ca_file")?);
    Ok(match identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let (certified, _) = load_certified(cert, key)?;
            let key =
                PrivateKeyDer::from_pem_file(key).map_err(|_| anyhow::anyhow!("{}: not a PEM key", key.display()))?;
            builder
                .with_client_auth_cert(certified.cert.clone(), key)
                .map_err(|e| anyhow::anyhow!("client certificate: {e}"))?
        }
    })
}

/// A TLS connection to `addr` (an IP address: the certificate must name
/// it), verified against `ca_file`, presenting `identity` if given: for
/// HTTPS outside gRPC (a metrics page, the console) in probes and tests.
pub async fn connect(
    addr: SocketAddr,
    ca_file: &Path,
    identity: Option<(&Path, &Path)>,
) -> anyhow::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let config = client_config(ca_file, identity)?;
    let tcp = TcpStream::connect(addr).await?;
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await?)
}
