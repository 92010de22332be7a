//! `refer admin report`: the coalition's figures over whole months, read
//! from the stream with the operator's credential (docs/reports.md).

use crate::output::{out, record, table};
use crate::settings::Settings;
use refer_reports::disclosure::{unpublished, Published, Shown};
use refer_reports::{Ledger, Period, Report, Scope};

pub async fn run(
    settings: &Settings,
    from: Option<String>,
    to: Option<String>,
    org: Option<String>,
    publish: bool,
    csv: bool,
    stream: &str,
) -> anyhow::Result<()> {
    let from = from.unwrap_or_else(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        refer_reports::disclosure::month_of(now)
    });
    let to = to.unwrap_or_else(|| from.clone());
    let period = Period::months(&from, &to).map_err(|e| anyhow::anyhow!("--from/--to: {e}"))?;
    let scope = match org {
        None => Scope::Coalition,
        Some(org) => Scope::Organisation(refer_domain::ids::OrgId::from_uuid(
            uuid::Uuid::parse_str(&org).map_err(|e| anyhow::anyhow!("--org: {org:?} is no organisation id: {e}"))?,
        )),
    };
    let js = async_nats::jetstream::new(settings.bus().await?);
    let mut ledger = Ledger::default();
    refer_client::history::each_event(&js, stream, "", |e| ledger.apply(&e)).await?;
    let report = ledger.report(&period, scope);
    if publish {
        let published = report.publish()?;
        let times = || {
            published
                .times
                .iter()
                .map(|d| (d.name.clone(), minutes(d.median_minutes), minutes(d.p90_minutes)))
        };
        let active = (published.providers_active, published.businesses_active);
        if csv {
            csv_out(&published.tables, times(), active);
        } else if settings.json {
            out(&serde_json::to_string_pretty(&published)?);
        } else {
            let heading = format!("{} to {}, published", published.from_month, published.to_month);
            show(&heading, &published.tables, times(), active);
        }
        return Ok(());
    }
    let tables: Vec<Published> = report.tables.iter().map(unpublished).collect();
    if settings.json {
        let value = serde_json::json!({
            "from_month": period.first_month(),
            "to_month": period.last_month(),
            "tables": tables,
            "times": report.times,
            "providers_active": report.providers_active,
            "businesses_active": report.businesses_active,
        });
        out(&serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    show(
        &format!(
            "{} to {}, raw counts: for the coalition's eyes only (--publish for what may leave it)",
            period.first_month(),
            period.last_month()
        ),
        &tables,
        times(&report),
        (
            Shown::Count(report.providers_active),
            Shown::Count(report.businesses_active),
        ),
    );
    Ok(())
}

fn times(report: &Report) -> impl Iterator<Item = (String, String, String)> + '_ {
    report.times.iter().map(|d| {
        (
            format!("{} ({} needs)", d.name, d.needs),
            minutes(d.median_minutes),
            minutes(d.p90_minutes),
        )
    })
}

fn minutes(m: Option<i64>) -> String {
    m.map_or("-".into(), |m| format!("{m} min"))
}

/// The report as CSV: each table (docs/reports.md), then the delays and
/// the partners active in the same form (a header line led by the title).
fn csv_out(
    tables: &[Published],
    times: impl Iterator<Item = (String, String, String)>,
    (providers, businesses): (Shown, Shown),
) {
    for t in tables {
        out(&t.to_csv());
    }
    let field = |v: &str| refer_reports::disclosure::csv_field(v);
    // As the tables: the title heads the first column.
    let mut text = String::from("delays,median,p90\n");
    for (name, median, p90) in times {
        text += &format!("{},{},{}\n", field(&name), field(&median), field(&p90));
    }
    out(&text);
    out(&format!(
        "partners active,count\nproviders,{}\nbusinesses,{}\n",
        field(&providers.to_string()),
        field(&businesses.to_string())
    ));
}

fn show(
    heading: &str,
    tables: &[Published],
    times: impl Iterator<Item = (String, String, String)>,
    (providers, businesses): (Shown, Shown),
) {
    out(heading);
    for t in tables {
        out("");
        out(&t.title);
        let mut headers: Vec<&str> = vec![""];
        headers.extend(t.columns.iter().map(String::as_str));
        headers.push("total");
        let mut rows: Vec<Vec<String>> = t
            .rows
            .iter()
            .zip(t.cells.iter().zip(&t.row_totals))
            .map(|(label, (cells, total))| {
                std::iter::once(label.clone())
                    .chain(cells.iter().chain([total]).map(Shown::to_string))
                    .collect()
            })
            .collect();
        rows.push(
            std::iter::once("total".to_owned())
                .chain(t.column_totals.iter().chain([&t.total]).map(Shown::to_string))
                .collect(),
        );
        table(false, &headers, rows);
    }
    out("");
    let times: Vec<Vec<String>> = times.map(|(name, median, p90)| vec![name, median, p90]).collect();
    table(false, &["delay", "median", "p90"], times);
    out("");
    record(
        false,
        vec![
            ("providers active", providers.to_string()),
            ("businesses active", businesses.to_string()),
        ],
    );
}

/// `refer report`: the caller's own figures (an admin's: the coalition's or
/// any organisation's) through the matcher's GetReport, with a partner's
/// token; no bus credential.
pub async fn run_api(
    settings: &Settings,
    from: Option<String>,
    to: Option<String>,
    org: Option<String>,
    publish: bool,
    csv: bool,
) -> anyhow::Result<()> {
    use refer_proto::matcher::v1 as m;
    let url = settings.matcher.clone();
    let mut client = m::matcher_client::MatcherClient::new(crate::client::channel(settings, "matcher", &url).await?);
    let ask = m::GetReportRequest {
        from_month: from.unwrap_or_default(),
        to_month: to.unwrap_or_default(),
        organisation_id: org.unwrap_or_default(),
        publish,
    };
    let r = client
        .get_report(crate::client::request(settings, ask)?)
        .await
        .map_err(|s| anyhow::anyhow!(crate::errors::explain("matcher", &url, &s)))?
        .into_inner();
    let tables: Vec<Published> = r.tables.iter().map(published).collect::<anyhow::Result<_>>()?;
    let shown = |f: &Option<m::Figure>| shown_pb(f.as_ref());
    let (providers, businesses) = (shown(&r.providers_active)?, shown(&r.businesses_active)?);
    // Each delay, with how many needs it is over when the counts are raw.
    let times = || {
        r.times.iter().map(|d| {
            let name = if r.published {
                d.name.clone()
            } else {
                format!("{} ({} needs)", d.name, d.needs)
            };
            (name, minutes(d.median_minutes), minutes(d.p90_minutes))
        })
    };
    if csv {
        csv_out(&tables, times(), (providers, businesses));
        return Ok(());
    }
    let delays = |times: &[m::Delay]| {
        times
            .iter()
            .map(|d| {
                serde_json::json!({
                    "name": d.name,
                    "needs": (!r.published).then_some(d.needs),
                    "median_minutes": d.median_minutes,
                    "p90_minutes": d.p90_minutes,
                })
            })
            .collect::<Vec<_>>()
    };
    if settings.json {
        let value = serde_json::json!({
            "from_month": r.from_month,
            "to_month": r.to_month,
            "organisation_id": (!r.organisation_id.is_empty()).then_some(&r.organisation_id),
            "published": r.published,
            "tables": tables,
            "times": delays(&r.times),
            "months": r.months.iter().map(|m| serde_json::json!({"month": m.month, "times": delays(&m.times)})).collect::<Vec<_>>(),
            "providers_active": providers,
            "businesses_active": businesses,
        });
        out(&serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    let whose = if r.organisation_id.is_empty() {
        "the coalition".to_owned()
    } else {
        format!("organisation {}", r.organisation_id)
    };
    let heading = if r.published {
        format!("{} to {}, {whose}, published", r.from_month, r.to_month)
    } else {
        format!(
            "{} to {}, {whose}, raw counts: for the coalition's eyes only (--publish for what may leave it)",
            r.from_month, r.to_month
        )
    };
    show(&heading, &tables, times(), (providers, businesses));
    Ok(())
}

/// A figure as the service showed it; a missing one is the service's fault.
fn shown_pb(f: Option<&refer_proto::matcher::v1::Figure>) -> anyhow::Result<Shown> {
    use refer_proto::matcher::v1::figure::Shown as S;
    match f.and_then(|f| f.shown) {
        Some(S::Count(n)) => Ok(Shown::Count(n)),
        Some(S::UnderFive(_)) => Ok(Shown::UnderFive),
        Some(S::Suppressed(_)) => Ok(Shown::Suppressed),
        None => Err(anyhow::anyhow!("the matcher sent a report figure with no value")),
    }
}

fn published(t: &refer_proto::matcher::v1::ReportTable) -> anyhow::Result<Published> {
    let all = |v: &[refer_proto::matcher::v1::Figure]| {
        v.iter().map(|f| shown_pb(Some(f))).collect::<anyhow::Result<Vec<_>>>()
    };
    let width = t.columns.len();
    let cells = all(&t.cells)?;
    if width == 0 || cells.len() != t.rows.len() * width {
        anyhow::bail!(
            "the matcher sent table {:?} with {} cells for {} rows of {width}",
            t.title,
            cells.len(),
            t.rows.len()
        );
    }
    Ok(Published {
        title: t.title.clone(),
        rows: t.rows.clone(),
        columns: t.columns.clone(),
        cells: cells.chunks(width).map(<[Shown]>::to_vec).collect(),
        row_totals: all(&t.row_totals)?,
        column_totals: all(&t.column_totals)?,
        total: shown_pb(t.total.as_ref())?,
    })
}
