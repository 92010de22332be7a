//! The reports page, for every role: the organisation's own figures over
//! whole months (an admin's: the coalition's), from the matcher's
//! GetReport (docs/reports.md), as charts (unmet need by kind and by
//! region, response times month by month) and the tables behind them;
//! raw, or only what may be published.

use crate::html::{alert, chart, esc, notice, page};
use crate::i18n::{Lang, T};
use crate::{field, form, html as respond, Anyone, Console};
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use refer_client::tokens::authed;
use refer_proto::matcher::v1 as m;
use refer_proto::matcher::v1::matcher_client::MatcherClient;
use std::fmt::Write;

pub fn routes() -> Router<Console> {
    Router::new().route("/reports", get(reports))
}

/// The title of the table whose totals the unmet-need charts draw.
const UNMET_BY_REGION: &str = "unmet need by kind and region";

async fn reports(State(c): State<Console>, Anyone(s): Anyone, RawQuery(query): RawQuery) -> Response {
    let lang = s.lang;
    let l = |t: T| t.get(lang);
    let asked = form(&Bytes::from(query.unwrap_or_default()));
    let (from, to) = (field(&asked, "from"), field(&asked, "to"));
    let publish = field(&asked, "publish") == "1";
    let mut body = form_html(lang, from, to, publish);
    let answer =
        |code: StatusCode, body: &str| (code, respond(page(lang, l(T::Reports), Some(&s), body))).into_response();
    // Blank months are the service's default (this month); a month the
    // person wrote is read as the service reads it, so the fault is named
    // in the form's words before anything is asked.
    let to_or_from = if to.is_empty() { from } else { to };
    if !from.is_empty() {
        if let Err(e) = refer_reports::Period::months(from, to_or_from) {
            let label = match e {
                refer_reports::PeriodError::Month(ref m) if m == from => l(T::FirstMonth),
                _ => l(T::LastMonth),
            };
            body += &alert(&format!("{label}: {e}"));
            return answer(StatusCode::UNPROCESSABLE_ENTITY, &body);
        }
    } else if !to.is_empty() {
        body += &alert(&format!("{}: {}", l(T::FirstMonth), l(T::FirstMonthNeeded)));
        return answer(StatusCode::UNPROCESSABLE_ENTITY, &body);
    }
    let ask = m::GetReportRequest {
        from_month: from.to_owned(),
        to_month: to.to_owned(),
        organisation_id: String::new(),
        publish,
    };
    match MatcherClient::new(c.matcher.clone())
        .get_report(authed(&s.token, ask))
        .await
    {
        Ok(r) => body += &report_html(lang, &r.into_inner()),
        Err(status) if status.code() == tonic::Code::InvalidArgument => {
            let said = status
                .message()
                .replace("invalid from_month", l(T::FirstMonth))
                .replace("invalid to_month", l(T::LastMonth));
            body += &alert(&said);
            return answer(StatusCode::UNPROCESSABLE_ENTITY, &body);
        }
        Err(status) => {
            body += &crate::html::problem(lang, "matcher", &status);
            return answer(crate::html::http_status(&status), &body);
        }
    }
    answer(StatusCode::OK, &body)
}

fn form_html(lang: Lang, from: &str, to: &str, publish: bool) -> String {
    let l = |t: T| t.get(lang);
    format!(
        "<form method=\"get\" action=\"/reports\" class=\"period\">\
         <label for=\"from\">{first}</label><input type=\"month\" id=\"from\" name=\"from\" value=\"{from}\" pattern=\"[0-9]{{4}}-[0-9]{{2}}\" placeholder=\"2026-12\">\
         <label for=\"to\">{last}</label><input type=\"month\" id=\"to\" name=\"to\" value=\"{to}\" pattern=\"[0-9]{{4}}-[0-9]{{2}}\" placeholder=\"2026-12\">\
         <p class=\"hint\">{hint}</p>\
         <div class=\"choice\"><input type=\"checkbox\" id=\"publish\" name=\"publish\" value=\"1\"{checked}>\
         <label for=\"publish\">{only}</label></div>\
         <button type=\"submit\">{show}</button></form>",
        first = l(T::FirstMonth),
        last = l(T::LastMonth),
        from = esc(from),
        to = esc(to),
        hint = l(T::MonthsHint),
        checked = if publish { " checked" } else { "" },
        only = l(T::PublishOnly),
        show = l(T::ShowReport),
    )
}

/// A figure's value for a chart (`None`: hidden) and its words.
fn value(f: Option<&m::Figure>) -> (Option<f64>, String) {
    use m::figure::Shown;
    match f.and_then(|f| f.shown) {
        Some(Shown::Count(n)) => (Some(n as f64), n.to_string()),
        Some(Shown::UnderFive(_)) => (None, "< 5".to_owned()),
        Some(Shown::Suppressed(_)) | None => (None, "suppressed".to_owned()),
    }
}

fn report_html(lang: Lang, r: &m::Report) -> String {
    let l = |t: T| t.get(lang);
    let whose = if r.organisation_id.is_empty() {
        l(T::TheCoalition)
    } else {
        l(T::YourOrganisation)
    };
    let period = if r.from_month == r.to_month {
        r.from_month.clone()
    } else {
        format!("{} – {}", r.from_month, r.to_month)
    };
    let mut out = format!("<h2>{} · {}</h2>", esc(&period), whose);
    out += &notice(if r.published {
        l(T::PublishedNotice)
    } else {
        l(T::RawNotice)
    });

    // Unmet need by kind (row totals) and by region (column totals).
    let _ = write!(out, "<h2>{}</h2>", l(T::UnmetNeed));
    match r.tables.iter().find(|t| t.title == UNMET_BY_REGION) {
        None => {
            let _ = write!(out, "<p>{}</p>", l(T::NoUnmetNeed));
        }
        Some(t) => {
            let hidden = l(T::Hidden);
            let by_kind: Vec<(String, Option<f64>)> = t
                .rows
                .iter()
                .zip(&t.row_totals)
                .map(|(row, f)| (row.clone(), value(Some(f)).0))
                .collect();
            let _ = write!(out, "<h3>{}</h3>", l(T::UnmetByKind));
            out += &chart(l(T::UnmetByKind), &by_kind, "chart-unmet-kind", hidden);
            let by_region: Vec<(String, Option<f64>)> = t
                .columns
                .iter()
                .zip(&t.column_totals)
                .map(|(column, f)| (column.clone(), value(Some(f)).0))
                .collect();
            let _ = write!(out, "<h3>{}</h3>", l(T::UnmetByRegion));
            out += &chart(l(T::UnmetByRegion), &by_region, "chart-unmet-region", hidden);
        }
    }

    // Response times, month by month.
    let _ = write!(out, "<h2>{}</h2>", l(T::ResponseTimes));
    // One chart per step, a bar per month: how the wait moved.
    for (i, d) in r.times.iter().enumerate() {
        let title = format!("{}: {}", l(T::MedianMinutesTo), delay_name(lang, &d.name));
        let bars: Vec<(String, Option<f64>)> = r
            .months
            .iter()
            .map(|m| {
                let median = m.times.get(i).and_then(|d| d.median_minutes);
                (m.month.clone(), median.map(|m| m as f64))
            })
            .collect();
        let _ = write!(out, "<h3>{}</h3>", esc(&title));
        out += &chart(&title, &bars, &format!("chart-times-{i}"), l(T::Withheld));
    }
    let _ = write!(
        out,
        "<table><caption>{caption}</caption><thead><tr><th scope=\"col\">{delay}</th><th scope=\"col\">{median}</th>\
         <th scope=\"col\">{p90}</th></tr></thead><tbody>",
        caption = l(T::ResponseTimes),
        delay = l(T::Delay),
        median = l(T::Median),
        p90 = l(T::NinetyPercent),
    );
    let minutes = |m: Option<i64>| m.map_or_else(|| l(T::Withheld).to_owned(), |m| format!("{m} min"));
    for d in &r.times {
        let _ = write!(
            out,
            "<tr><th scope=\"row\">{}</th><td>{}</td><td>{}</td></tr>",
            delay_name(lang, &d.name),
            minutes(d.median_minutes),
            minutes(d.p90_minutes)
        );
    }
    out += "</tbody></table>";
    let _ = write!(
        out,
        "<dl class=\"counts\"><dt>{}</dt><dd>{}</dd><dt>{}</dt><dd>{}</dd></dl>",
        l(T::ProvidersActive),
        value(r.providers_active.as_ref()).1,
        l(T::BusinessesActive),
        value(r.businesses_active.as_ref()).1,
    );

    // Every table, as it came.
    for t in &r.tables {
        out += &table_html(lang, t);
    }
    out
}

fn delay_name(lang: Lang, name: &str) -> &str {
    match name {
        "request to first proposal" => T::ToFirstProposal.get(lang),
        "request to acceptance" => T::ToAcceptance.get(lang),
        other => other,
    }
}

fn table_html(lang: Lang, t: &m::ReportTable) -> String {
    let width = t.columns.len();
    // A wide table scrolls on a phone: its region takes the keyboard's focus.
    let mut out = format!(
        "<div class=\"wide\" tabindex=\"0\" role=\"region\" aria-label=\"{title}\"><table><caption>{title}</caption><thead><tr><td></td>",
        title = esc(&t.title)
    );
    for c in &t.columns {
        let _ = write!(out, "<th scope=\"col\">{}</th>", esc(c));
    }
    let _ = write!(out, "<th scope=\"col\">{}</th></tr></thead><tbody>", T::Total.get(lang));
    for (i, row) in t.rows.iter().enumerate() {
        let _ = write!(out, "<tr><th scope=\"row\">{}</th>", esc(row));
        for f in t.cells.iter().skip(i * width).take(width) {
            let _ = write!(out, "<td>{}</td>", esc(&value(Some(f)).1));
        }
        let _ = write!(out, "<td>{}</td></tr>", esc(&value(t.row_totals.get(i)).1));
    }
    let _ = write!(out, "<tr><th scope=\"row\">{}</th>", T::Total.get(lang));
    for f in &t.column_totals {
        let _ = write!(out, "<td>{}</td>", esc(&value(Some(f)).1));
    }
    let _ = write!(
        out,
        "<td>{}</td></tr></tbody></table></div>",
        esc(&value(t.total.as_ref()).1)
    );
    out
}
