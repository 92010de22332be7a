//! `refer intake ...`: placements for people recovered, and their status.

use crate::args::{self, Age, Cohesion, Gender, Need, Urgency};
use crate::client::{channel, key, request};
use crate::errors::explain;
use crate::output::table;
use crate::settings::Settings;
use clap::{Args, Subcommand, ValueEnum};
use refer_proto::common::v1 as common;
use refer_proto::intake::v1 as pb;
use refer_proto::intake::v1::intake_client::IntakeClient;
use serde::Deserialize;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum Command {
    /// Request a placement for one person (or party): a bundle of needs.
    Request(Person),
    /// Request placements for a group recovered together, from a JSON file.
    Group {
        /// `{"cohesion": "apart", "people": [{"case_reference": "...", "needs": ["shelter"], ...}]}`;
        /// each person takes the fields of `refer intake request` (see docs/cli.md).
        file: PathBuf,
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// Each need of a placement and where it stands.
    Status { placement: String },
    /// Follow a placement's needs as they change.
    Watch { placement: String },
    /// Your agency's placements, newest first.
    List,
    /// Cancel a need (a pending referral is withdrawn).
    Cancel { need: String },
    /// Mark an accepted need fulfilled.
    Fulfil { need: String },
    /// Show, or set, your agency's on-call hand-off contact (staff, never a victim);
    /// only a provider that accepted one of your referrals sees it.
    Handoff { contact: Option<String> },
    /// Share a note with the provider that accepts one need, under the person's consent.
    Note {
        placement: String,
        need: String,
        note: String,
        /// What the person agreed to share ("first name to ask for at the door").
        #[arg(long)]
        shares: String,
        /// How long the consent lasts (at most 72 hours unless configured otherwise).
        #[arg(long, default_value_t = 24)]
        hours: i64,
    },
    /// Revoke a note's consent: the note is erased for good.
    RevokeNote { placement: String, need: String },
    /// Erase a placement's case reference, notes and hand-offs for good.
    Forget { placement: String },
    /// Who read which sealed item of your agency's, or which your agency read, and when.
    Reads,
}

#[derive(Args, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Person {
    /// Your agency's case reference; it stays in the intake service.
    #[arg(long, default_value = "")]
    #[serde(default)]
    pub case_reference: String,
    #[arg(long, value_enum, value_delimiter = ',', required = true)]
    #[serde(deserialize_with = "enums")]
    pub needs: Vec<Need>,
    #[arg(long, value_enum, default_value = "adult")]
    #[serde(deserialize_with = "one", default = "adult")]
    pub age: Age,
    #[arg(long, value_enum, default_value = "female")]
    #[serde(deserialize_with = "one", default = "female")]
    pub gender: Gender,
    #[arg(long, value_delimiter = ',', default_value = "en")]
    pub languages: Vec<String>,
    #[arg(long, default_value_t = 1)]
    #[serde(default = "one_person")]
    pub party_size: u32,
    /// Where the person is now: LAT,LON.
    #[arg(long, value_parser = args::point, allow_hyphen_values = true)]
    #[serde(deserialize_with = "point")]
    pub at: common::GeoPoint,
    #[arg(long)]
    pub region: String,
    #[arg(long)]
    #[serde(default)]
    pub max_km: Option<u32>,
    /// Regions to keep the person out of.
    #[arg(long, value_delimiter = ',')]
    #[serde(default)]
    pub avoid: Vec<String>,
    #[arg(long, value_enum, default_value = "immediate")]
    #[serde(deserialize_with = "one", default = "immediate")]
    pub urgency: Urgency,
    #[arg(long)]
    #[serde(skip)]
    pub idempotency_key: Option<String>,
}

fn adult() -> Age {
    Age::Adult
}
fn female() -> Gender {
    Gender::Female
}
fn one_person() -> u32 {
    1
}
fn immediate() -> Urgency {
    Urgency::Immediate
}
fn one<'de, D: serde::Deserializer<'de>, T: ValueEnum>(d: D) -> Result<T, D::Error> {
    let text = String::deserialize(d)?;
    T::from_str(&text, true).map_err(serde::de::Error::custom)
}
fn enums<'de, D: serde::Deserializer<'de>, T: ValueEnum>(d: D) -> Result<Vec<T>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|t| T::from_str(t, true).map_err(serde::de::Error::custom))
        .collect()
}
fn point<'de, D: serde::Deserializer<'de>>(d: D) -> Result<common::GeoPoint, D::Error> {
    args::point(&String::deserialize(d)?).map_err(serde::de::Error::custom)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupFile {
    #[serde(default)]
    cohesion: Option<String>,
    people: Vec<Person>,
}

impl Person {
    fn pb(&self) -> pb::PersonRequest {
        pb::PersonRequest {
            case_reference: self.case_reference.clone(),
            profile: Some(common::Profile {
                age_band: self.age.pb(),
                gender: self.gender.pb(),
                languages: self.languages.clone(),
                accessibility: vec![],
                party_size: self.party_size,
            }),
            constraints: Some(common::Constraints {
                origin: Some(args::location(&self.at, &self.region)),
                max_distance_km: self.max_km,
                avoid_regions: self.avoid.clone(),
                needed_by_ms: None,
            }),
            urgency: self.urgency.pb(),
            needs: self.needs.iter().map(|n| n.pb()).collect(),
        }
    }
}

const HEADERS: [&str; 7] = ["case", "placement", "need", "kind", "status", "placed with", "detail"];
const UPDATE_HEADERS: [&str; 6] = ["placement", "need", "kind", "status", "placed with", "detail"];

fn status_name(v: i32) -> String {
    pb::NeedStatus::try_from(v)
        .map(|s| s.as_str_name().trim_start_matches("NEED_STATUS_").to_lowercase())
        .unwrap_or_else(|_| "?".into())
}

fn placed(target: &Option<common::Target>) -> String {
    match target.as_ref().and_then(|t| t.target.clone()) {
        Some(common::target::Target::ProviderId(id)) => format!("provider {id}"),
        Some(common::target::Target::DonationId(id)) => format!("donation {id}"),
        None => String::new(),
    }
}

/// Where to bring the person once accepted; when a proposed need's answer
/// is due; what a waitlisted one waits for; and the latest decline or
/// unanswered referral, if one led here.
fn detail(n: &pb::NeedUpdate) -> String {
    let now = now_detail(n);
    let trouble = n
        .timeline
        .iter()
        .rev()
        .take_while(|s| s.status != pb::NeedStatus::Accepted as i32)
        .find_map(|s| {
            let reason = common::DeclineReason::try_from(s.decline_reason)
                .ok()
                .filter(|r| *r != common::DeclineReason::Unspecified);
            match pb::NeedStatus::try_from(s.status) {
                Ok(pb::NeedStatus::Declined) => Some(format!(
                    "declined {} ({})",
                    crate::output::time(s.at_ms),
                    reason
                        .map_or("no reason", |r| r.as_str_name().trim_start_matches("DECLINE_REASON_"))
                        .to_lowercase()
                )),
                Ok(pb::NeedStatus::Expired) => Some(format!("unanswered {}", crate::output::time(s.at_ms))),
                _ => None,
            }
        });
    match (now.is_empty(), trouble) {
        (_, None) => now,
        (true, Some(t)) => t,
        (false, Some(t)) => format!("{now}; {t}"),
    }
}

fn now_detail(n: &pb::NeedUpdate) -> String {
    if let Some(h) = &n.handoff {
        return match (h.erased, h.site_name.is_empty(), h.instructions.is_empty()) {
            (true, ..) => "hand-off erased".into(),
            (false, false, true) if !h.given => format!("at {}: no hand-off given yet", h.site_name),
            (false, false, _) => format!("at {}: {}", h.site_name, h.instructions),
            (false, true, _) => "hand-off given (see intake status)".into(),
        };
    }
    if let Some(w) = &n.waiting_for {
        let mut kinds: Vec<&str> = Vec::new();
        if w.service != 0 {
            kinds.push(args::service_name(w.service));
        }
        kinds.extend(w.resources.iter().map(|r| args::resource_name(*r)));
        let waits = format!("waits for {} near {}", kinds.join(" or "), w.region);
        return match w.held_until_ms {
            0 => waits,
            until => format!(
                "{waits}, held for more urgent needs until {} at the latest",
                crate::output::time(until)
            ),
        };
    }
    if n.deadline_ms != 0 {
        return format!("answer due {}", crate::output::time(n.deadline_ms));
    }
    String::new()
}

fn rows(p: &pb::Placement) -> Vec<Vec<String>> {
    p.needs
        .iter()
        .map(|n| {
            vec![
                p.case_reference.clone(),
                p.placement_id.clone(),
                n.need_id.clone(),
                args::need_name(n.kind).into(),
                status_name(n.status),
                placed(&n.placed_with),
                detail(n),
            ]
        })
        .collect()
}

fn update_row(u: &pb::NeedUpdate) -> Vec<String> {
    vec![
        u.placement_id.clone(),
        u.need_id.clone(),
        args::need_name(u.kind).into(),
        status_name(u.status),
        placed(&u.placed_with),
        detail(u),
    ]
}

pub async fn run(settings: &Settings, command: Command) -> anyhow::Result<()> {
    let url = settings.intake.clone();
    let mut client = IntakeClient::new(channel(settings, "intake", &url).await?);
    let fail = |s: tonic::Status| anyhow::anyhow!(explain("intake", &url, &s));
    match command {
        Command::Request(person) => {
            let message = pb::RequestPlacementRequest {
                idempotency_key: key(&person.idempotency_key),
                person: Some(person.pb()),
            };
            let p = client
                .request_placement(request(settings, message)?)
                .await
                .map_err(fail)?
                .into_inner();
            table(settings.json, &HEADERS, rows(&p));
        }
        Command::Group { file, idempotency_key } => {
            let text =
                std::fs::read_to_string(&file).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
            let group: GroupFile = serde_json::from_str(&text)
                .map_err(|e| anyhow::anyhow!("{} is not a valid group file: {e}", file.display()))?;
            let cohesion = match group.cohesion.as_deref().map(|c| Cohesion::from_str(c, true)) {
                None | Some(Ok(Cohesion::Any)) => pb::Cohesion::Unspecified,
                Some(Ok(Cohesion::Together)) => pb::Cohesion::KeepTogether,
                Some(Ok(Cohesion::Apart)) => pb::Cohesion::KeepApart,
                Some(Err(e)) => anyhow::bail!("cohesion in {}: {e}", file.display()),
            };
            let message = pb::RequestGroupRequest {
                idempotency_key: key(&idempotency_key),
                cohesion: cohesion as i32,
                people: group.people.iter().map(Person::pb).collect(),
            };
            let g = client
                .request_group(request(settings, message)?)
                .await
                .map_err(fail)?
                .into_inner();
            if !settings.json {
                crate::output::out(&format!("group {} ({} people)", g.group_id, g.people.len()));
            }
            table(settings.json, &HEADERS, g.people.iter().flat_map(rows).collect());
        }
        Command::Status { placement } => {
            let p = client
                .get_placement(request(
                    settings,
                    pb::GetPlacementRequest {
                        placement_id: placement,
                    },
                )?)
                .await
                .map_err(fail)?;
            table(settings.json, &HEADERS, rows(&p.into_inner()));
        }
        Command::List => {
            let mut all = Vec::new();
            let mut token = String::new();
            loop {
                let page = client
                    .list_placements(request(
                        settings,
                        pb::ListPlacementsRequest {
                            page_size: 500,
                            page_token: token,
                        },
                    )?)
                    .await
                    .map_err(fail)?
                    .into_inner();
                all.extend(page.placements.iter().flat_map(rows));
                if page.next_page_token.is_empty() {
                    break;
                }
                token = page.next_page_token;
            }
            table(settings.json, &HEADERS, all);
        }
        Command::Watch { placement } => {
            let message = pb::WatchPlacementRequest {
                placement_id: placement,
                after_position: 0,
            };
            let stream = client
                .watch_placement(request(settings, message)?)
                .await
                .map_err(fail)?
                .into_inner();
            crate::output::follow(
                stream,
                settings.json,
                &UPDATE_HEADERS,
                update_row,
                fail,
                "the placement's needs",
            )
            .await?;
        }
        Command::Cancel { need } => {
            let u = client
                .cancel_need(request(
                    settings,
                    pb::CancelNeedRequest {
                        idempotency_key: key(&None),
                        need_id: need,
                    },
                )?)
                .await
                .map_err(fail)?;
            table(settings.json, &UPDATE_HEADERS, vec![update_row(&u.into_inner())]);
        }
        Command::Fulfil { need } => {
            let u = client
                .fulfil_need(request(
                    settings,
                    pb::FulfilNeedRequest {
                        idempotency_key: key(&None),
                        need_id: need,
                    },
                )?)
                .await
                .map_err(fail)?;
            table(settings.json, &UPDATE_HEADERS, vec![update_row(&u.into_inner())]);
        }
        Command::Handoff { contact } => {
            let shown = match contact {
                Some(contact) => client
                    .set_handoff_contact(request(
                        settings,
                        pb::SetHandoffContactRequest {
                            idempotency_key: key(&None),
                            contact,
                        },
                    )?)
                    .await
                    .map_err(fail)?,
                None => client
                    .get_handoff_contact(request(settings, pb::GetHandoffContactRequest {})?)
                    .await
                    .map_err(fail)?,
            };
            table(settings.json, &["contact"], vec![vec![shown.into_inner().contact]]);
        }
        Command::Note {
            placement,
            need,
            note,
            shares,
            hours,
        } => {
            let until_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_millis() as i64
                + hours * 3_600_000;
            let p = client
                .share_note(request(
                    settings,
                    pb::ShareNoteRequest {
                        idempotency_key: key(&None),
                        placement_id: placement,
                        need_id: need,
                        note,
                        consent: Some(pb::Consent {
                            shares,
                            until_ms,
                            given_at_ms: 0,
                        }),
                    },
                )?)
                .await
                .map_err(fail)?;
            notes(settings.json, &p.into_inner());
        }
        Command::RevokeNote { placement, need } => {
            let p = client
                .revoke_note(request(
                    settings,
                    pb::RevokeNoteRequest {
                        idempotency_key: key(&None),
                        placement_id: placement,
                        need_id: need,
                    },
                )?)
                .await
                .map_err(fail)?;
            notes(settings.json, &p.into_inner());
        }
        Command::Reads => {
            let all = crate::reads::all_reads!(client, settings, fail);
            crate::reads::show(settings.json, &all);
        }
        Command::Forget { placement } => {
            let p = client
                .forget_placement(request(
                    settings,
                    pb::ForgetPlacementRequest {
                        idempotency_key: key(&None),
                        placement_id: placement,
                    },
                )?)
                .await
                .map_err(fail)?
                .into_inner();
            let erased: Vec<Vec<String>> = p
                .erasures
                .iter()
                .map(|e| {
                    vec![
                        p.placement_id.clone(),
                        e.part.clone(),
                        e.need_id.clone(),
                        e.reason.clone(),
                    ]
                })
                .collect();
            table(settings.json, &["placement", "erased", "need", "why"], erased);
        }
    }
    Ok(())
}

/// A placement's notes and the consent each stands on.
fn notes(json: bool, p: &pb::Placement) {
    let rows = p
        .notes
        .iter()
        .map(|n| {
            let consent = n.consent.clone().unwrap_or_default();
            vec![
                n.need_id.clone(),
                n.text.clone(),
                consent.shares,
                crate::output::time(consent.until_ms),
            ]
        })
        .collect();
    table(json, &["need", "note", "consent shares", "until"], rows);
}
