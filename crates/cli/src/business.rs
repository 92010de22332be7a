//! `refer business ...`: donated resources.

use crate::args::{self, Age, Resource};
use crate::client::{channel, key, request};
use crate::errors::explain;
use crate::output::{table, time};
use crate::settings::Settings;
use clap::{Args, Subcommand};
use refer_proto::common::v1 as common;
use refer_proto::donations::v1 as pb;
use refer_proto::donations::v1::donations_client::DonationsClient;

#[derive(Subcommand)]
pub enum Command {
    /// Donate a resource for a time window.
    Donate(Donate),
    /// Take a donation off the table.
    Withdraw { donation: String },
    /// Your donations and how much of each was used.
    List,
    /// One donation, with when its units were used (never by whom).
    Show { donation: String },
    /// Follow your donations as units are held and used.
    Watch,
    /// Register a donation's hand-off (front desk, keys, a phone): shown only to an
    /// agency whose need it serves.
    Handoff { donation: String, instructions: String },
    /// Who read which sealed item of your organisation's, or which your organisation read, and when.
    Reads,
}

#[derive(Args)]
pub struct Donate {
    #[arg(long, value_enum)]
    pub kind: Resource,
    #[arg(long)]
    pub quantity: u32,
    /// Start: YYYY-MM-DDTHH:MMZ or +HOURS from now.
    #[arg(long, value_parser = args::instant, default_value = "+0")]
    pub from: i64,
    /// End: YYYY-MM-DDTHH:MMZ or +HOURS from now.
    #[arg(long, value_parser = args::instant)]
    pub until: i64,
    #[arg(long, value_parser = args::point, allow_hyphen_values = true)]
    pub at: common::GeoPoint,
    #[arg(long)]
    pub region: String,
    /// At most this many units for one person (for example 3 nights).
    #[arg(long)]
    pub max_per_need: Option<u32>,
    #[arg(long, value_enum, value_delimiter = ',', default_value = "adult")]
    pub ages: Vec<Age>,
    #[arg(long, value_delimiter = ',', default_value = "en")]
    pub languages: Vec<String>,
    /// The donating business (admins only).
    #[arg(long)]
    pub org: Option<String>,
    #[arg(long)]
    pub idempotency_key: Option<String>,
}

const HEADERS: [&str; 8] = [
    "donation", "kind", "quantity", "held", "used", "free", "until", "offered",
];

fn row(d: &pb::Donation) -> Vec<String> {
    let spec = d.spec.clone().unwrap_or_default();
    vec![
        d.donation_id.clone(),
        args::resource_name(spec.kind).into(),
        spec.quantity.to_string(),
        d.held.to_string(),
        d.used.to_string(),
        if d.withdrawn {
            "withdrawn".into()
        } else {
            d.free.to_string()
        },
        spec.window.map(|w| time(w.end_ms)).unwrap_or_default(),
        match d.as_of_ms {
            0 => "unknown".into(),
            ms => crate::output::local_time(ms),
        },
    ]
}

pub async fn run(settings: &Settings, command: Command) -> anyhow::Result<()> {
    let url = settings.donations.clone();
    let mut client = DonationsClient::new(channel(settings, "donations", &url).await?);
    let fail = |s: tonic::Status| anyhow::anyhow!(explain("donations", &url, &s));
    match command {
        Command::Donate(d) => {
            let genders = [common::Gender::Female, common::Gender::Male, common::Gender::NonBinary];
            let spec = pb::DonationSpec {
                org_id: d.org.unwrap_or_default(),
                kind: d.kind.pb(),
                quantity: d.quantity,
                window: Some(common::TimeWindow {
                    start_ms: d.from,
                    end_ms: d.until,
                }),
                location: Some(args::location(&d.at, &d.region)),
                max_units_per_need: d.max_per_need.unwrap_or(0),
                eligibility: Some(common::Eligibility {
                    age_bands: d.ages.iter().map(|a| a.pb()).collect(),
                    genders: genders.iter().map(|g| *g as i32).collect(),
                    languages: d.languages,
                    accessibility: vec![],
                    service_area: None,
                }),
            };
            let message = pb::RegisterDonationRequest {
                idempotency_key: key(&d.idempotency_key),
                donation_id: uuid::Uuid::new_v4().simple().to_string(),
                spec: Some(spec),
            };
            let donation = client
                .register_donation(request(settings, message)?)
                .await
                .map_err(fail)?
                .into_inner();
            table(settings.json, &HEADERS, vec![row(&donation)]);
        }
        Command::Handoff { donation, instructions } => {
            let message = pb::SetDonationHandoffRequest {
                idempotency_key: key(&None),
                donation_id: donation,
                instructions,
            };
            let h = client
                .set_donation_handoff(request(settings, message)?)
                .await
                .map_err(fail)?
                .into_inner();
            table(
                settings.json,
                &["donation", "handoff"],
                vec![vec![h.donation_id, h.instructions]],
            );
        }
        Command::Reads => {
            let all = crate::reads::all_reads!(client, settings, fail);
            crate::reads::show(settings.json, &all);
        }
        Command::Withdraw { donation } => {
            let message = pb::WithdrawDonationRequest {
                idempotency_key: key(&None),
                donation_id: donation,
            };
            let d = client
                .withdraw_donation(request(settings, message)?)
                .await
                .map_err(fail)?
                .into_inner();
            table(settings.json, &HEADERS, vec![row(&d)]);
        }
        Command::Show { donation } => {
            let d = client
                .get_donation(request(settings, pb::GetDonationRequest { donation_id: donation })?)
                .await
                .map_err(fail)?;
            let d = d.into_inner();
            table(settings.json, &HEADERS, vec![row(&d)]);
            if !settings.json && !d.usage.is_empty() {
                crate::output::out("");
                table(
                    false,
                    &["used at", "units"],
                    d.usage
                        .iter()
                        .map(|u| vec![time(u.at_ms), u.units.to_string()])
                        .collect(),
                );
            }
        }
        Command::Watch => {
            let message = pb::WatchDonationsRequest {
                after_position: 0,
                ..Default::default()
            };
            let stream = client
                .watch_donations(request(settings, message)?)
                .await
                .map_err(fail)?
                .into_inner();
            crate::output::follow(stream, settings.json, &HEADERS, row, fail, "your donations").await?;
        }
        Command::List => {
            let mut rows = Vec::new();
            let mut token = String::new();
            loop {
                let message = pb::ListDonationsRequest {
                    page_size: 500,
                    page_token: token,
                };
                let page = client
                    .list_donations(request(settings, message)?)
                    .await
                    .map_err(fail)?
                    .into_inner();
                rows.extend(page.donations.iter().map(row));
                if page.next_page_token.is_empty() {
                    break;
                }
                token = page.next_page_token;
            }
            table(settings.json, &HEADERS, rows);
        }
    }
    Ok(())
}
