//! `refer admin ...`: partners' tokens and the matcher's workload.

use crate::args;
use crate::client::{channel, request};
use crate::errors::explain;
use crate::output::{record, table};
use crate::settings::Settings;
use clap::{Subcommand, ValueEnum};
use refer_proto::matcher::v1::matcher_client::MatcherClient;
use refer_proto::matcher::v1::GetStatusRequest;
use serde::Deserialize;
use std::io::Write;
use std::path::PathBuf;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Role {
    Intake,
    Provider,
    Business,
    Admin,
}

#[derive(Subcommand)]
pub enum Command {
    /// Give a partner a token: appends its hash to the token file and prints the token once.
    /// Running services pick it up within seconds.
    AddPartner {
        #[arg(long, env = "REFER_TOKENS_FILE")]
        tokens_file: PathBuf,
        /// A name for logs (the organisation or person).
        #[arg(long)]
        name: String,
        #[arg(long, value_enum)]
        role: Role,
        /// The partner's organisation id (a new one when absent).
        #[arg(long)]
        org: Option<String>,
    },
    /// The tokens configured (names, roles, organisations; never the tokens).
    Tokens {
        #[arg(long, env = "REFER_TOKENS_FILE")]
        tokens_file: PathBuf,
    },
    /// The matcher's position, open needs, pending referrals and waitlist.
    Stats,
}

#[derive(Deserialize)]
struct Entry {
    name: String,
    role: String,
    org: String,
}

#[derive(Deserialize)]
struct TokenFile {
    #[serde(default)]
    token: Vec<Entry>,
}

pub async fn run(settings: &Settings, command: Command) -> anyhow::Result<()> {
    match command {
        Command::AddPartner {
            tokens_file,
            name,
            role,
            org,
        } => {
            let org = match org {
                Some(o) => uuid::Uuid::parse_str(&o).map_err(|_| anyhow::anyhow!("--org {o:?} is not a UUID"))?,
                None => uuid::Uuid::new_v4(),
            };
            if name.contains('"') || name.contains('\\') || name.chars().any(char::is_control) {
                anyhow::bail!("--name may not contain quotes, backslashes or control characters");
            }
            let token = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
            let role_name = format!("{role:?}").to_lowercase();
            let entry = format!(
                "\n[[token]]\nname = \"{name}\"\nrole = \"{role_name}\"\norg = \"{org}\"\nsha256 = \"{}\"\n",
                refer_service::auth::hash_token(&token)
            );
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&tokens_file)
                .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", tokens_file.display()))?;
            file.write_all(entry.as_bytes())?;
            refer_service::TokenBook::load(&tokens_file)
                .map_err(|e| anyhow::anyhow!("the token file is now invalid: {e}"))?;
            record(
                settings.json,
                vec![
                    ("name", name),
                    ("role", role_name),
                    ("org", org.to_string()),
                    ("token", token),
                ],
            );
        }
        Command::Tokens { tokens_file } => {
            let text = std::fs::read_to_string(&tokens_file)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", tokens_file.display()))?;
            let file: TokenFile = toml::from_str(&text)
                .map_err(|e| anyhow::anyhow!("{} is not a valid token file: {e}", tokens_file.display()))?;
            table(
                settings.json,
                &["name", "role", "org"],
                file.token.into_iter().map(|e| vec![e.name, e.role, e.org]).collect(),
            );
        }
        Command::Stats => {
            let url = settings.matcher.clone();
            let mut client = MatcherClient::new(channel("matcher", &url).await?);
            let s = client
                .get_status(request(settings, GetStatusRequest {})?)
                .await
                .map_err(|s| anyhow::anyhow!(explain("matcher", &url, &s)))?
                .into_inner();
            record(
                settings.json,
                vec![
                    ("checkpoint", s.checkpoint.to_string()),
                    ("providers", s.providers.to_string()),
                    ("donations", s.donations.to_string()),
                    ("unplaced_needs", s.unplaced_needs.to_string()),
                    ("accepted_needs", s.accepted_needs.to_string()),
                    ("pending_referrals", s.pending_referrals.to_string()),
                    (
                        "waitlisted",
                        s.waitlist.iter().map(|w| w.needs).sum::<u32>().to_string(),
                    ),
                ],
            );
            if !s.waitlist.is_empty() && !settings.json {
                crate::output::out("");
                table(
                    false,
                    &["waitlisted need", "region", "count"],
                    s.waitlist
                        .iter()
                        .map(|w| vec![args::need_name(w.kind).into(), w.region.clone(), w.needs.to_string()])
                        .collect(),
                );
            }
        }
    }
    Ok(())
}
