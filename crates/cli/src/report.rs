//! `refer admin report`: the coalition's figures over whole months, read
//! from the stream with the operator's credential (docs/reports.md).

use crate::output::{out, record, table};
use crate::settings::Settings;
use refer_reports::disclosure::{Published, Shown, Table};
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
        if csv {
            for t in &published.tables {
                out(&t.to_csv());
            }
        } else if settings.json {
            out(&serde_json::to_string_pretty(&published)?);
        } else {
            show(
                &format!("{} to {}, published", published.from_month, published.to_month),
                &published.tables,
                published
                    .times
                    .iter()
                    .map(|d| (d.name.clone(), minutes(d.median_minutes), minutes(d.p90_minutes))),
                (published.providers_active, published.businesses_active),
            );
        }
        return Ok(());
    }
    let tables: Vec<Published> = report.tables.iter().map(raw).collect();
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

/// A table with every count shown, for the coalition's own eyes.
fn raw(t: &Table) -> Published {
    let count = |n: u64| Shown::Count(n);
    let columns = t.columns.len();
    Published {
        title: t.title.clone(),
        rows: t.rows.clone(),
        columns: t.columns.clone(),
        cells: t
            .cells
            .iter()
            .map(|r| r.iter().map(|f| count(f.count)).collect())
            .collect(),
        row_totals: t.cells.iter().map(|r| count(r.iter().map(|f| f.count).sum())).collect(),
        column_totals: (0..columns)
            .map(|j| count(t.cells.iter().map(|r| r[j].count).sum()))
            .collect(),
        total: count(t.cells.iter().flatten().map(|f| f.count).sum()),
    }
}

fn minutes(m: Option<i64>) -> String {
    m.map_or("-".into(), |m| format!("{m} min"))
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
