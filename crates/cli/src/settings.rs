//! Where the services are and who is calling: flags, then environment, then
//! the config file (`--config`, `REFER_CONFIG`, or `~/.config/refer/cli.toml`),
//! then local defaults.

use anyhow::Context;
use serde::Deserialize;
use std::path::PathBuf;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    pub token: Option<String>,
    pub capacity: Option<String>,
    pub donations: Option<String>,
    pub intake: Option<String>,
    pub matcher: Option<String>,
    pub nats: Option<String>,
    pub nats_nkey_file: Option<PathBuf>,
    pub nats_ca_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    pub client_cert_file: Option<PathBuf>,
    pub client_key_file: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub token: Option<String>,
    pub capacity: String,
    pub donations: String,
    pub intake: String,
    pub matcher: String,
    pub nats: String,
    /// The operator's nkey seed for NATS (deploy/nats/auth.conf).
    pub nats_nkey_file: Option<PathBuf>,
    /// The CA of the bus's certificates (TLS required when set).
    pub nats_ca_file: Option<PathBuf>,
    /// How the services' certificates are verified (`ca_file`), and this
    /// client's own for mutual TLS.
    pub tls: refer_client::tls::ClientTls,
    pub json: bool,
}

pub struct Overrides {
    pub config: Option<PathBuf>,
    pub token: Option<String>,
    pub capacity: Option<String>,
    pub donations: Option<String>,
    pub intake: Option<String>,
    pub matcher: Option<String>,
    pub nats: Option<String>,
    pub nats_nkey_file: Option<PathBuf>,
    pub nats_ca_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    pub client_cert_file: Option<PathBuf>,
    pub client_key_file: Option<PathBuf>,
    pub json: bool,
}

impl Settings {
    /// Flags (clap already folded in the `REFER_*` environment variables) over the file over defaults.
    pub fn resolve(o: Overrides) -> anyhow::Result<Self> {
        let explicit = o.config.is_some();
        let path = o
            .config
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config/refer/cli.toml")));
        let file = match path {
            Some(p) if p.exists() => {
                let text =
                    std::fs::read_to_string(&p).with_context(|| format!("cannot read config file {}", p.display()))?;
                toml::from_str::<File>(&text).with_context(|| format!("config file {} is not valid", p.display()))?
            }
            Some(p) if explicit => anyhow::bail!("config file {} does not exist", p.display()),
            _ => File::default(),
        };
        Ok(Self {
            token: o.token.or(file.token),
            capacity: o
                .capacity
                .or(file.capacity)
                .unwrap_or_else(|| "https://127.0.0.1:50051".into()),
            donations: o
                .donations
                .or(file.donations)
                .unwrap_or_else(|| "https://127.0.0.1:50052".into()),
            intake: o
                .intake
                .or(file.intake)
                .unwrap_or_else(|| "https://127.0.0.1:50053".into()),
            matcher: o
                .matcher
                .or(file.matcher)
                .unwrap_or_else(|| "https://127.0.0.1:50054".into()),
            nats: o.nats.or(file.nats).unwrap_or_else(|| "nats://127.0.0.1:4222".into()),
            nats_nkey_file: o.nats_nkey_file.or(file.nats_nkey_file),
            nats_ca_file: o.nats_ca_file.or(file.nats_ca_file),
            tls: refer_client::tls::ClientTls {
                ca_file: o.ca_file.or(file.ca_file),
                cert_file: o.client_cert_file.or(file.client_cert_file),
                key_file: o.client_key_file.or(file.client_key_file),
            },
            json: o.json,
        })
    }

    /// A client of the bus with the operator's credential (`nats_nkey_file`),
    /// failing at once when NATS is not there or refuses it (a command
    /// line waits for nobody).
    pub async fn bus(&self) -> anyhow::Result<async_nats::Client> {
        let mut options = async_nats::ConnectOptions::new()
            .connection_timeout(std::time::Duration::from_secs(2))
            .custom_inbox_prefix(refer_client::bus::inbox_of("operator"));
        if let Some(path) = &self.nats_nkey_file {
            options = options.nkey(refer_client::bus::read_nkey_seed(path)?);
        }
        if let Some(ca) = &self.nats_ca_file {
            options = options.add_root_certificates(ca.clone()).require_tls(true);
        }
        let servers = self
            .nats
            .split(',')
            .map(|u| u.trim().parse::<async_nats::ServerAddr>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow::anyhow!("--nats {:?} is not a list of NATS URLs: {e}", self.nats))?;
        options.connect(servers).await.map_err(|e| match e.kind() {
            async_nats::ConnectErrorKind::Tls => anyhow::anyhow!(
                "NATS at {} and this command disagree on TLS: pass the bus's CA as --nats-ca-file (or REFER_NATS_CA_FILE): {e}",
                self.nats
            ),
            async_nats::ConnectErrorKind::AuthorizationViolation | async_nats::ConnectErrorKind::Authentication => {
                anyhow::anyhow!(
                    "NATS at {} refused the credential: pass the operator's --nats-nkey-file (or REFER_NATS_NKEY_FILE)",
                    self.nats
                )
            }
            _ => anyhow::anyhow!("cannot reach NATS at {}: {e}", self.nats),
        })
    }

    pub fn token(&self) -> anyhow::Result<&str> {
        self.token.as_deref().ok_or_else(|| {
            anyhow::anyhow!("no token: pass --token, set REFER_TOKEN, or put `token = \"...\"` in the config file")
        })
    }
}
