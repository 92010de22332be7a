//! `refer`: Refer from the command line, for each role.
#![forbid(unsafe_code)]

mod admin;
mod args;
mod business;
mod client;
mod doctor;
mod errors;
mod hsds;
mod intake;
mod output;
mod provider;
mod reads;
mod report;
mod settings;
mod solve;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Refer: safe beds and care for people recovered from trafficking.
#[derive(Parser)]
#[command(name = "refer", version)]
struct Cli {
    /// Your token (from the coalition admin).
    #[arg(long, global = true, env = "REFER_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// A TOML file with `token`, `capacity`, `donations`, `intake`, `matcher`, `nats`, `nats_nkey_file`.
    #[arg(long, global = true, env = "REFER_CONFIG")]
    config: Option<PathBuf>,
    #[arg(long, global = true, env = "REFER_CAPACITY_URL")]
    capacity: Option<String>,
    #[arg(long, global = true, env = "REFER_DONATIONS_URL")]
    donations: Option<String>,
    #[arg(long, global = true, env = "REFER_INTAKE_URL")]
    intake: Option<String>,
    #[arg(long, global = true, env = "REFER_MATCHER_URL")]
    matcher: Option<String>,
    #[arg(long, global = true, env = "REFER_NATS_URL")]
    nats: Option<String>,
    /// The operator's NATS credential: a file holding an nkey seed
    /// (deploy/nats/auth.conf; admin commands and doctor).
    #[arg(long, global = true, env = "REFER_NATS_NKEY_FILE")]
    nats_nkey_file: Option<PathBuf>,
    /// The CA of the bus's certificates (PEM): TLS to NATS, verified.
    #[arg(long, global = true, env = "REFER_NATS_CA_FILE")]
    nats_ca_file: Option<PathBuf>,
    /// The CA of the services' certificates (PEM): `https://` addresses are
    /// verified against it.
    #[arg(long, global = true, env = "REFER_CA_FILE")]
    ca_file: Option<PathBuf>,
    /// This client's certificate (PEM), for services that require mutual TLS.
    #[arg(long, global = true, env = "REFER_CLIENT_CERT_FILE", requires = "client_key_file")]
    client_cert_file: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(long, global = true, env = "REFER_CLIENT_KEY_FILE", requires = "client_cert_file")]
    client_key_file: Option<PathBuf>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Provider partners: sites, capacity, referrals.
    #[command(subcommand)]
    Provider(provider::Command),
    /// Businesses: donated resources.
    #[command(subcommand)]
    Business(business::Command),
    /// Intake staff: placements and their status.
    #[command(subcommand)]
    Intake(intake::Command),
    /// Coalition admins: partners' tokens and the matcher's workload.
    #[command(subcommand)]
    Admin(admin::Command),
    /// Your organisation's figures over whole months (an admin's: the
    /// coalition's, or `--org`'s), from the matcher (docs/reports.md).
    /// Raw counts are for the coalition's own eyes; `--publish` applies the
    /// disclosure rules, for whatever leaves it.
    Report {
        /// The first month, YYYY-MM (default: this month, UTC).
        #[arg(long)]
        from: Option<String>,
        /// The last month, YYYY-MM (default: the first).
        #[arg(long)]
        to: Option<String>,
        /// An organisation's id: admins only (a partner reads its own).
        #[arg(long)]
        org: Option<String>,
        /// Only what may leave the coalition.
        #[arg(long)]
        publish: bool,
        /// Print the tables as CSV (with `--publish`).
        #[arg(long, requires = "publish")]
        csv: bool,
    },
    /// Check NATS and every service, and say what is wrong.
    Doctor,
    /// Run the matching engine on a problem instance (JSON, see
    /// docs/matching.md; `-` reads stdin) and print the assignment and its
    /// metrics as JSON. Needs no service.
    Solve {
        file: std::path::PathBuf,
        #[arg(long, value_enum, default_value = "batch")]
        mode: solve::SolveMode,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if let Command::Solve { file, mode } = &cli.command {
        return report(solve::run(file, *mode));
    }
    let resolved = settings::Settings::resolve(settings::Overrides {
        config: cli.config,
        token: cli.token,
        capacity: cli.capacity,
        donations: cli.donations,
        intake: cli.intake,
        matcher: cli.matcher,
        nats: cli.nats,
        nats_nkey_file: cli.nats_nkey_file,
        nats_ca_file: cli.nats_ca_file,
        ca_file: cli.ca_file,
        client_cert_file: cli.client_cert_file,
        client_key_file: cli.client_key_file,
        json: cli.json,
    });
    let result = match resolved {
        Err(e) => Err(e),
        Ok(s) => match cli.command {
            Command::Provider(c) => provider::run(&s, c).await,
            Command::Business(c) => business::run(&s, c).await,
            Command::Intake(c) => intake::run(&s, c).await,
            Command::Admin(c) => admin::run(&s, c).await,
            Command::Report {
                from,
                to,
                org,
                publish,
                csv,
            } => report::run_api(&s, from, to, org, publish, csv).await,
            Command::Doctor => doctor::run(&s).await,
            Command::Solve { .. } => unreachable!("solved above, without settings"),
        },
    };
    report(result)
}

fn report(result: anyhow::Result<()>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
