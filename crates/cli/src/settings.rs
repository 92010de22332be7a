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
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub token: Option<String>,
    pub capacity: String,
    pub donations: String,
    pub intake: String,
    pub matcher: String,
    pub nats: String,
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
                .unwrap_or_else(|| "http://127.0.0.1:50051".into()),
            donations: o
                .donations
                .or(file.donations)
                .unwrap_or_else(|| "http://127.0.0.1:50052".into()),
            intake: o
                .intake
                .or(file.intake)
                .unwrap_or_else(|| "http://127.0.0.1:50053".into()),
            matcher: o
                .matcher
                .or(file.matcher)
                .unwrap_or_else(|| "http://127.0.0.1:50054".into()),
            nats: o.nats.or(file.nats).unwrap_or_else(|| "nats://127.0.0.1:4222".into()),
            json: o.json,
        })
    }

    pub fn token(&self) -> anyhow::Result<&str> {
        self.token.as_deref().ok_or_else(|| {
            anyhow::anyhow!("no token: pass --token, set REFER_TOKEN, or put `token = \"...\"` in the config file")
        })
    }
}
