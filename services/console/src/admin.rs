//! The coalition admin's page: the matcher's picture (needs placed and
//! unplaced, referrals pending, the waitlist by kind and region, as a chart
//! and a table), and the partners with their tokens (a token is shown once,
//! when made).

use crate::html::{alert, chart, csrf, esc, http_status, notice, page, problem, select};
use crate::i18n::{Lang, T};
use crate::intake::need_name;
use crate::session::Session;
use crate::{check_csrf, field, form, html as respond, Console};
use crate::{As, ForAdmin};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use refer_client::tokens::authed;
use refer_client::Role;
use refer_proto::matcher::v1 as m;
use refer_proto::matcher::v1::matcher_client::MatcherClient;
use std::fmt::Write;

pub fn routes() -> Router<Console> {
    Router::new().route("/admin", get(overview).post(add_partner))
}

fn status_html(lang: Lang, s: &m::Status) -> String {
    let l = |t: T| t.get(lang);
    let mut out = format!(
        "<dl class=\"counts\"><dt>{}</dt><dd>{}</dd><dt>{}</dt><dd>{}</dd><dt>{}</dt><dd>{}</dd>\
         <dt>{}</dt><dd>{}</dd><dt>{}</dt><dd>{}</dd></dl>",
        l(T::Unplaced),
        s.unplaced_needs,
        l(T::AcceptedNeeds),
        s.accepted_needs,
        l(T::PendingReferrals),
        s.pending_referrals,
        l(T::SitesCount),
        s.providers,
        l(T::DonationsCount),
        s.donations,
    );
    let _ = write!(out, "<h2>{}</h2>", l(T::TimeToAccept));
    if s.acceptance_timed == 0 {
        let _ = write!(out, "<p>{}</p>", l(T::NothingTimed));
    } else {
        let minutes = |ms: i64| (ms as f64 / 60_000.0 * 10.0).round() / 10.0;
        out += &chart(
            l(T::TimeToAccept),
            &[
                (l(T::Median).to_owned(), Some(minutes(s.acceptance_p50_ms))),
                (l(T::NinetyPercent).to_owned(), Some(minutes(s.acceptance_p90_ms))),
            ],
            "chart-accept",
            "",
        );
        let _ = write!(
            out,
            "<p>{}: {} · {}: {} ({} {})</p>",
            l(T::Median),
            crate::html::duration(s.acceptance_p50_ms),
            l(T::NinetyPercent),
            crate::html::duration(s.acceptance_p90_ms),
            s.acceptance_timed,
            l(T::Acceptances)
        );
    }
    let _ = write!(out, "<h2>{}</h2>", l(T::Waitlist));
    if s.waitlist.is_empty() {
        let _ = write!(out, "<p>{}</p>", l(T::NoWaitlist));
        return out;
    }
    let bars: Vec<(String, Option<f64>)> = s
        .waitlist
        .iter()
        .map(|w| {
            (
                format!(
                    "{} · {}",
                    need_name(w.kind, lang),
                    crate::places::region_name(&w.region, lang)
                ),
                Some(f64::from(w.needs)),
            )
        })
        .collect();
    out += &chart(l(T::Waitlist), &bars, "chart-waitlist", "");
    let _ = write!(
        out,
        "<table><caption>{}</caption><thead><tr><th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th></tr></thead><tbody>",
        l(T::Waitlist),
        l(T::Need),
        l(T::County),
        l(T::Count)
    );
    for w in &s.waitlist {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            need_name(w.kind, lang),
            esc(&crate::places::region_name(&w.region, lang)),
            w.needs
        );
    }
    out + "</tbody></table>"
}

fn partners_html(c: &Console, s: &Session) -> String {
    let lang = s.lang;
    let l = |t: T| t.get(lang);
    let mut out = format!("<h2>{}</h2>", l(T::Partners));
    let Some(path) = &c.tokens_file else {
        return out + &format!("<p>{}</p>", l(T::NoTokenFile));
    };
    // Organisations by name: each is named after its first partner in
    // the token file (an import names that after the organisation).
    let mut orgs: Vec<(String, String)> = Vec::new();
    match refer_client::tokens::partners(path) {
        Ok(partners) => {
            let _ = write!(
                out,
                "<table><thead><tr><th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th></tr></thead><tbody>",
                l(T::Name),
                l(T::RoleLabel),
                l(T::Organisation)
            );
            for p in partners {
                if !orgs.iter().any(|(id, _)| *id == p.org) {
                    orgs.push((p.org.clone(), p.name.clone()));
                }
                let named = &orgs.iter().find(|(id, _)| *id == p.org).expect("noted above").1;
                let _ = write!(
                    out,
                    "<tr><td>{}</td><td>{}</td><td title=\"{}\">{}</td></tr>",
                    esc(&p.name),
                    crate::html::role_name(p.role, lang),
                    esc(&p.org),
                    esc(named)
                );
            }
            out += "</tbody></table>";
        }
        Err(e) => out += &alert(&e),
    }
    let roles = [
        ("intake", crate::html::role_name(Role::Intake, lang)),
        ("provider", crate::html::role_name(Role::Provider, lang)),
        ("business", crate::html::role_name(Role::Business, lang)),
        ("admin", crate::html::role_name(Role::Admin, lang)),
    ];
    let _ = write!(
        out,
        "<h3>{add}</h3><form method=\"post\" action=\"/admin\">{csrf}\
         <label for=\"name\">{name}</label><input id=\"name\" name=\"name\" maxlength=\"100\" required>{role}\
         {org}\
         <input type=\"hidden\" name=\"new_org\" value=\"{fresh}\">\
         <button type=\"submit\">{add}</button></form>",
        add = l(T::AddPartner),
        csrf = csrf(s),
        name = l(T::Name),
        role = select("role", l(T::RoleLabel), &roles, "provider"),
        org = {
            let mut options: Vec<(&str, &str)> = vec![("", l(T::NewOrganisation))];
            options.extend(orgs.iter().map(|(id, name)| (id.as_str(), name.as_str())));
            select("org", l(T::OrganisationOptional), &options, "")
        },
        // The organisation a blank field makes, chosen with the form: a
        // form posted twice names the same one, and adds one partner.
        fresh = uuid::Uuid::new_v4(),
    );
    out
}

/// The admin's page with `message` above it, answered with `code` (or
/// with the matcher's refusal when it refused).
async fn render(c: &Console, s: &Session, code: StatusCode, message: String) -> Response {
    let mut body = message;
    let status = MatcherClient::new(c.matcher.clone())
        .get_status(authed(&s.token, m::GetStatusRequest {}))
        .await;
    let code = match status {
        Ok(status) => {
            body += &status_html(s.lang, &status.into_inner());
            code
        }
        Err(status) => {
            body += &problem(s.lang, "matcher", &status);
            if code.is_success() {
                http_status(&status)
            } else {
                code
            }
        }
    };
    body += &partners_html(c, s);
    (code, respond(page(s.lang, T::Coalition.get(s.lang), Some(s), &body))).into_response()
}

async fn overview(State(c): State<Console>, As(s, _): As<ForAdmin>) -> Response {
    // A partner just added: its token, shown this once.
    let added = c.sessions.take_flash(&s.id).await;
    render(
        &c,
        &s,
        StatusCode::OK,
        added.map_or_else(String::new, |text| notice(&text)),
    )
    .await
}

/// Adds a partner, then redirects to the page that shows its token once
/// (kept in the session, not the URL): reloading that page never adds a
/// second partner. A refusal shows the form again with the field at fault.
async fn add_partner(State(c): State<Console>, As(s, _): As<ForAdmin>, body: Bytes) -> Response {
    let f = form(&body);
    if let Err(refusal) = check_csrf(&s, &f) {
        return refusal;
    }
    let refuse = |code: StatusCode, text: &str| {
        let message = alert(&format!("{} {text}", T::CouldNot.get(s.lang)));
        render(&c, &s, code, message)
    };
    let Some(path) = &c.tokens_file else {
        return render(&c, &s, StatusCode::CONFLICT, alert(T::NoTokenFile.get(s.lang))).await;
    };
    let role = match field(&f, "role") {
        "intake" => Role::Intake,
        "business" => Role::Business,
        "admin" => Role::Admin,
        _ => Role::Provider,
    };
    let org = match field(&f, "org").trim() {
        "" => match uuid::Uuid::parse_str(field(&f, "new_org")) {
            Ok(fresh) => fresh,
            Err(_) => uuid::Uuid::new_v4(),
        },
        text => match uuid::Uuid::parse_str(text) {
            Ok(org) => org,
            Err(_) => return refuse(StatusCode::UNPROCESSABLE_ENTITY, "org: not a UUID").await,
        },
    };
    let name = field(&f, "name").to_owned();
    if let Err(e) = refer_client::tokens::check_name(&name) {
        return refuse(StatusCode::UNPROCESSABLE_ENTITY, &e).await;
    }
    // The registry may be held by an import for a while: wait off the runtime.
    let path = path.clone();
    let made = tokio::task::spawn_blocking(move || refer_client::tokens::add_partner_once(&path, &name, role, org))
        .await
        .unwrap_or_else(|e| Err(format!("adding the partner stopped: {e}")));
    match made {
        // Posted again (a double tap): added already; its token was kept
        // for the page by the first post.
        Ok(None) => Redirect::to("/admin").into_response(),
        Ok(Some(token)) => {
            tracing::info!(role = ?role, "partner added");
            let shown = format!("{} {token}", T::TokenOnce.get(s.lang));
            if c.sessions.set_flash(&s.id, shown.clone()).await {
                Redirect::to("/admin").into_response()
            } else {
                // The session store is away: the token is shown here, or lost.
                render(&c, &s, StatusCode::OK, notice(&shown)).await
            }
        }
        Err(e) => refuse(StatusCode::SERVICE_UNAVAILABLE, &e).await,
    }
}
