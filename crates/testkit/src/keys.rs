//! The bus's credentials in tests: one nkey per kind of process, the
//! permissions of `deploy/nats/auth.conf` (the file compose deploys), so a
//! test runs with exactly the access a deployment grants.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tempfile::TempDir;

/// Every kind of process `deploy/nats/auth.conf` knows.
pub const ROLES: [&str; 6] = ["capacity", "donations", "intake", "matcher", "console", "operator"];

/// The permissions every test server enforces.
pub(crate) const AUTH_CONF: &str = include_str!("../../../deploy/nats/auth.conf");

/// A fresh key pair for each role: the seeds in files (as secrets are
/// mounted), the public keys for the server's environment; and two fresh
/// certificate authorities, as deployed: the bus's, with one certificate for
/// every node (127.0.0.1 and localhost, for clients and for the routes
/// between nodes), and the services', for their listeners. Two, because a
/// node admits a route from any certificate its CA signed: a service's
/// certificate must not make its holder a node of the bus.
#[derive(Clone)]
pub struct NatsKeys {
    dir: Arc<TempDir>,
    ca: Arc<crate::tls::DevCa>,
    /// The key of the store's encryption at rest.
    store_key: String,
    public: BTreeMap<&'static str, String>,
}

impl NatsKeys {
    pub fn generate() -> std::io::Result<Self> {
        let dir = tempfile::Builder::new().prefix("refer-nkeys-").tempdir()?;
        let mut public = BTreeMap::new();
        for role in ROLES {
            let pair = nkeys::KeyPair::new_user();
            let seed = pair.seed().map_err(std::io::Error::other)?;
            std::fs::write(dir.path().join(format!("{role}.nk")), seed)?;
            public.insert(role, pair.public_key());
        }
        let nodes = crate::tls::DevCa::generate().map_err(std::io::Error::other)?;
        let (cert, key) = nodes
            .issue(&["127.0.0.1", "localhost"])
            .map_err(std::io::Error::other)?;
        std::fs::write(dir.path().join("nats-ca.pem"), nodes.pem())?;
        std::fs::write(dir.path().join("node.pem"), cert)?;
        std::fs::write(dir.path().join("node.key"), key)?;
        // The services' listeners (gRPC, metrics, the console) have their own CA.
        let tls = crate::tls::DevCa::generate().map_err(std::io::Error::other)?;
        let (cert, key) = tls.issue(&["127.0.0.1", "localhost"]).map_err(std::io::Error::other)?;
        std::fs::write(dir.path().join("ca.pem"), tls.pem())?;
        std::fs::write(dir.path().join("service.pem"), cert)?;
        std::fs::write(dir.path().join("service.key"), key)?;
        Ok(Self {
            dir: Arc::new(dir),
            ca: Arc::new(tls),
            // Random enough for a test's store: a fresh seed's characters.
            store_key: nkeys::KeyPair::new_user()
                .seed()
                .map_err(std::io::Error::other)?
                .chars()
                .skip(2)
                .collect(),
            public,
        })
    }

    /// `REFER_NKEY_<ROLE>` for each role, as the server's configuration reads them.
    pub fn environment(&self) -> impl Iterator<Item = (String, String)> + '_ {
        self.public
            .iter()
            .map(|(role, key)| (format!("REFER_NKEY_{}", role.to_uppercase()), key.clone()))
    }

    /// The file holding `role`'s seed (`nats_nkey_file`).
    pub fn seed_file(&self, role: &str) -> PathBuf {
        assert!(ROLES.contains(&role), "no NATS role {role:?}");
        self.dir.path().join(format!("{role}.nk"))
    }

    /// The certificate authority every node's certificate is signed by:
    /// what clients of the bus verify it against (`nats_ca_file`).
    pub fn nats_ca_file(&self) -> PathBuf {
        self.dir.path().join("nats-ca.pem")
    }

    /// The certificate authority of the services' and consoles' certificates
    /// (`ca_file`): what their clients verify them against.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A node's certificate and key.
    pub fn node_cert(&self) -> (PathBuf, PathBuf) {
        (self.dir.path().join("node.pem"), self.dir.path().join("node.key"))
    }

    /// The certificate and key the services' listeners serve (and clients
    /// present for mutual TLS), signed by [`NatsKeys::ca`].
    pub fn service_cert(&self) -> (PathBuf, PathBuf) {
        (self.dir.path().join("service.pem"), self.dir.path().join("service.key"))
    }

    /// The key a test server's store is encrypted with.
    pub fn store_key(&self) -> &str {
        &self.store_key
    }

    /// The services' CA itself, to issue more certificates (a rotation, an
    /// expired one).
    pub fn ca(&self) -> &crate::tls::DevCa {
        &self.ca
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `role`'s seed.
    pub fn seed(&self, role: &str) -> String {
        std::fs::read_to_string(self.seed_file(role)).expect("a seed file")
    }
}

/// What a process needs to reach a test bus: its URLs (comma-separated for
/// a cluster) and each role's credential.
#[derive(Clone)]
pub struct BusAccess {
    pub urls: String,
    pub keys: NatsKeys,
}

impl BusAccess {
    /// A client with `role`'s credential that retries its first connection
    /// and reconnects quickly.
    pub async fn connect_as(&self, role: &str) -> Result<async_nats::Client, async_nats::ConnectError> {
        let servers: Vec<async_nats::ServerAddr> = self
            .urls
            .split(',')
            .map(|u| u.parse().expect("a test server's URL"))
            .collect();
        async_nats::ConnectOptions::new()
            .nkey(self.keys.seed(role))
            .custom_inbox_prefix(format!("_INBOX_{role}"))
            .add_root_certificates(self.keys.nats_ca_file())
            .require_tls(true)
            .retry_on_initial_connect()
            .reconnect_delay_callback(|attempt| std::time::Duration::from_millis((50 * attempt as u64).min(500)))
            .connect(servers)
            .await
    }
}
