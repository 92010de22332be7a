//! `refer provider ...`: a provider partner's site, capacity and referrals.

use crate::args::{self, Age, Gender, Reason, Service};
use crate::client::{channel, key, request};
use crate::errors::explain;
use crate::output::{record, table, time};
use crate::settings::Settings;
use clap::{Args, Subcommand};
use refer_proto::capacity::v1 as pb;
use refer_proto::capacity::v1::capacity_client::CapacityClient;
use refer_proto::common::v1 as common;

#[derive(Subcommand)]
pub enum Command {
    /// Register a site with 24/7 intake: services, who it serves, where it is (kept
    /// confidential). Weekly opening hours are registered through the API.
    Register(Register),
    /// Set or adjust what is free now.
    #[command(subcommand)]
    Capacity(Capacity),
    /// Show a site and its capacity.
    Show {
        provider: String,
    },
    /// Your organisation's sites (an admin sees all).
    List,
    /// List the referrals sent to a site (`--watch` to follow them live).
    Referrals {
        provider: String,
        #[arg(long)]
        pending: bool,
        #[arg(long)]
        watch: bool,
    },
    /// Accept a pending referral: the held units are taken, and the agency gets
    /// the hand-off (sealed for it only); the answer shows the agency's contact.
    Accept {
        provider: String,
        referral: String,
        /// Where to bring the person, who meets them, a phone (default: the site's).
        #[arg(long, default_value = "")]
        handoff: String,
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// One referral; once accepted, with the agency's contact and a consented note.
    Referral {
        provider: String,
        referral: String,
    },
    /// Register the site's default hand-off instructions (used when an acceptance brings none).
    Handoff {
        provider: String,
        instructions: String,
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// Decline a pending referral with a coded reason; it goes to the next candidate.
    Decline {
        provider: String,
        referral: String,
        #[arg(long, value_enum)]
        reason: Reason,
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// Stop (or resume) new referrals to a site.
    Suspend {
        provider: String,
    },
    Resume {
        provider: String,
    },
    /// Who read which sealed item of your organisation's, or which your organisation read, and when.
    Reads,
}

#[derive(Args)]
pub struct Register {
    #[arg(long)]
    pub name: String,
    /// Services offered, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', required = true)]
    pub services: Vec<Service>,
    #[arg(long, value_enum, value_delimiter = ',', default_value = "adult")]
    pub ages: Vec<Age>,
    #[arg(long, value_enum, value_delimiter = ',', default_value = "female")]
    pub genders: Vec<Gender>,
    /// ISO 639 codes of languages spoken on site.
    #[arg(long, value_delimiter = ',', default_value = "en")]
    pub languages: Vec<String>,
    /// LAT,LON (rounded to about 1 km before it is stored).
    #[arg(long, value_parser = args::point, allow_hyphen_values = true)]
    pub at: common::GeoPoint,
    /// Region (county) code, for example US-06-037.
    #[arg(long)]
    pub region: String,
    /// The partner organisation (admins only; providers register for their own).
    #[arg(long)]
    pub org: Option<String>,
    /// The site's id (random when absent; give one to retry safely).
    #[arg(long)]
    pub id: Option<String>,
    #[arg(long)]
    pub idempotency_key: Option<String>,
}

#[derive(Subcommand)]
pub enum Capacity {
    /// Set what is free now for one service.
    Set {
        provider: String,
        #[arg(value_enum)]
        service: Service,
        units: u32,
        /// Only if the site is still at this version.
        #[arg(long)]
        expected_version: Option<u64>,
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// Add to (or, negative, take from) what is free.
    Adjust {
        provider: String,
        #[arg(value_enum)]
        service: Service,
        #[arg(allow_hyphen_values = true)]
        delta: i32,
        #[arg(long)]
        idempotency_key: Option<String>,
    },
}

fn show(settings: &Settings, p: &pb::Provider) {
    if settings.json {
        let capacity: Vec<serde_json::Value> = p
            .capacity
            .iter()
            .map(|c| {
                serde_json::json!({"service": args::service_name(c.service), "declared": c.declared,
                    "held": c.held, "free": c.free, "placed": c.placed,
                    "as_of_ms": (c.as_of_ms != 0).then_some(c.as_of_ms), "stale": c.stale})
            })
            .collect();
        let spec = p.spec.clone().unwrap_or_default();
        crate::output::out(
            &serde_json::to_string_pretty(&serde_json::json!({
                "provider_id": p.provider_id, "version": p.version, "name": spec.name, "org_id": spec.org_id,
                "suspended": p.suspended, "capacity": capacity,
            }))
            .expect("json"),
        );
        return;
    }
    let spec = p.spec.clone().unwrap_or_default();
    record(
        false,
        vec![
            ("provider", p.provider_id.clone()),
            ("name", spec.name),
            ("version", p.version.to_string()),
            ("suspended", p.suspended.to_string()),
        ],
    );
    table(
        false,
        &["service", "declared", "held", "free", "placed", "as of"],
        p.capacity
            .iter()
            .map(|c| {
                vec![
                    args::service_name(c.service).into(),
                    c.declared.to_string(),
                    c.held.to_string(),
                    c.free.to_string(),
                    c.placed.to_string(),
                    crate::output::as_of(c.as_of_ms, c.stale),
                ]
            })
            .collect(),
    );
}

fn referral_row(r: &pb::Referral) -> Vec<String> {
    let status = pb::ReferralStatus::try_from(r.status)
        .map(|s| s.as_str_name().trim_start_matches("REFERRAL_STATUS_").to_lowercase());
    vec![
        r.referral_id.clone(),
        args::service_name(r.service).into(),
        r.units.to_string(),
        r.party_size.to_string(),
        args::age_name(r.age_band).into(),
        r.languages.join(","),
        time(r.deadline_ms),
        status.unwrap_or_else(|_| "?".into()),
        agency_handoff(r),
    ]
}

/// What the agency shared once this provider accepted: its contact and a
/// consented note (until when).
fn agency_handoff(r: &pb::Referral) -> String {
    let Some(h) = &r.handoff else { return String::new() };
    let mut parts = Vec::new();
    if !h.agency_contact.is_empty() {
        parts.push(format!("call {}", h.agency_contact));
    }
    if !h.note.is_empty() {
        parts.push(format!("note (until {}): {}", time(h.note_until_ms), h.note));
    }
    parts.join("; ")
}

const REFERRAL_HEADERS: [&str; 9] = [
    "referral",
    "service",
    "units",
    "party",
    "age",
    "languages",
    "deadline",
    "status",
    "agency handoff",
];

pub async fn run(settings: &Settings, command: Command) -> anyhow::Result<()> {
    let url = settings.capacity.clone();
    let mut client = CapacityClient::new(channel(settings, "capacity", &url).await?);
    let fail = |s: tonic::Status| anyhow::anyhow!(explain("capacity", &url, &s));
    match command {
        Command::Register(r) => {
            let spec = pb::ProviderSpec {
                org_id: r.org.unwrap_or_default(),
                name: r.name,
                services: r.services.iter().map(|s| s.pb()).collect(),
                eligibility: Some(common::Eligibility {
                    age_bands: r.ages.iter().map(|a| a.pb()).collect(),
                    genders: r.genders.iter().map(|g| g.pb()).collect(),
                    languages: r.languages,
                    accessibility: vec![],
                    service_area: None,
                }),
                location: Some(args::location(&r.at, &r.region)),
                hours: Some(common::Hours {
                    always: true,
                    ..Default::default()
                }),
            };
            let id = r.id.unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
            let message = pb::RegisterProviderRequest {
                idempotency_key: key(&r.idempotency_key),
                provider_id: id,
                spec: Some(spec),
            };
            let p = client
                .register_provider(request(settings, message)?)
                .await
                .map_err(fail)?
                .into_inner();
            show(settings, &p);
        }
        Command::Capacity(Capacity::Set {
            provider,
            service,
            units,
            expected_version,
            idempotency_key,
        }) => {
            let message = pb::SetCapacityRequest {
                idempotency_key: key(&idempotency_key),
                provider_id: provider,
                service: service.pb(),
                declared: units,
                expected_version,
            };
            let p = client
                .set_capacity(request(settings, message)?)
                .await
                .map_err(fail)?
                .into_inner();
            show(settings, &p);
        }
        Command::Capacity(Capacity::Adjust {
            provider,
            service,
            delta,
            idempotency_key,
        }) => {
            let message = pb::AdjustCapacityRequest {
                idempotency_key: key(&idempotency_key),
                provider_id: provider,
                service: service.pb(),
                delta,
            };
            let p = client
                .adjust_capacity(request(settings, message)?)
                .await
                .map_err(fail)?
                .into_inner();
            show(settings, &p);
        }
        Command::Show { provider } => {
            let p = client
                .get_provider(request(settings, pb::GetProviderRequest { provider_id: provider })?)
                .await
                .map_err(fail)?;
            show(settings, &p.into_inner());
        }
        Command::List => {
            let mut sites = Vec::new();
            let mut token = String::new();
            loop {
                let message = pb::ListProvidersRequest {
                    page_size: 500,
                    page_token: token,
                };
                let page = client
                    .list_providers(request(settings, message)?)
                    .await
                    .map_err(fail)?
                    .into_inner();
                sites.extend(page.providers);
                if page.next_page_token.is_empty() {
                    break;
                }
                token = page.next_page_token;
            }
            if settings.json {
                let all: Vec<serde_json::Value> = sites
                    .iter()
                    .map(|p| {
                        let capacity: Vec<serde_json::Value> = p
                            .capacity
                            .iter()
                            .map(|c| {
                                serde_json::json!({
                                "service": args::service_name(c.service), "free": c.free,
                                "as_of_ms": (c.as_of_ms != 0).then_some(c.as_of_ms), "stale": c.stale})
                            })
                            .collect();
                        let name = p.spec.as_ref().map_or("", |s| s.name.as_str());
                        serde_json::json!({"provider": p.provider_id, "name": name,
                            "suspended": p.suspended, "capacity": capacity})
                    })
                    .collect();
                crate::output::out(&serde_json::to_string_pretty(&all)?);
            } else {
                // Each count with when it was declared (local time), marked
                // when older than the coalition's freshness limit.
                let rows = sites
                    .iter()
                    .map(|p| {
                        let free: Vec<String> = p
                            .capacity
                            .iter()
                            .map(|c| {
                                let when = crate::output::as_of(c.as_of_ms, c.stale);
                                format!("{} {} (as of {when})", args::service_name(c.service), c.free)
                            })
                            .collect();
                        let name = p.spec.as_ref().map_or(String::new(), |s| s.name.clone());
                        vec![p.provider_id.clone(), name, free.join(", "), p.suspended.to_string()]
                    })
                    .collect();
                table(false, &["provider", "name", "free", "suspended"], rows);
            }
        }
        Command::Reads => {
            let all = crate::reads::all_reads!(client, settings, fail);
            crate::reads::show(settings.json, &all);
        }
        Command::Suspend { provider } => {
            let message = pb::SuspendProviderRequest {
                idempotency_key: key(&None),
                provider_id: provider,
            };
            show(
                settings,
                &client
                    .suspend_provider(request(settings, message)?)
                    .await
                    .map_err(fail)?
                    .into_inner(),
            );
        }
        Command::Resume { provider } => {
            let message = pb::ResumeProviderRequest {
                idempotency_key: key(&None),
                provider_id: provider,
            };
            show(
                settings,
                &client
                    .resume_provider(request(settings, message)?)
                    .await
                    .map_err(fail)?
                    .into_inner(),
            );
        }
        Command::Referrals {
            provider,
            pending,
            watch: false,
        } => {
            let mut rows = Vec::new();
            let mut token = String::new();
            loop {
                let message = pb::ListReferralsRequest {
                    provider_id: provider.clone(),
                    pending_only: pending,
                    page_size: 500,
                    page_token: token,
                };
                let page = client
                    .list_referrals(request(settings, message)?)
                    .await
                    .map_err(fail)?
                    .into_inner();
                rows.extend(page.referrals.iter().map(referral_row));
                if page.next_page_token.is_empty() {
                    break;
                }
                token = page.next_page_token;
            }
            table(settings.json, &REFERRAL_HEADERS, rows);
        }
        Command::Referrals {
            provider, watch: true, ..
        } => {
            let message = pb::WatchReferralsRequest {
                provider_id: provider,
                after_position: 0,
            };
            let stream = client
                .watch_referrals(request(settings, message)?)
                .await
                .map_err(fail)?
                .into_inner();
            crate::output::follow(
                stream,
                settings.json,
                &REFERRAL_HEADERS,
                referral_row,
                fail,
                "referrals",
            )
            .await?;
        }
        Command::Accept {
            provider,
            referral,
            handoff,
            idempotency_key,
        } => {
            let message = pb::AcceptReferralRequest {
                idempotency_key: key(&idempotency_key),
                provider_id: provider,
                referral_id: referral,
                handoff,
            };
            let r = client
                .accept_referral(request(settings, message)?)
                .await
                .map_err(fail)?
                .into_inner();
            table(settings.json, &REFERRAL_HEADERS, vec![referral_row(&r)]);
        }
        Command::Referral { provider, referral } => {
            let message = pb::GetReferralRequest {
                provider_id: provider,
                referral_id: referral,
            };
            let r = client
                .get_referral(request(settings, message)?)
                .await
                .map_err(fail)?
                .into_inner();
            table(settings.json, &REFERRAL_HEADERS, vec![referral_row(&r)]);
        }
        Command::Handoff {
            provider,
            instructions,
            idempotency_key,
        } => {
            let message = pb::SetSiteHandoffRequest {
                idempotency_key: key(&idempotency_key),
                provider_id: provider,
                instructions,
            };
            let r = client
                .set_site_handoff(request(settings, message)?)
                .await
                .map_err(fail)?
                .into_inner();
            table(
                settings.json,
                &["provider", "default handoff"],
                vec![vec![r.provider_id, r.instructions]],
            );
        }
        Command::Decline {
            provider,
            referral,
            reason,
            idempotency_key,
        } => {
            let message = pb::DeclineReferralRequest {
                idempotency_key: key(&idempotency_key),
                provider_id: provider,
                referral_id: referral,
                reason: reason.pb(),
            };
            let r = client
                .decline_referral(request(settings, message)?)
                .await
                .map_err(fail)?
                .into_inner();
            table(settings.json, &REFERRAL_HEADERS, vec![referral_row(&r)]);
        }
    }
    Ok(())
}
