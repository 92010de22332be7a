//! Provider partners' page: each site's capacity as steppers, referrals
//! waiting for an answer with a live countdown, accept (with the hand-off)
//! and decline (with a coded reason), suspend and resume; what the agency
//! shared once accepted.

use crate::html::{csrf, esc, local_time, tag_if, time};
use crate::i18n::{Lang, T};
use crate::live::{self, Changes, Live};
use crate::session::{random_id, Session};
use crate::{field, form, Console};
use crate::{As, ForProvider};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use futures::StreamExt;
use refer_client::tokens::authed;
use refer_proto::capacity::v1 as cap;
use refer_proto::common::v1 as pb;
use std::fmt::Write;

pub fn routes() -> Router<Console> {
    Router::new()
        .merge(live::routes::<Sites>())
        .route("/provider/sites/{site}/capacity", post(capacity))
        .route("/provider/sites/{site}/{action}", post(site_action))
        .route("/provider/sites/{site}/referrals/{referral}/{answer}", post(answer))
}

fn service_name(kind: i32, lang: Lang) -> &'static str {
    match pb::ServiceKind::try_from(kind).unwrap_or(pb::ServiceKind::Unspecified) {
        pb::ServiceKind::ShelterBed => T::ServiceShelterBed,
        pb::ServiceKind::Counseling => T::ServiceCounseling,
        pb::ServiceKind::Medical => T::ServiceMedical,
        pb::ServiceKind::Legal | pb::ServiceKind::Unspecified => T::ServiceLegal,
    }
    .get(lang)
}

fn age_name(band: i32, lang: Lang) -> &'static str {
    if band == pb::AgeBand::Juvenile as i32 {
        T::Juvenile.get(lang)
    } else {
        T::Adult.get(lang)
    }
}

/// The caller's sites with their referrals (pending, and accepted ones).
async fn load(c: &Console, s: &Session) -> Result<Vec<(cap::Provider, Vec<cap::Referral>)>, tonic::Status> {
    let mut client = c.capacity_client();
    let list = cap::ListProvidersRequest {
        page_size: 50,
        page_token: String::new(),
    };
    let sites = client
        .list_providers(authed(&s.token, list))
        .await?
        .into_inner()
        .providers;
    let mut out = Vec::new();
    for site in sites {
        let referrals = cap::ListReferralsRequest {
            provider_id: site.provider_id.clone(),
            pending_only: false,
            page_size: 100,
            page_token: String::new(),
        };
        let referrals = client
            .list_referrals(authed(&s.token, referrals))
            .await?
            .into_inner()
            .referrals;
        out.push((site, referrals));
    }
    Ok(out)
}

/// Who a card is for (never who they are): party, age, languages, and
/// how urgent, which sets the order of the cards.
fn person_html(lang: Lang, r: &cap::Referral) -> String {
    let l = |t: T| t.get(lang);
    let urgency = match pb::Urgency::try_from(r.urgency).unwrap_or(pb::Urgency::Unspecified) {
        pb::Urgency::Immediate => l(T::Immediate),
        pb::Urgency::Soon => l(T::Soon),
        pb::Urgency::Routine => l(T::Routine),
        pb::Urgency::Unspecified => "",
    };
    format!(
        "<p class=\"who\"><strong class=\"urgency\">{urgency}</strong> · {party} {size} · {age} · {languages}</p>",
        party = l(T::Party),
        size = r.party_size,
        age = age_name(r.age_band, lang),
        languages = esc(&crate::languages::names(&r.languages, lang)),
    )
}

/// One referral of a person's card: the service, its deadline, accept
/// with a hand-off, decline with a coded reason.
fn referral_html(s: &Session, site: &str, r: &cap::Referral) -> String {
    let lang = s.lang;
    let l = |t: T| t.get(lang);
    let base = format!("/provider/sites/{}/referrals/{}", esc(site), esc(&r.referral_id));
    let handoff_id = format!("handoff-{}", esc(&r.referral_id));
    let reason_id = format!("reason-{}", esc(&r.referral_id));
    format!(
        "<li class=\"referral\" data-referral=\"{id}\"><h4>{service}</h4>\
         <p>{within} <time data-deadline=\"{ms}\">{at}</time></p>\
         <form method=\"post\" action=\"{base}/accept\">{csrf}\
         <label for=\"{handoff_id}\">{handoff_label}</label>\
         <textarea id=\"{handoff_id}\" name=\"handoff\" maxlength=\"1024\" rows=\"2\"></textarea>\
         <button type=\"submit\">{accept}</button></form>\
         <form method=\"post\" action=\"{base}/decline\">{csrf}\
         <label for=\"{reason_id}\">{reason}</label><select id=\"{reason_id}\" name=\"reason\">\
         <option value=\"no_capacity\">{no_capacity}</option><option value=\"not_eligible\">{not_eligible}</option>\
         <option value=\"safety_concern\">{safety}</option><option value=\"other\">{other}</option></select>\
         <button type=\"submit\" class=\"quiet\">{decline}</button></form></li>",
        id = esc(&r.referral_id),
        service = service_name(r.service, lang),
        within = l(T::AnswerWithin),
        ms = r.deadline_ms,
        at = time(r.deadline_ms),
        csrf = csrf(s),
        handoff_label = l(T::HandoffInstructions),
        accept = l(T::Accept),
        reason = l(T::Reason),
        no_capacity = l(T::NoCapacity),
        not_eligible = l(T::NotEligible),
        safety = l(T::SafetyConcern),
        other = l(T::Other),
        decline = l(T::Decline),
    )
}

/// A site's pending referrals as one card per person (all their needs at
/// this site together), the most urgent first, then the earliest deadline.
fn people_html(s: &Session, site: &str, pending: &[&cap::Referral]) -> String {
    let mut people: Vec<Vec<&cap::Referral>> = Vec::new();
    for r in pending {
        match people
            .iter_mut()
            .find(|p| !r.person.is_empty() && p[0].person == r.person)
        {
            Some(person) => person.push(r),
            None => people.push(vec![r]),
        }
    }
    // Urgency on the wire: immediate 1, soon 2, routine 3 (unset last).
    let rank = |u: i32| if u == 0 { i32::MAX } else { u };
    people.sort_by_key(|p| (rank(p[0].urgency), p.iter().map(|r| r.deadline_ms).min()));
    let mut out = String::from("<ul class=\"people\">");
    for person in people {
        let _ = write!(
            out,
            "<li class=\"person\" data-person=\"{}\">{}<ul class=\"referrals\">",
            esc(&person[0].person),
            person_html(s.lang, person[0])
        );
        for r in person {
            out += &referral_html(s, site, r);
        }
        out += "</ul></li>";
    }
    out + "</ul>"
}

/// A capacity's "as of" in the reader's time, tagged when stale.
fn as_of(c: &cap::ServiceCapacity, lang: Lang) -> String {
    let l = |t: T| t.get(lang);
    let when = match c.as_of_ms {
        0 => esc(l(T::UnknownAge)),
        ms => format!("{} {}", l(T::AsOf), local_time(ms)),
    };
    format!("{when}{}", tag_if(c.stale, l(T::Stale)))
}

fn sites_html(s: &Session, sites: &[(cap::Provider, Vec<cap::Referral>)]) -> String {
    let lang = s.lang;
    let l = |t: T| t.get(lang);
    if sites.is_empty() {
        return format!("<p>{}</p>", l(T::NoSites));
    }
    let mut out = String::new();
    if sites.iter().any(|(site, _)| site.capacity.iter().any(|c| c.stale)) {
        let _ = write!(out, "<p class=\"reminder\" role=\"status\">{}</p>", l(T::StaleReminder));
    }
    for (site, referrals) in sites {
        let id = esc(&site.provider_id);
        let name = site.spec.as_ref().map_or("", |spec| spec.name.as_str());
        let suspended = tag_if(site.suspended, l(T::Suspended));
        let _ = write!(
            out,
            "<article class=\"site\" data-site=\"{id}\"><h2>{}{suspended}</h2>",
            esc(name)
        );
        let _ = write!(out, "<h3>{}</h3><ul class=\"capacity\">", l(T::Capacity));
        for c in &site.capacity {
            let service = service_name(c.service, lang);
            let form = |delta: &str, text: &str, sign: &str| {
                format!(
                    "<form method=\"post\" action=\"/provider/sites/{id}/capacity\" class=\"inline\">{csrf}\
                     <input type=\"hidden\" name=\"service\" value=\"{kind}\"><input type=\"hidden\" name=\"delta\" value=\"{delta}\">\
                     <button type=\"submit\" class=\"step\" aria-label=\"{text}: {service}\">{sign}</button></form>",
                    csrf = csrf(s),
                    kind = c.service,
                )
            };
            let set_id = format!("set-{id}-{}", c.service);
            let _ = write!(
                out,
                "<li data-service=\"{kind}\"{stale_attr}><strong>{service}</strong> \
                 <span class=\"free\">{free} {free_text}</span> · {held} {held_text} · {placed} {placed_text} \
                 <span class=\"as-of\">{as_of}</span>\
                 <div class=\"stepper\">{minus}<output aria-live=\"polite\">{declared}</output>{plus}\
                 <form method=\"post\" action=\"/provider/sites/{id}/capacity\" class=\"inline\">{csrf}\
                 <input type=\"hidden\" name=\"service\" value=\"{kind}\">\
                 <label for=\"{set_id}\">{declared_text}</label>\
                 <input id=\"{set_id}\" name=\"set\" type=\"number\" min=\"0\" max=\"100000\" value=\"{declared}\">\
                 <button type=\"submit\" class=\"quiet\">{set}</button></form></div></li>",
                kind = c.service,
                stale_attr = if c.stale { " data-stale" } else { "" },
                as_of = as_of(c, lang),
                free = c.free,
                free_text = l(T::Free),
                held = c.held,
                held_text = l(T::Held),
                placed = c.placed,
                placed_text = l(T::PlacedUnits),
                minus = form("-1", l(T::RemoveOne), "−"),
                plus = form("1", l(T::AddOne), "+"),
                declared = c.declared,
                declared_text = l(T::Declared),
                csrf = csrf(s),
                set = l(T::Set),
            );
        }
        out += "</ul>";
        let toggle = if site.suspended {
            ("resume", T::Resume)
        } else {
            ("suspend", T::Suspend)
        };
        let _ = write!(
            out,
            "<form method=\"post\" action=\"/provider/sites/{id}/{}\">{}<button type=\"submit\" class=\"quiet\">{}</button></form>",
            toggle.0,
            csrf(s),
            l(toggle.1)
        );
        let pending: Vec<&cap::Referral> = referrals
            .iter()
            .filter(|r| r.status == cap::ReferralStatus::Pending as i32)
            .collect();
        let _ = write!(out, "<h3>{}</h3>", l(T::Referrals));
        if pending.is_empty() {
            let _ = write!(out, "<p>{}</p>", l(T::NoReferrals));
        } else {
            out += &people_html(s, &site.provider_id, &pending);
        }
        let accepted: Vec<&cap::Referral> = referrals
            .iter()
            .filter(|r| r.status == cap::ReferralStatus::Accepted as i32)
            .collect();
        if !accepted.is_empty() {
            let _ = write!(out, "<h3>{}</h3><ul class=\"accepted\">", l(T::AcceptedReferrals));
            for r in accepted.iter().rev().take(10) {
                let h = r.handoff.clone().unwrap_or_default();
                let mut line = format!("{} · {} {}", service_name(r.service, lang), l(T::Party), r.party_size);
                if !h.agency_contact.is_empty() {
                    let _ = write!(line, " · {}: {}", l(T::AgencyContact), esc(&h.agency_contact));
                }
                if !h.note.is_empty() {
                    let _ = write!(line, " · {}: {}", l(T::Note), esc(&h.note));
                }
                let _ = write!(out, "<li data-referral=\"{}\">{line}</li>", esc(&r.referral_id));
            }
            out += "</ul>";
        }
        out += "</article>";
    }
    out
}

/// The caller's sites and their referrals, live.
pub(crate) struct Sites;

impl Live for Sites {
    type Role = ForProvider;
    type Data = Vec<(cap::Provider, Vec<cap::Referral>)>;
    const PATH: &'static str = "/provider";
    const SERVICE: &'static str = "capacity";
    const TITLE: T = T::Sites;

    async fn load(c: &Console, s: &Session) -> Result<Self::Data, tonic::Status> {
        load(c, s).await
    }

    fn show(s: &Session, sites: &Self::Data) -> String {
        sites_html(s, sites)
    }

    /// One change per referral change at the caller's sites.
    async fn watch(c: &Console, s: &Session, sites: Self::Data) -> Changes {
        let mut watches: Changes = Vec::new();
        for (site, referrals) in sites {
            let watch = cap::WatchReferralsRequest {
                provider_id: site.provider_id,
                after_position: referrals.iter().map(|r| r.position).max().unwrap_or(0),
            };
            if let Ok(stream) = c.capacity_client().watch_referrals(authed(&s.token, watch)).await {
                watches.push(stream.into_inner().map(|r| r.map(|r| r.referral_id)).boxed());
            }
        }
        watches
    }
}

async fn capacity(
    State(c): State<Console>,
    As(s, _): As<ForProvider>,
    Path(site): Path<String>,
    body: Bytes,
) -> Response {
    let f = form(&body);
    let service: i32 = field(&f, "service").parse().unwrap_or(0);
    let key = random_id()[..32].to_owned();
    let mut client = c.capacity_client();
    let act = async {
        Some(
            match (field(&f, "delta").parse::<i32>(), field(&f, "set").parse::<u32>()) {
                (Ok(delta), _) => {
                    let r = cap::AdjustCapacityRequest {
                        idempotency_key: key,
                        provider_id: site,
                        service,
                        delta,
                    };
                    client.adjust_capacity(authed(&s.token, r)).await.map(|_| ())
                }
                (_, Ok(declared)) => {
                    let r = cap::SetCapacityRequest {
                        idempotency_key: key,
                        provider_id: site,
                        service,
                        declared,
                        expected_version: None,
                    };
                    client.set_capacity(authed(&s.token, r)).await.map(|_| ())
                }
                _ => Err(tonic::Status::invalid_argument("invalid declared: a number of units")),
            },
        )
    };
    live::action::<Sites, _>(&s, &f, act).await
}

async fn site_action(
    State(c): State<Console>,
    As(s, _): As<ForProvider>,
    Path((site, action)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let key = random_id()[..32].to_owned();
    let mut client = c.capacity_client();
    let act = async {
        Some(match action.as_str() {
            "suspend" => client
                .suspend_provider(authed(
                    &s.token,
                    cap::SuspendProviderRequest {
                        idempotency_key: key,
                        provider_id: site,
                    },
                ))
                .await
                .map(|_| ()),
            "resume" => client
                .resume_provider(authed(
                    &s.token,
                    cap::ResumeProviderRequest {
                        idempotency_key: key,
                        provider_id: site,
                    },
                ))
                .await
                .map(|_| ()),
            _ => return None,
        })
    };
    live::action::<Sites, _>(&s, &form(&body), act).await
}

async fn answer(
    State(c): State<Console>,
    As(s, _): As<ForProvider>,
    Path((site, referral, answer)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    let f = form(&body);
    // One key per referral and answer: a double tap answers once.
    let key = format!("console-{answer}-{}", referral.chars().take(40).collect::<String>());
    let mut client = c.capacity_client();
    let act = async {
        Some(match answer.as_str() {
            "accept" => {
                let r = cap::AcceptReferralRequest {
                    idempotency_key: key,
                    provider_id: site,
                    referral_id: referral,
                    handoff: field(&f, "handoff").trim().to_owned(),
                };
                client.accept_referral(authed(&s.token, r)).await.map(|_| ())
            }
            "decline" => {
                let reason = match field(&f, "reason") {
                    "no_capacity" => refer_proto::common::v1::DeclineReason::NoCapacity,
                    "not_eligible" => refer_proto::common::v1::DeclineReason::NotEligible,
                    "safety_concern" => refer_proto::common::v1::DeclineReason::SafetyConcern,
                    _ => refer_proto::common::v1::DeclineReason::Other,
                };
                let r = cap::DeclineReferralRequest {
                    idempotency_key: key,
                    provider_id: site,
                    referral_id: referral,
                    reason: reason as i32,
                };
                client.decline_referral(authed(&s.token, r)).await.map(|_| ())
            }
            _ => return None,
        })
    };
    live::action::<Sites, _>(&s, &form(&body), act).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use refer_client::Role;

    fn referral(id: &str, person: &str, urgency: pb::Urgency, deadline_ms: i64) -> cap::Referral {
        cap::Referral {
            referral_id: id.into(),
            person: person.into(),
            urgency: urgency as i32,
            deadline_ms,
            ..Default::default()
        }
    }

    #[test]
    fn referrals_make_one_card_per_person_the_most_urgent_then_the_soonest_due_first() {
        let s = Session::for_tests(Role::Provider);
        let (a1, a2) = (
            referral("a1", "a", pb::Urgency::Routine, 10),
            referral("a2", "a", pb::Urgency::Routine, 5),
        );
        let b = referral("b", "b", pb::Urgency::Immediate, 90);
        let c = referral("c", "c", pb::Urgency::Immediate, 60);
        let page = people_html(&s, "site", &[&a1, &b, &a2, &c]);
        let order: Vec<&str> = page
            .split("data-person=\"")
            .skip(1)
            .map(|p| p.split('"').next().unwrap())
            .collect();
        assert_eq!(order, ["c", "b", "a"]);
        let a_card = page.split("data-person=\"a\"").nth(1).unwrap();
        assert!(a_card.contains("data-referral=\"a1\"") && a_card.contains("data-referral=\"a2\""));
        // Referrals without a tag (before tags existed) are a card each.
        let (x, y) = (
            referral("x", "", pb::Urgency::Soon, 1),
            referral("y", "", pb::Urgency::Soon, 2),
        );
        assert_eq!(
            people_html(&s, "site", &[&x, &y]).matches("class=\"person\"").count(),
            2
        );
    }
}
