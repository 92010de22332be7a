//! `refer admin ...`: partners' tokens and the matcher's workload.

use crate::args;
use crate::client::{channel, request};
use crate::errors::explain;
use crate::output::{record, table};
use crate::settings::Settings;
use clap::{Subcommand, ValueEnum};
use refer_proto::matcher::v1::matcher_client::MatcherClient;
use refer_proto::matcher::v1::GetStatusRequest;
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
    /// The directory as Open Referral HSDS 3.1: export it, or onboard sites from it (docs/hsds.md).
    #[command(subcommand)]
    Hsds(crate::hsds::Command),
    /// The tokens configured (names, roles, organisations; never the tokens).
    Tokens {
        #[arg(long, env = "REFER_TOKENS_FILE")]
        tokens_file: PathBuf,
    },
    /// The matcher's position, open needs, pending referrals and waitlist.
    Stats,
    /// Every read of a sealed item: who, which item, when (never its content).
    Reads,
    /// Re-wrap every sealed item's data key under a new key-encryption key
    /// (docs/privacy.md: start the services with the new key and the old one
    /// as previous first; afterwards the old key file can be destroyed).
    RotateKek {
        /// The new key file (64 hex digits).
        #[arg(long)]
        kek: PathBuf,
        /// The key files data keys may still be wrapped by.
        #[arg(long, required = true)]
        previous: Vec<PathBuf>,
        /// The stream whose sealed-key bucket (`<stream>_DATA_KEYS`) to rotate.
        #[arg(long, default_value = "REFER")]
        stream: String,
    },
    /// Make a NATS credential: an nkey pair. The seed goes to `--out`
    /// (mode 600, refused if the file exists), and the public key (`U...`)
    /// is printed for the bus's configuration (REFER_NKEY_<ROLE>,
    /// deploy/nats/auth.conf).
    NatsKey {
        #[arg(long)]
        out: PathBuf,
    },
    /// Make two throwaway certificate authorities: the bus's, with a
    /// certificate for its nodes (`--names`: nats-ca.pem, node.pem, node.key
    /// in `--dir`), and the services', with one for the services and the
    /// console (`--service-names`: ca.pem, service.pem, service.key). Two,
    /// because a node admits as a route any certificate its CA signed: a
    /// service's must not make its holder a node. TLS for a local run or a
    /// test deployment (`scripts/run`), never for production.
    DevCa {
        #[arg(long)]
        dir: PathBuf,
        /// Host names and addresses the nodes' certificate is for.
        #[arg(long, value_delimiter = ',', default_value = "127.0.0.1,localhost")]
        names: Vec<String>,
        /// Host names and addresses the services' certificate is for.
        #[arg(long, value_delimiter = ',', default_value = "127.0.0.1,localhost")]
        service_names: Vec<String>,
        /// A certificate of its own for one kind of process, from the
        /// services' CA: `<kind>=<name>,<name>...` writes `<kind>.pem` and
        /// `<kind>.key` (repeat for each kind). A stolen key then answers
        /// only as that kind, never as another service.
        #[arg(long = "service", value_name = "KIND=NAMES", value_parser = kind_and_names)]
        services: Vec<(String, Vec<String>)>,
    },
    /// Turn rollups off on every key-value bucket that still allows them
    /// (made by an earlier version): with them on, any credential that may
    /// write a bucket could wipe it whole. And cap the idempotency bucket
    /// (made uncapped by an earlier version: any service credential could
    /// fill a node's memory with it). Needs the operator's credential;
    /// services refuse such a bucket at start, naming this command.
    HardenBuckets {
        /// The stream whose idempotency bucket (`<stream>_KEYS`) to cap.
        #[arg(long, default_value = "REFER")]
        stream: String,
    },
    /// Move the wrapped data keys from the buckets of earlier versions (the
    /// one before secure erasure, `<stream>_SEALED`, and the one every
    /// sealing service shared, `<stream>_DATA_KEYS`) to the bucket of the
    /// service that sealed each (`<stream>_DATA_KEYS_<SERVICE>`), then
    /// delete the old buckets. Run `provision` first, then this once, with
    /// every service stopped (docs/operations.md).
    MigrateSealed {
        /// The stream whose sealed keys to move.
        #[arg(long, default_value = "REFER")]
        stream: String,
    },
    /// The coalition's figures over whole months, folded from the stream
    /// (docs/reports.md): needs by kind and outcome, declines by reason,
    /// unmet need by region and by the profile's bands, delays, donations,
    /// partners active. Raw counts are for the coalition's own eyes;
    /// `--publish` applies the disclosure rules, for whatever leaves it.
    /// Needs the operator's credential.
    Report {
        /// The first month, YYYY-MM (default: this month).
        #[arg(long)]
        from: Option<String>,
        /// The last month, YYYY-MM (default: the first).
        #[arg(long)]
        to: Option<String>,
        /// One organisation's own work (its id): the needs it requested or
        /// that were referred to its sites or donations, its donations.
        #[arg(long)]
        org: Option<String>,
        /// Only what may leave the coalition: small cells, figures from few
        /// providers and what would give them away hidden, dates in months.
        #[arg(long)]
        publish: bool,
        /// Print the published tables as CSV (with `--publish`).
        #[arg(long, requires = "publish")]
        csv: bool,
        #[arg(long, default_value = "REFER")]
        stream: String,
    },
    /// Delete the consumers of the stream and its read log that have no
    /// pull waiting and have done nothing for `--idle-seconds`: junk a
    /// stolen service credential made to use up the store's consumer bound
    /// (docs/operations.md, "Limits"). A running service's consumers always
    /// pull; one down that long makes a new consumer when it starts. Needs
    /// the operator's credential.
    PruneConsumers {
        #[arg(long, default_value_t = 600)]
        idle_seconds: u64,
        #[arg(long, default_value = "REFER")]
        stream: String,
    },
    /// Make every stream and bucket Refer keeps on the bus (the domain
    /// stream, its read log, the sealed-key, idempotency, instance, lease
    /// and console-session buckets), or check those there. Needs the
    /// operator's credential: no service may make a stream, so run it
    /// before the first start of a deployment (compose does) and again
    /// after the whole cluster restarted (the idempotency bucket is kept
    /// in memory). Idempotent.
    Provision {
        /// The domain stream; its buckets are named after it.
        #[arg(long, default_value = "REFER")]
        stream: String,
        /// Copies of each stream and bucket (3 on the compose cluster).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=5))]
        replicas: u8,
        /// How long the console's session bucket keeps an unused session
        /// (minutes; each console ends sessions after its own idle_minutes).
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=720))]
        console_idle_minutes: u64,
    },
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
            let role_name = format!("{role:?}").to_lowercase();
            let served = match role {
                Role::Intake => refer_client::Role::Intake,
                Role::Provider => refer_client::Role::Provider,
                Role::Business => refer_client::Role::Business,
                Role::Admin => refer_client::Role::Admin,
            };
            let token = refer_client::tokens::add_partner(&tokens_file, &name, served, org)
                .map_err(|e| anyhow::anyhow!("{}", e.replace("name:", "--name:")))?;
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
        Command::Hsds(c) => crate::hsds::run(settings, c).await?,
        Command::Tokens { tokens_file } => {
            let partners = refer_client::tokens::partners(&tokens_file).map_err(|e| anyhow::anyhow!(e))?;
            table(
                settings.json,
                &["name", "role", "org"],
                partners
                    .into_iter()
                    .map(|p| vec![p.name, p.role.name().to_owned(), p.org])
                    .collect(),
            );
        }
        Command::RotateKek { kek, previous, stream } => {
            let current = refer_sealed::Kek::load(&kek)?;
            let previous = previous
                .iter()
                .map(|p| refer_sealed::Kek::load(p))
                .collect::<Result<Vec<_>, _>>()?;
            let client = settings.bus().await?;
            let js = async_nats::jetstream::new(client);
            // Every sealing service's bucket, each re-wrapped on its own.
            let (mut buckets, mut rewrapped) = (Vec::new(), 0);
            for (sealer, _) in refer_client::provision::SEALERS {
                let bucket = refer_sealed::bucket_for(&stream, sealer);
                if js.get_key_value(&bucket).await.is_err() {
                    anyhow::bail!("no sealed-key bucket {bucket} on {}", settings.nats);
                }
                let vault =
                    refer_sealed::Vault::open_for_stream(&js, &stream, sealer, &[], current.clone(), previous.clone())
                        .await?;
                rewrapped += vault.rotate().await?;
                buckets.push(bucket);
            }
            record(
                settings.json,
                vec![
                    ("bucket", buckets.join(",")),
                    ("rewrapped", rewrapped.to_string()),
                    ("kek", current.id().to_owned()),
                ],
            );
        }
        Command::NatsKey { out } => {
            let pair = nkeys::KeyPair::new_user();
            let seed = pair.seed().map_err(|e| anyhow::anyhow!("cannot make a key: {e}"))?;
            write_secret(&out, &seed)?;
            record(
                settings.json,
                vec![
                    ("seed_file", out.display().to_string()),
                    ("public_key", pair.public_key()),
                ],
            );
        }
        Command::DevCa {
            dir,
            names,
            service_names,
            services,
        } => {
            let nodes = refer_testkit::tls::DevCa::generate()?;
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            let (cert, key) = nodes.issue(&names)?;
            let ca = refer_testkit::tls::DevCa::generate()?;
            let service_names: Vec<&str> = service_names.iter().map(String::as_str).collect();
            let (service_cert, service_key) = ca.issue(&service_names)?;
            std::fs::create_dir_all(&dir).map_err(|e| anyhow::anyhow!("--dir {}: {e}", dir.display()))?;
            std::fs::write(dir.join("nats-ca.pem"), nodes.pem())?;
            std::fs::write(dir.join("ca.pem"), ca.pem())?;
            std::fs::write(dir.join("node.pem"), cert)?;
            write_secret(&dir.join("node.key"), &key)?;
            std::fs::write(dir.join("service.pem"), service_cert)?;
            write_secret(&dir.join("service.key"), &service_key)?;
            for (kind, names) in &services {
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                let (cert, key) = ca.issue(&names)?;
                std::fs::write(dir.join(format!("{kind}.pem")), cert)?;
                write_secret(&dir.join(format!("{kind}.key")), &key)?;
            }
            record(
                settings.json,
                vec![
                    ("nats_ca", dir.join("nats-ca.pem").display().to_string()),
                    ("certificate", dir.join("node.pem").display().to_string()),
                    ("key", dir.join("node.key").display().to_string()),
                    ("ca", dir.join("ca.pem").display().to_string()),
                    ("service_certificate", dir.join("service.pem").display().to_string()),
                    ("service_key", dir.join("service.key").display().to_string()),
                ],
            );
        }
        Command::HardenBuckets { stream } => {
            let client = settings.bus().await?;
            let js = async_nats::jetstream::new(client);
            let stream = refer_client::provision::StreamSettings {
                name: stream,
                ..Default::default()
            };
            let capped = [refer_client::provision::idempotency(&stream)];
            let hardened = refer_client::buckets::harden_all(&js, &capped).await?;
            record(settings.json, vec![("hardened", hardened.join(","))]);
        }
        Command::Provision {
            stream,
            replicas,
            console_idle_minutes,
        } => {
            let client = settings.bus().await?;
            let js = async_nats::jetstream::new(client);
            let settings_of_stream = refer_client::provision::StreamSettings {
                name: stream,
                replicas: replicas.into(),
                ..Default::default()
            };
            let idle = std::time::Duration::from_secs(console_idle_minutes * 60);
            let ready = refer_client::provision::provision(&js, &settings_of_stream, idle).await?;
            record(settings.json, vec![("ready", ready.join(","))]);
        }
        Command::Report {
            from,
            to,
            org,
            publish,
            csv,
            stream,
        } => crate::report::run(settings, from, to, org, publish, csv, &stream).await?,
        Command::PruneConsumers { idle_seconds, stream } => {
            let js = async_nats::jetstream::new(settings.bus().await?);
            let streams = [stream.clone(), format!("{stream}_READS")];
            let idle = std::time::Duration::from_secs(idle_seconds);
            let pruned = refer_client::provision::prune_idle_consumers(&js, &streams, idle).await?;
            record(
                settings.json,
                vec![("pruned", pruned.len().to_string()), ("consumers", pruned.join(","))],
            );
        }
        Command::MigrateSealed { stream } => {
            let client = settings.bus().await?;
            let js = async_nats::jetstream::new(client);
            let settings_of_stream = refer_client::provision::StreamSettings {
                name: stream.clone(),
                ..Default::default()
            };
            // Each key goes to the bucket of the service that sealed it: by
            // its kind, or for a standing hand-off by its owner on the
            // stream; a key of neither (an item whose commit never landed)
            // to intake's, which reads and erases every bucket.
            let standing = refer_client::provision::standing_sealers(&js, &settings_of_stream).await?;
            let sealer_of = |item: &str| {
                let kind = item.split('.').next().unwrap_or_default();
                refer_client::provision::sealer_of_kind(kind)
                    .or_else(|| standing.get(item).copied())
                    .unwrap_or("intake")
                    .to_owned()
            };
            let moved = refer_sealed::migrate(&js, &stream, sealer_of).await?;
            let to: Vec<String> = refer_client::provision::SEALERS
                .iter()
                .map(|(sealer, _)| refer_sealed::bucket_for(&stream, sealer))
                .collect();
            record(
                settings.json,
                vec![
                    ("from", refer_sealed::earlier_buckets_for(&stream).join(",")),
                    ("to", to.join(",")),
                    ("moved", moved.to_string()),
                ],
            );
        }
        Command::Reads => {
            let url = settings.capacity.clone();
            let mut client = refer_proto::capacity::v1::capacity_client::CapacityClient::new(
                channel(settings, "capacity", &url).await?,
            );
            let fail = |s: tonic::Status| anyhow::anyhow!(explain("capacity", &url, &s));
            let all = crate::reads::all_reads!(client, settings, fail);
            crate::reads::show(settings.json, &all);
        }
        Command::Stats => {
            let url = settings.matcher.clone();
            let mut client = MatcherClient::new(channel(settings, "matcher", &url).await?);
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

/// `<kind>=<name>,<name>...` of `--service`: a kind is a lowercase word
/// (it names the files), names are host names or addresses.
fn kind_and_names(text: &str) -> Result<(String, Vec<String>), String> {
    let (kind, names) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not <kind>=<name>,<name>..."))?;
    if kind.is_empty() || !kind.chars().all(|c| c.is_ascii_lowercase() || c == '-') {
        return Err(format!("{kind:?} is not a kind of process (lowercase letters and -)"));
    }
    let names: Vec<String> = names
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect();
    if names.is_empty() {
        return Err(format!("{kind}: no host name"));
    }
    Ok((kind.to_owned(), names))
}

/// Writes a secret to a new file readable by its owner only.
fn write_secret(path: &std::path::Path, secret: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| anyhow::anyhow!("--out {}: {e}", path.display()))?;
    file.write_all(secret.as_bytes())?;
    Ok(())
}
