//! `refer admin hsds export|import`: the coalition's directory as Open
//! Referral HSDS 3.1 (the mapping is `refer_hsds`'s; docs/hsds.md).

use crate::client::{channel, request};
use crate::errors::explain;
use crate::output::table;
use crate::settings::Settings;
use anyhow::{anyhow, bail};
use clap::Subcommand;
use refer_client::wire;
use refer_domain::geo::Location;
use refer_domain::ids::OrgId;
use refer_domain::provider::{ProviderProfile, MAX_UNITS};
use refer_domain::Timestamp;
use refer_hsds::{Available, Entry, Listing};
use refer_proto::capacity::v1 as pb;
use refer_proto::capacity::v1::capacity_client::CapacityClient;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use tonic::transport::Channel;
use uuid::Uuid;

#[derive(Subcommand)]
pub enum Command {
    /// The directory as an HSDS 3.1 page of services: organisations, services,
    /// service areas, schedules, languages and capacities with their "as of".
    /// Never a site's location. Needs an admin token.
    Export {
        /// Where to write it (standard output when absent).
        #[arg(long)]
        out: Option<PathBuf>,
        /// The partner registry, for the organisations' names.
        #[arg(long, env = "REFER_TOKENS_FILE")]
        tokens_file: Option<PathBuf>,
    },
    /// Onboards or updates sites from an HSDS 3.1 file (a page of services
    /// or an array of them), or a directory of its tabular form (a CSV file
    /// per table: services.csv, organizations.csv, ...). Checks every
    /// record first: if any is wrong, all problems are listed and nothing
    /// is written. A re-import updates, never duplicates. Needs an admin
    /// token.
    Import {
        /// The HSDS JSON file, or a directory of its CSV tables (at most
        /// 16 MiB in all).
        file: PathBuf,
        /// The partner registry: an organisation new to it gets a provider token.
        #[arg(long, env = "REFER_TOKENS_FILE")]
        tokens_file: Option<PathBuf>,
        /// Where the new organisations' tokens go (a new file, owner-only).
        /// Required when the file brings organisations the registry lacks.
        #[arg(long)]
        tokens_out: Option<PathBuf>,
        /// Check the file against the running system and say what would
        /// change; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// The directory is the coalition's: only an admin exports it whole or
/// imports it (a partner's token would register every site of the file as
/// its own organisation's). The matcher's status answers admins only.
async fn require_admin(settings: &Settings, doing: &str) -> anyhow::Result<()> {
    use refer_proto::matcher::v1 as m;
    let url = &settings.matcher;
    let mut matcher = m::matcher_client::MatcherClient::new(channel(settings, "matcher", url).await?);
    match matcher
        .get_status(crate::client::request(settings, m::GetStatusRequest {})?)
        .await
    {
        Ok(_) => Ok(()),
        Err(s) if s.code() == tonic::Code::PermissionDenied => {
            bail!("{doing} takes an admin token; REFER_TOKEN is a partner's (nothing was done)")
        }
        Err(s) => bail!(
            "{} (checking the token is an admin's; nothing was done)",
            crate::errors::explain("matcher", url, &s)
        ),
    }
}

pub async fn run(settings: &Settings, command: Command) -> anyhow::Result<()> {
    let mut client = CapacityClient::new(channel(settings, "capacity", &settings.capacity).await?);
    match command {
        Command::Export { out, tokens_file } => {
            require_admin(settings, "refer admin hsds export").await?;
            let names = org_names(tokens_file.as_deref())?;
            let mut listings = Vec::new();
            for site in all_sites(settings, &mut client).await? {
                listings.push(listing(&site, &names)?.0);
            }
            let text = serde_json::to_string_pretty(&refer_hsds::export(&listings))? + "\n";
            match out {
                Some(path) => {
                    std::fs::write(&path, text).map_err(|e| anyhow!("cannot write {}: {e}", path.display()))?
                }
                None => print!("{text}"),
            }
        }
        Command::Import {
            file,
            tokens_file,
            tokens_out,
            dry_run,
        } => {
            let refused = |e: &dyn std::fmt::Display| anyhow!("{}: {e}\nnothing was imported", file.display());
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(Timestamp::from_millis(0), |d| {
                    Timestamp::from_millis(d.as_millis() as i64)
                });
            let (entries, problems) = if file.is_dir() {
                let tables = read_tables(&file).map_err(|e| refused(&e))?;
                refer_hsds::read_tables(&tables, now)
            } else {
                let bytes = read_capped(&file).map_err(|e| refused(&e))?;
                refer_hsds::read_all(&bytes, now)
            }
            .map_err(|e| refused(&e))?;
            // The file is read (its faults said without a service); only
            // an admin goes on.
            require_admin(settings, "refer admin hsds import").await?;
            // One import at a time: two at once would each give a new
            // organisation its own token.
            let _registry = match tokens_file.as_deref().filter(|p| p.exists()) {
                Some(path) => Some(hold(path)?),
                None => None,
            };
            let plan = plan(
                settings,
                &mut client,
                entries,
                problems,
                tokens_file.as_deref(),
                // A dry run writes no token: it needs nowhere to put them.
                if dry_run { None } else { Some(tokens_out.as_deref()) },
            )
            .await
            .map_err(|e| refused(&e))?;
            let rows = plan.rows();
            if !dry_run {
                apply(
                    settings,
                    &mut client,
                    &plan,
                    tokens_file.as_deref(),
                    tokens_out.as_deref(),
                )
                .await?;
            }
            table(settings.json, &["site", "name", "change"], rows);
            let verb = if dry_run { "would be" } else { "were" };
            if !settings.json {
                eprintln!(
                    "{} site(s): {} {verb} registered, {} updated, {} unchanged; {} organisation(s) {verb} added",
                    plan.sites.len(),
                    plan.count(|s| s.current.is_none()),
                    plan.count(|s| s.current.is_some() && !s.changes.is_empty()),
                    plan.count(|s| s.changes.is_empty()),
                    plan.new_orgs.len(),
                );
            }
        }
    }
    Ok(())
}

/// The file's bytes, refused unread past what an import takes.
fn read_capped(path: &Path) -> anyhow::Result<Vec<u8>> {
    let file = std::fs::File::open(path).map_err(|e| anyhow!("cannot open it: {e}"))?;
    let mut bytes = Vec::new();
    file.take(refer_hsds::MAX_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| anyhow!("cannot read it: {e}"))?;
    if bytes.len() > refer_hsds::MAX_BYTES {
        bail!(refer_hsds::Refused::TooLarge);
    }
    Ok(bytes)
}

/// The CSV tables of a directory (the tabular form) by file name, refused
/// unread past what an import takes in all.
fn read_tables(dir: &Path) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
    let mut tables = BTreeMap::new();
    let mut total = 0u64;
    for entry in std::fs::read_dir(dir).map_err(|e| anyhow!("cannot list it: {e}"))? {
        let entry = entry.map_err(|e| anyhow!("cannot list it: {e}"))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".csv") || !entry.path().is_file() {
            continue;
        }
        let left = (refer_hsds::MAX_BYTES as u64 + 1).saturating_sub(total);
        let mut bytes = Vec::new();
        std::fs::File::open(entry.path())
            .and_then(|f| f.take(left).read_to_end(&mut bytes))
            .map_err(|e| anyhow!("cannot read {name}: {e}"))?;
        total += bytes.len() as u64;
        if total > refer_hsds::MAX_BYTES as u64 {
            bail!(refer_hsds::Refused::TooLarge);
        }
        tables.insert(name, bytes);
    }
    Ok(tables)
}

/// Holds the registry until dropped (`refer_client::tokens::lock`),
/// saying so when another import holds it.
fn hold(registry: &Path) -> anyhow::Result<std::fs::File> {
    if let Ok(probe) = std::fs::File::open(registry) {
        if probe.try_lock().is_err() {
            eprintln!("waiting for another import of this registry to finish...");
        }
    }
    refer_client::tokens::lock(registry).map_err(|e| anyhow!(e))
}

/// Each organisation's name in the registry (its first entry's).
fn org_names(tokens_file: Option<&Path>) -> anyhow::Result<BTreeMap<Uuid, String>> {
    let mut names = BTreeMap::new();
    if let Some(path) = tokens_file.filter(|p| p.exists()) {
        for p in refer_client::tokens::partners(path).map_err(|e| anyhow!(e))? {
            if let Ok(org) = Uuid::parse_str(&p.org) {
                names.entry(org).or_insert(p.name);
            }
        }
    }
    Ok(names)
}

async fn all_sites(settings: &Settings, client: &mut CapacityClient<Channel>) -> anyhow::Result<Vec<pb::Provider>> {
    let mut sites = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_providers(request(
                settings,
                pb::ListProvidersRequest {
                    page_size: 500,
                    page_token,
                },
            )?)
            .await
            .map_err(|s| anyhow!(explain("capacity", &settings.capacity, &s)))?
            .into_inner();
        sites.extend(page.providers);
        if page.next_page_token.is_empty() {
            return Ok(sites);
        }
        page_token = page.next_page_token;
    }
}

/// A site from the wire as the directory lists it, with its whole profile.
fn listing(site: &pb::Provider, names: &BTreeMap<Uuid, String>) -> anyhow::Result<(Listing, ProviderProfile)> {
    let id = Uuid::parse_str(&site.provider_id)?;
    let spec = site
        .spec
        .as_ref()
        .ok_or_else(|| anyhow!("site {id} came without its profile"))?;
    let org = Uuid::parse_str(&spec.org_id)?;
    let profile =
        wire::provider_profile(spec, OrgId::from_uuid(org)).map_err(|s| anyhow!("site {id}: {}", s.message()))?;
    let mut capacity = Vec::new();
    for c in site.capacity.iter().filter(|c| c.as_of_ms > 0) {
        capacity.push(Available {
            service: wire::service_kind(c.service, "capacity.service").map_err(|s| anyhow!("{}", s.message()))?,
            free: c.free,
            as_of: Timestamp::from_millis(c.as_of_ms),
        });
    }
    let listing = Listing {
        site: id,
        org,
        org_name: names
            .get(&org)
            .cloned()
            .unwrap_or_else(|| format!("Organisation {org}")),
        name: profile.name.clone(),
        services: profile.services.clone(),
        eligibility: profile.eligibility.clone(),
        hours: profile.hours.clone(),
        region: profile.location.region.clone(),
        suspended: site.suspended,
        capacity,
    };
    Ok((listing, profile))
}

/// What an import does to one site.
struct Site {
    entry: Entry,
    profile: ProviderProfile,
    /// The site as it is now; `None` for a new one.
    current: Option<pb::Provider>,
    changes: Vec<Change>,
}

enum Change {
    Register,
    Profile,
    Suspend,
    Resume,
    /// A service's free units, and what is held of it now.
    Capacity {
        available: Available,
        held: u32,
    },
}

impl Change {
    fn describe(&self) -> String {
        match self {
            Self::Register => "registered".into(),
            Self::Profile => "profile".into(),
            Self::Suspend => "suspended".into(),
            Self::Resume => "resumed".into(),
            Self::Capacity { available, .. } => {
                format!(
                    "{} free: {}",
                    refer_hsds::terms::unit(available.service),
                    available.free
                )
            }
        }
    }
}

struct Plan {
    sites: Vec<Site>,
    /// Organisations the registry lacks: id and name.
    new_orgs: BTreeMap<Uuid, String>,
}

impl Plan {
    fn count(&self, f: impl Fn(&Site) -> bool) -> usize {
        self.sites.iter().filter(|s| f(s)).count()
    }

    fn rows(&self) -> Vec<Vec<String>> {
        self.sites
            .iter()
            .map(|s| {
                let change = if s.changes.is_empty() {
                    "unchanged".to_owned()
                } else {
                    s.changes.iter().map(Change::describe).collect::<Vec<_>>().join(", ")
                };
                vec![s.entry.listing.site.to_string(), s.profile.name.clone(), change]
            })
            .collect()
    }
}

/// Checks every entry against the running system; any problem refuses
/// the whole file, listed, before anything is written.
async fn plan(
    settings: &Settings,
    client: &mut CapacityClient<Channel>,
    entries: Vec<Entry>,
    mut problems: Vec<refer_hsds::Problem>,
    tokens_file: Option<&Path>,
    // `None`: a dry run, which writes no token anywhere.
    tokens_out: Option<Option<&Path>>,
) -> anyhow::Result<Plan> {
    let known = org_names(tokens_file)?;
    let mut sites = Vec::new();
    let mut new_orgs = BTreeMap::new();
    for entry in entries {
        let l = &entry.listing;
        let mut problem = |field: &str, reason: String| {
            problems.push(refer_hsds::Problem {
                record: entry.index,
                place: entry.place.clone(),
                id: Some(l.site),
                field: field.to_owned(),
                reason,
            })
        };
        let current = match client
            .get_provider(request(
                settings,
                pb::GetProviderRequest {
                    provider_id: wire::id_pb(l.site),
                },
            )?)
            .await
        {
            Ok(site) => Some(site.into_inner()),
            Err(s) if s.code() == tonic::Code::NotFound => None,
            Err(s) => bail!(explain("capacity", &settings.capacity, &s)),
        };
        let existing = match &current {
            Some(site) => Some(listing(site, &known)?),
            None => None,
        };
        let point = match (entry.point, &existing) {
            (Some(p), _) => p,
            (None, Some((_, profile))) => profile.location.point,
            (None, None) => {
                problem(
                    "service_at_locations",
                    "a site new to Refer needs its location (service_at_locations[].location with latitude and longitude); matching measures distance from it".into(),
                );
                continue;
            }
        };
        let profile = ProviderProfile {
            org: OrgId::from_uuid(l.org),
            name: l.name.clone(),
            services: l.services.clone(),
            eligibility: l.eligibility.clone(),
            location: Location {
                point,
                region: l.region.clone(),
            },
            hours: l.hours.clone(),
        };
        // What the file could not say alone: the site's location with the rest.
        if let Err(e) = profile.validate() {
            problem("service_at_locations", e.to_string());
            continue;
        }
        let mut changes = Vec::new();
        match (&current, &existing) {
            (Some(site), Some((_, before))) => {
                // Both said at once, then the site is passed over.
                let other_org = before.org != profile.org;
                if other_org {
                    problem(
                        "organization.id",
                        "the site belongs to another organisation in Refer".into(),
                    );
                }
                let moved = before.location.region != profile.location.region;
                if moved {
                    problem(
                        "attributes (refer_region)",
                        format!(
                            "the site is in region {} in Refer; a site keeps its region (register a new one)",
                            before.location.region.as_str()
                        ),
                    );
                }
                if other_org || moved {
                    continue;
                }
                for dropped in before.services.difference(&profile.services) {
                    let held = site
                        .capacity
                        .iter()
                        .find(|c| wire::service_kind(c.service, "service").ok() == Some(*dropped))
                        .map_or(0, |c| c.held);
                    if held > 0 {
                        problem(
                            "attributes (refer_service_kind)",
                            format!(
                                "drops {}, which has {held} unit(s) held for pending referrals: answer those first",
                                refer_hsds::terms::Term::code(*dropped)
                            ),
                        );
                    }
                }
                if *before != profile {
                    changes.push(Change::Profile);
                }
                if site.suspended != l.suspended {
                    changes.push(if l.suspended { Change::Suspend } else { Change::Resume });
                }
                for available in &l.capacity {
                    let now = site
                        .capacity
                        .iter()
                        .find(|c| wire::service_kind(c.service, "service").ok() == Some(available.service));
                    let held = now.map_or(0, |c| c.held);
                    // Refer never goes back to an older count.
                    if now.is_none_or(|c| c.free != available.free && c.as_of_ms < available.as_of.millis()) {
                        if u64::from(available.free) + u64::from(held) > u64::from(MAX_UNITS) {
                            problem(
                                "capacities",
                                format!("{} free beside {held} held exceeds {MAX_UNITS} units", available.free),
                            );
                            continue;
                        }
                        changes.push(Change::Capacity {
                            available: *available,
                            held,
                        });
                    }
                }
            }
            _ => {
                changes.push(Change::Register);
                if l.suspended {
                    changes.push(Change::Suspend);
                }
                changes.extend(l.capacity.iter().map(|a| Change::Capacity { available: *a, held: 0 }));
            }
        }
        if !known.contains_key(&l.org) {
            if let Err(e) = refer_client::tokens::check_name(&l.org_name) {
                problem("organization.name", format!("cannot name a partner: {e}"));
            }
            new_orgs.insert(l.org, l.org_name.clone());
        }
        sites.push(Site {
            entry,
            profile,
            current,
            changes,
        });
    }
    if !problems.is_empty() {
        problems.sort_by_key(|p| p.record);
        bail!(refer_hsds::Refused::Records(problems));
    }
    if let (false, Some(tokens_out)) = (new_orgs.is_empty(), tokens_out) {
        let (Some(_), Some(out)) = (tokens_file, tokens_out) else {
            bail!(
                "{} organisation(s) are not partners yet ({}): give the registry (--tokens-file or REFER_TOKENS_FILE) and --tokens-out for their new tokens",
                new_orgs.len(),
                new_orgs.values().cloned().collect::<Vec<_>>().join(", ")
            );
        };
        if out.symlink_metadata().is_ok() {
            bail!("--tokens-out {} exists: it names a new file", out.display());
        }
        let folder = out
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !folder.is_dir() {
            bail!(
                "--tokens-out {}: the folder {} does not exist",
                out.display(),
                folder.display()
            );
        }
    }
    Ok(Plan { sites, new_orgs })
}

async fn apply(
    settings: &Settings,
    client: &mut CapacityClient<Channel>,
    plan: &Plan,
    tokens_file: Option<&Path>,
    tokens_out: Option<&Path>,
) -> anyhow::Result<()> {
    if let (false, Some(registry), Some(out)) = (plan.new_orgs.is_empty(), tokens_file, tokens_out) {
        // Each token reaches the disk before its hash reaches the registry:
        // a run stopped at any point has shown every token that works.
        let mut file = owner_only(out)?;
        let folder = out
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::File::open(folder)?.sync_all()?;
        let write_error = |e: std::io::Error| anyhow!("cannot write {}: {e}", out.display());
        for (org, name) in &plan.new_orgs {
            let token = refer_client::tokens::new_token();
            let line = serde_json::json!({ "org": org, "name": name, "role": "provider", "token": token });
            // One write a line: a stop halfway leaves whole lines only.
            file.write_all(format!("{line}\n").as_bytes()).map_err(write_error)?;
            file.sync_data().map_err(write_error)?;
            refer_client::tokens::add_partner_with(registry, name, refer_client::Role::Provider, *org, &token)
                .map_err(|e| anyhow!("{e}"))?;
        }
    }
    // A fresh run's keys: a retried run is safe because each change is
    // made only where the system still differs from the file.
    let run = Uuid::new_v4();
    for site in &plan.sites {
        let id = site.entry.listing.site;
        let key = |what: &str| {
            Uuid::new_v5(&run, format!("{id}/{what}").as_bytes())
                .simple()
                .to_string()
        };
        let provider_id = wire::id_pb(id);
        for change in &site.changes {
            let done = match change {
                Change::Register => client
                    .register_provider(request(
                        settings,
                        pb::RegisterProviderRequest {
                            idempotency_key: key("register"),
                            provider_id: provider_id.clone(),
                            spec: Some(wire::provider_spec_pb(&site.profile)),
                        },
                    )?)
                    .await
                    .map(drop),
                Change::Profile => client
                    .update_provider(request(
                        settings,
                        pb::UpdateProviderRequest {
                            idempotency_key: key("profile"),
                            provider_id: provider_id.clone(),
                            spec: Some(wire::provider_spec_pb(&site.profile)),
                            expected_version: site.current.as_ref().map(|c| c.version),
                        },
                    )?)
                    .await
                    .map(drop),
                Change::Suspend => client
                    .suspend_provider(request(
                        settings,
                        pb::SuspendProviderRequest {
                            idempotency_key: key("suspend"),
                            provider_id: provider_id.clone(),
                        },
                    )?)
                    .await
                    .map(drop),
                Change::Resume => client
                    .resume_provider(request(
                        settings,
                        pb::ResumeProviderRequest {
                            idempotency_key: key("resume"),
                            provider_id: provider_id.clone(),
                        },
                    )?)
                    .await
                    .map(drop),
                Change::Capacity { available, held } => client
                    .set_capacity(request(
                        settings,
                        pb::SetCapacityRequest {
                            idempotency_key: key(&format!("capacity/{:?}", available.service)),
                            provider_id: provider_id.clone(),
                            service: wire::service_kind_pb(available.service),
                            declared: available.free + held,
                            expected_version: None,
                        },
                    )?)
                    .await
                    .map(drop),
            };
            done.map_err(|s| {
                anyhow!(
                    "{} (service {id}): {}: {}\nthe sites before it were imported; run the import again once this is mended (it changes only what still differs)",
                    site.entry.place,
                    change.describe(),
                    explain("capacity", &settings.capacity, &s)
                )
            })?;
        }
    }
    Ok(())
}

/// A new file only its owner may read (it holds tokens).
fn owner_only(path: &Path) -> anyhow::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map_err(|e| {
        anyhow!(
            "cannot create {} for the new tokens: {e} (it must not exist yet)",
            path.display()
        )
    })
}
