//! Intake staff's pages: the agency's placements, each need's status live,
//! and a new placement for one person or a group, in a few taps.

use crate::html::{self, checkboxes, csrf, esc, http_status, page, problem, select, time};
use crate::i18n::{Lang, T};
use crate::live::{self, Changes, Live};
use crate::places::{location, place_fields};
use crate::session::{random_id, Session};
use crate::{check_csrf, form, html as respond, Console, Filled};
use crate::{As, ForIntake};
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use futures::StreamExt;
use refer_client::tokens::authed;
use refer_proto::common::v1 as pb;
use refer_proto::intake::v1 as ik;
use std::fmt::Write;

pub fn routes() -> Router<Console> {
    Router::new()
        .merge(live::routes::<Placements>())
        .route("/intake/new", get(new_form).post(request))
        .route("/intake/needs/{need}/cancel", get(confirm_cancel).post(cancel))
        .route("/intake/needs/{need}/{action}", post(need_action))
}

const NEEDS: &[(&str, pb::NeedKind, T)] = &[
    ("shelter", pb::NeedKind::Shelter, T::NeedShelter),
    ("medical", pb::NeedKind::Medical, T::NeedMedical),
    ("counseling", pb::NeedKind::Counseling, T::NeedCounseling),
    ("legal", pb::NeedKind::Legal, T::NeedLegal),
    ("transport", pb::NeedKind::Transport, T::NeedTransport),
    ("audio_visual", pb::NeedKind::AudioVisual, T::NeedAudioVisual),
];

const ACCESS: &[(&str, pb::Accessibility, T)] = &[
    ("wheelchair", pb::Accessibility::Wheelchair, T::Wheelchair),
    ("sign_language", pb::Accessibility::SignLanguage, T::SignLanguage),
    ("visual", pb::Accessibility::VisualImpairment, T::VisualImpairment),
    ("service_animal", pb::Accessibility::ServiceAnimal, T::ServiceAnimal),
];

pub fn need_name(kind: i32, lang: Lang) -> &'static str {
    NEEDS
        .iter()
        .find(|(_, k, _)| *k as i32 == kind)
        .map_or("?", |(_, _, t)| t.get(lang))
}

fn status_name(status: i32, lang: Lang) -> &'static str {
    use ik::NeedStatus as S;
    match S::try_from(status).unwrap_or(S::Unspecified) {
        S::Requested | S::Unspecified => T::StatusRequested,
        S::Proposed => T::StatusProposed,
        S::Accepted => T::StatusAccepted,
        S::Declined => T::StatusDeclined,
        S::Expired => T::StatusExpired,
        S::Waitlisted => T::StatusWaitlisted,
        S::Cancelled => T::StatusCancelled,
        S::Fulfilled => T::StatusFulfilled,
    }
    .get(lang)
}

/// Where an accepted person goes, in the reader's language: the site's
/// name, or what was donated.
fn place_name(h: &ik::Handoff, lang: Lang) -> String {
    use pb::ResourceKind as R;
    let donated = match R::try_from(h.resource).unwrap_or(R::Unspecified) {
        R::Unspecified => return esc(&h.site_name),
        R::HotelRoomNight => T::DonatedHotelRoom,
        R::Vehicle => T::DonatedVehicle,
        R::RentalCar => T::DonatedRentalCar,
        R::AudioVisual => T::DonatedAudioVisual,
    };
    donated.get(lang).to_owned()
}

/// The hand-off of an accepted need, first on the page and full width:
/// where to bring the person, then who meets them and a phone to tap.
/// Nothing when there is nothing to say yet.
fn handoff_html(n: &ik::NeedUpdate, lang: Lang) -> String {
    if n.status != ik::NeedStatus::Accepted as i32 {
        return String::new();
    }
    let Some(h) = n.handoff.as_ref().filter(|h| !h.erased && !h.instructions.is_empty()) else {
        return String::new();
    };
    format!(
        "<section class=\"handoff\" aria-label=\"{for_} {kind}\"><p class=\"where\">{bring} <strong>{place}</strong> \
         <span class=\"kind\">({kind})</span></p><p class=\"instructions\">{text}</p></section>",
        for_ = T::HandoffFor.get(lang),
        kind = need_name(n.kind, lang),
        bring = T::BringTo.get(lang),
        place = place_name(h, lang),
        text = html::with_phones(&h.instructions),
    )
}

/// What a need waits on, or where the person goes once accepted (the
/// hand-off itself is shown above the table).
fn detail(n: &ik::NeedUpdate, lang: Lang) -> String {
    if let Some(h) = &n.handoff {
        if h.erased {
            return esc(T::HandoffErased.get(lang));
        }
        let place = place_name(h, lang);
        if !h.instructions.is_empty() {
            return format!("{} <strong>{place}</strong>", T::BringTo.get(lang));
        }
        if !place.is_empty() {
            return format!("<strong>{place}</strong>: {}", T::HandoffPending.get(lang));
        }
    }
    if let Some(w) = &n.waiting_for {
        let waits = format!("{} {}", T::WaitsNear.get(lang), esc(&w.region));
        return match w.held_until_ms {
            0 => waits,
            ms => format!(
                "{waits}: {} <time data-deadline=\"{ms}\">{}</time>",
                T::HeldForUrgent.get(lang),
                time(ms)
            ),
        };
    }
    if n.deadline_ms != 0 {
        return format!(
            "{} <time data-deadline=\"{ms}\">{}</time>",
            T::AnswerDue.get(lang),
            time(n.deadline_ms),
            ms = n.deadline_ms
        );
    }
    String::new()
}

/// What happened to a need, oldest first: each change of status with its
/// time, a decline with the provider's coded reason. Open when something
/// went wrong (a decline, no answer) so it is seen without a tap.
fn timeline_html(n: &ik::NeedUpdate, lang: Lang) -> String {
    use ik::NeedStatus as S;
    if n.timeline.len() < 2 {
        return String::new();
    }
    let troubled = n
        .timeline
        .iter()
        .any(|step| [S::Declined as i32, S::Expired as i32].contains(&step.status));
    let mut out = format!(
        "<details class=\"timeline\"{}><summary>{}</summary><ol>",
        if troubled { " open" } else { "" },
        T::WhatHappened.get(lang)
    );
    for step in &n.timeline {
        use pb::DeclineReason as R;
        let reason = match R::try_from(step.decline_reason).unwrap_or(R::Unspecified) {
            R::Unspecified => String::new(),
            R::NoCapacity => format!(": {}", T::NoCapacity.get(lang)),
            R::NotEligible => format!(": {}", T::NotEligible.get(lang)),
            R::SafetyConcern => format!(": {}", T::SafetyConcern.get(lang)),
            R::Other => format!(": {}", T::Other.get(lang)),
        };
        let _ = write!(
            out,
            "<li><time>{}</time> {}{reason}</li>",
            time(step.at_ms),
            status_name(step.status, lang)
        );
    }
    out + "</ol></details>"
}

fn placements_html(s: &Session, placements: &[ik::Placement]) -> String {
    let lang = s.lang;
    let l = |t: T| t.get(lang);
    if placements.is_empty() {
        return format!("<p>{}</p>", l(T::NoPlacements));
    }
    let mut out = String::new();
    // People recovered together are one party: their placements side by
    // side under one heading, not unrelated cases.
    let mut parties_shown: Vec<&str> = Vec::new();
    for p in placements {
        if p.group_id.is_empty() {
            out += &placement_html(s, p, 2);
            continue;
        }
        if parties_shown.contains(&p.group_id.as_str()) {
            continue;
        }
        parties_shown.push(&p.group_id);
        let members: Vec<&ik::Placement> = placements.iter().filter(|m| m.group_id == p.group_id).collect();
        let _ = write!(
            out,
            "<section class=\"party\" data-group=\"{id}\"><h2>{group} {n} {people}</h2>",
            id = esc(&p.group_id),
            group = l(T::GroupOf),
            n = members.len(),
            people = l(T::People),
        );
        for m in members {
            out += &placement_html(s, m, 3);
        }
        out += "</section>";
    }
    out
}

/// One person's placement: their needs, each with its status, what
/// happened, where to go and what can be done; headed at `level`.
fn placement_html(s: &Session, p: &ik::Placement, level: u8) -> String {
    let lang = s.lang;
    let l = |t: T| t.get(lang);
    let mut out = String::new();
    let _ = write!(
        out,
        "<article class=\"placement\" data-placement=\"{id}\"><h{level}>{case} {reference}</h{level}>",
        id = esc(&p.placement_id),
        case = l(T::Case),
        reference = esc(&p.case_reference),
    );
    let table = format!(
        "<table><thead><tr><th scope=\"col\">{need}</th><th scope=\"col\">{status}</th>\
         <th scope=\"col\">{detail}</th><th scope=\"col\"><span class=\"visually-hidden\">{actions}</span></th></tr></thead><tbody>",
        need = l(T::Need),
        status = l(T::Status),
        detail = l(T::Detail),
        actions = l(T::Actions),
    );
    for n in &p.needs {
        out += &handoff_html(n, lang);
    }
    out += &table;
    for n in &p.needs {
        let open = ![ik::NeedStatus::Cancelled as i32, ik::NeedStatus::Fulfilled as i32].contains(&n.status);
        let accepted = n.status == ik::NeedStatus::Accepted as i32;
        let mut actions = String::new();
        if accepted {
            let _ = write!(
                actions,
                "<form method=\"post\" action=\"/intake/needs/{id}/fulfil\">{csrf}<button type=\"submit\">{}</button></form>",
                l(T::Arrived),
                id = esc(&n.need_id),
                csrf = csrf(s)
            );
        }
        if open {
            let _ = write!(
                actions,
                // A page that asks first: cancelling is never one tap away.
                "<a class=\"button quiet\" href=\"/intake/needs/{id}/cancel?placement={placement}\">{}</a>",
                l(T::Cancel),
                id = esc(&n.need_id),
                placement = esc(&p.placement_id),
            );
        }
        let _ = write!(
            out,
            "<tr data-need=\"{id}\" data-status=\"{code}\"><td>{kind}</td><td class=\"status\"><span class=\"state\">{status}</span>{timeline}</td>\
             <td>{detail}</td><td class=\"actions\">{actions}</td></tr>",
            id = esc(&n.need_id),
            code = n.status,
            kind = need_name(n.kind, lang),
            status = status_name(n.status, lang),
            timeline = timeline_html(n, lang),
            detail = detail(n, lang),
        );
    }
    out.push_str("</tbody></table></article>");
    out
}

/// The agency's latest placements (the page shows 20).
async fn latest(c: &Console, s: &Session) -> Result<Vec<ik::Placement>, tonic::Status> {
    let list = ik::ListPlacementsRequest {
        page_size: 20,
        page_token: String::new(),
    };
    Ok(c.intake_client()
        .list_placements(authed(&s.token, list))
        .await?
        .into_inner()
        .placements)
}

/// The agency's placements, each need's status live.
pub(crate) struct Placements;

impl Live for Placements {
    type Role = ForIntake;
    type Data = Vec<ik::Placement>;
    const PATH: &'static str = "/intake";
    const SERVICE: &'static str = "intake";
    const TITLE: T = T::Placements;
    const DONE: Option<(&'static str, T)> = Some(("requested=1", T::Requested));
    const NEW: Option<(&'static str, T)> = Some(("/intake/new", T::NewPlacement));

    async fn load(c: &Console, s: &Session) -> Result<Self::Data, tonic::Status> {
        latest(c, s).await
    }

    fn show(s: &Session, placements: &Self::Data) -> String {
        placements_html(s, placements)
    }

    /// One change per need change of the listed placements.
    async fn watch(c: &Console, s: &Session, placements: Self::Data) -> Changes {
        let mut watches: Changes = Vec::new();
        for p in placements {
            let watch = ik::WatchPlacementRequest {
                placement_id: p.placement_id,
                after_position: p.needs.iter().map(|n| n.position).max().unwrap_or(0),
            };
            if let Ok(stream) = c.intake_client().watch_placement(authed(&s.token, watch)).await {
                watches.push(stream.into_inner().map(|u| u.map(|u| u.need_id)).boxed());
            }
        }
        watches
    }
}

fn people_count(query: Option<&str>, filled: &Filled) -> usize {
    let from_query = query
        .and_then(|q| form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "people"))
        .and_then(|(_, v)| v.parse().ok());
    from_query
        .or_else(|| filled.get("people").parse().ok())
        .unwrap_or(1usize)
        .clamp(1, 20)
}

fn person_fields(i: usize, lang: Lang, f: &Filled) -> String {
    let l = |t: T| t.get(lang);
    let p = |name: &str| format!("p{i}.{name}");
    let mut out = format!("<fieldset><legend>{} {}</legend>", l(T::Person), i + 1);
    let _ = write!(
        out,
        "<label for=\"{id}\">{label}</label><input id=\"{id}\" name=\"{id}\" maxlength=\"64\" value=\"{v}\" autocomplete=\"off\">",
        id = p("case"),
        label = l(T::CaseReference),
        v = esc(f.get(&p("case")))
    );
    let needs: Vec<(&str, &str)> = NEEDS.iter().map(|(v, _, t)| (*v, t.get(lang))).collect();
    out += &checkboxes(&p("needs"), l(T::Needs), &needs, f, &[]);
    out += &select(
        &p("age"),
        l(T::Age),
        &[("adult", l(T::Adult)), ("juvenile", l(T::Juvenile))],
        f.get(&p("age")),
    );
    out += &select(
        &p("gender"),
        l(T::Gender),
        &[
            ("female", l(T::Female)),
            ("male", l(T::Male)),
            ("non_binary", l(T::NonBinary)),
        ],
        f.get(&p("gender")),
    );
    out += &crate::languages::fields(&p("languages"), l(T::Languages), l(T::OtherLanguages), lang, f, &["en"]);
    let access: Vec<(&str, &str)> = ACCESS.iter().map(|(v, _, t)| (*v, t.get(lang))).collect();
    out += &checkboxes(&p("access"), l(T::Accessibility), &access, f, &[]);
    let party = match f.get(&p("party")) {
        "" => "1",
        v => v,
    };
    let _ = write!(
        out,
        "<label for=\"{id}\">{label}</label><input id=\"{id}\" name=\"{id}\" type=\"number\" min=\"1\" max=\"20\" value=\"{v}\">",
        id = p("party"),
        label = l(T::PartySize),
        v = esc(party)
    );
    out + "</fieldset>"
}

fn new_form_html(s: &Session, people: usize, f: &Filled, message: &str) -> String {
    let lang = s.lang;
    let l = |t: T| t.get(lang);
    let key = match f.get("key") {
        "" => random_id()[..32].to_owned(),
        k => k.to_owned(),
    };
    let mut out = message.to_owned();
    let _ = write!(
        out,
        "<form method=\"get\" action=\"/intake/new\" class=\"people\"><label for=\"people\">{}</label>\
         <input id=\"people\" name=\"people\" type=\"number\" min=\"1\" max=\"20\" value=\"{people}\">\
         <button type=\"submit\" class=\"quiet\">{}</button></form>",
        l(T::HowManyPeople),
        l(T::ShowForms)
    );
    let _ = write!(
        out,
        "<form method=\"post\" action=\"/intake/new\" class=\"request\">{csrf}\
         <input type=\"hidden\" name=\"key\" value=\"{key}\"><input type=\"hidden\" name=\"people\" value=\"{people}\">",
        csrf = csrf(s),
        key = esc(&key)
    );
    for i in 0..people {
        out += &person_fields(i, lang, f);
    }
    let _ = write!(out, "<fieldset><legend>{}</legend>", l(T::WhereNow));
    out += &place_fields(lang, f);
    let max_km = match f.get("max_km") {
        "" => "80",
        v => v,
    };
    let _ = write!(
        out,
        "<label for=\"max_km\">{}</label><input id=\"max_km\" name=\"max_km\" type=\"number\" min=\"1\" max=\"2000\" value=\"{}\">",
        l(T::MaxKm),
        esc(max_km),
    );
    out += &crate::places::county_fields("avoid", l(T::Avoid), lang, f);
    out += "</fieldset>";
    out += &select(
        "urgency",
        l(T::Urgency),
        &[
            ("immediate", l(T::Immediate)),
            ("soon", l(T::Soon)),
            ("routine", l(T::Routine)),
        ],
        f.get("urgency"),
    );
    if people > 1 {
        out += &select(
            "cohesion",
            l(T::Together),
            &[
                ("any", l(T::EitherWay)),
                ("together", l(T::KeepTogether)),
                ("apart", l(T::KeepApart)),
            ],
            f.get("cohesion"),
        );
    }
    let _ = write!(
        out,
        "<button type=\"submit\">{}</button></form>",
        l(T::RequestPlacement)
    );
    out
}

async fn new_form(As(s, _): As<ForIntake>, RawQuery(query): RawQuery) -> Response {
    let filled = Filled(vec![]);
    let people = people_count(query.as_deref(), &filled);
    let body = new_form_html(&s, people, &filled, "");
    respond(page(s.lang, T::NewPlacement.get(s.lang), Some(&s), &body)).into_response()
}

/// A field the intake service names (`people[1].needs`), as the form names
/// it ("Person 2, Needs"); the place, distance, counties and urgency are the
/// whole request's.
fn field_label(path: &str, lang: Lang) -> Option<String> {
    let (person, rest) = match (path.strip_prefix("person."), path.strip_prefix("people[")) {
        (Some(rest), _) => (Some(0), rest),
        (None, Some(rest)) => {
            let (i, rest) = rest.split_once("].")?;
            (Some(i.parse::<usize>().ok()?), rest)
        }
        (None, None) => (None, path),
    };
    let mut parts = rest.split(['.', '[']);
    let (first, second) = (parts.next()?, parts.next().unwrap_or(""));
    let (label, own) = match (first, second) {
        ("case_reference", _) => (T::CaseReferenceShort, true),
        ("needs", _) => (T::Needs, true),
        ("profile", "age_band") => (T::Age, true),
        ("profile", "gender") => (T::Gender, true),
        ("profile", "languages") => (T::Languages, true),
        ("profile", "accessibility") => (T::Accessibility, true),
        ("profile", "party_size") => (T::PartySize, true),
        ("constraints", "origin") => (T::WhereNow, false),
        ("constraints", "max_distance_km") => (T::MaxKm, false),
        ("constraints", "avoid_regions") => (T::Avoid, false),
        ("urgency", _) => (T::Urgency, false),
        ("cohesion", _) => (T::Together, false),
        ("people", _) => (T::HowManyPeople, false),
        _ => return None,
    };
    Some(match person {
        Some(i) if own => format!("{} {}, {}", T::Person.get(lang), i + 1, label.get(lang)),
        _ => label.get(lang).to_owned(),
    })
}

/// Person `i` of the form; a language typed that is no language of the
/// list is the error, as typed.
fn person(i: usize, f: &Filled, origin: &pb::Location) -> Result<ik::PersonRequest, String> {
    let p = |name: &str| format!("p{i}.{name}");
    let languages = crate::languages::chosen(&p("languages"), f)?;
    let urgency = match f.get("urgency") {
        "soon" => pb::Urgency::Soon,
        "routine" => pb::Urgency::Routine,
        _ => pb::Urgency::Immediate,
    };
    Ok(ik::PersonRequest {
        case_reference: f.get(&p("case")).trim().to_owned(),
        profile: Some(pb::Profile {
            age_band: match f.get(&p("age")) {
                "juvenile" => pb::AgeBand::Juvenile,
                _ => pb::AgeBand::Adult,
            } as i32,
            gender: match f.get(&p("gender")) {
                "male" => pb::Gender::Male,
                "non_binary" => pb::Gender::NonBinary,
                _ => pb::Gender::Female,
            } as i32,
            languages,
            accessibility: ACCESS
                .iter()
                .filter(|(v, ..)| f.has(&p("access"), v))
                .map(|(_, a, _)| *a as i32)
                .collect(),
            party_size: f.get(&p("party")).parse().unwrap_or(1),
        }),
        constraints: Some(pb::Constraints {
            origin: Some(origin.clone()),
            max_distance_km: f.get("max_km").parse().ok(),
            avoid_regions: crate::places::counties("avoid", f),
            needed_by_ms: None,
        }),
        urgency: urgency as i32,
        needs: NEEDS
            .iter()
            .filter(|(v, ..)| f.has(&p("needs"), v))
            .map(|(_, k, _)| *k as i32)
            .collect(),
    })
}

async fn request(State(c): State<Console>, As(s, _): As<ForIntake>, body: Bytes) -> Response {
    let f = Filled(form(&body));
    if let Err(refusal) = check_csrf(&s, &f.0) {
        return refusal;
    }
    let people = people_count(None, &f);
    // The form again, as filled, with what was wrong and the status saying so.
    let again = |code: StatusCode, message: String| {
        let body = new_form_html(&s, people, &f, &message);
        (
            code,
            respond(page(s.lang, T::NewPlacement.get(s.lang), Some(&s), &body)),
        )
            .into_response()
    };
    let origin = match location(&f) {
        Ok(o) => o,
        Err(none) => {
            let text = format!(
                "{} {}",
                T::CouldNot.get(s.lang),
                none.say(s.lang, T::WhereNow.get(s.lang))
            );
            return again(StatusCode::UNPROCESSABLE_ENTITY, html::alert(&text));
        }
    };
    let mut persons = Vec::with_capacity(people);
    for i in 0..people {
        match person(i, &f, &origin) {
            Ok(p) => persons.push(p),
            Err(typed) => {
                let text = format!(
                    "{} {} {}, {}: {}",
                    T::CouldNot.get(s.lang),
                    T::Person.get(s.lang),
                    i + 1,
                    T::OtherLanguages.get(s.lang),
                    T::NotALanguage.get(s.lang).replace("{}", &typed)
                );
                return again(StatusCode::UNPROCESSABLE_ENTITY, html::alert(&text));
            }
        }
    }
    let key = f.get("key").to_owned();
    let mut client = c.intake_client();
    let answer = if people == 1 {
        let r = ik::RequestPlacementRequest {
            idempotency_key: key,
            person: persons.pop(),
        };
        client.request_placement(authed(&s.token, r)).await.map(|_| ())
    } else {
        let r = ik::RequestGroupRequest {
            idempotency_key: key,
            cohesion: match f.get("cohesion") {
                "together" => ik::Cohesion::KeepTogether,
                "apart" => ik::Cohesion::KeepApart,
                _ => ik::Cohesion::Unspecified,
            } as i32,
            people: persons,
        };
        client.request_group(authed(&s.token, r)).await.map(|_| ())
    };
    match answer {
        Ok(()) => Redirect::to("/intake?requested=1").into_response(),
        Err(status) => again(
            http_status(&status),
            html::refusal(s.lang, "intake", &status, |path| field_label(path, s.lang)),
        ),
    }
}

/// Asks before cancelling a need: what is cancelled (the need and its
/// case), what that does, and a way back. A need that is not the agency's
/// (or not there) is 404; one that is over (cancelled, arrived) is 409.
async fn confirm_cancel(
    State(c): State<Console>,
    As(s, _): As<ForIntake>,
    Path(need): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let l = |t: T| t.get(s.lang);
    let title = l(T::CancelAsk);
    let answer = |code: StatusCode, body: String| (code, respond(page(s.lang, title, Some(&s), &body))).into_response();
    // The placement the link named (read as the agency: another's is not
    // found), else the latest ones; a need in neither is not this agency's.
    let placement = query
        .as_deref()
        .and_then(|q| form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "placement"))
        .map(|(_, v)| v.into_owned());
    let placements = match placement {
        Some(id) => {
            let get = ik::GetPlacementRequest { placement_id: id };
            let mut client = c.intake_client();
            client
                .get_placement(authed(&s.token, get))
                .await
                .map(|p| vec![p.into_inner()])
        }
        None => latest(&c, &s).await,
    };
    let found = match placements {
        Ok(placements) => placements.into_iter().find_map(|p| {
            let n = p.needs.iter().find(|n| n.need_id == need)?;
            Some((p.case_reference.clone(), n.kind, n.status))
        }),
        Err(status) if matches!(status.code(), tonic::Code::NotFound | tonic::Code::InvalidArgument) => None,
        Err(status) => return answer(http_status(&status), problem(s.lang, "intake", &status)),
    };
    let Some((case, kind, status)) = found else {
        return answer(StatusCode::NOT_FOUND, html::alert(T::NotFound.get(s.lang)));
    };
    let what = format!("{} · {} {}", need_name(kind, s.lang), l(T::Case), esc(&case));
    if [ik::NeedStatus::Cancelled as i32, ik::NeedStatus::Fulfilled as i32].contains(&status) {
        let body = format!(
            "<p class=\"subject\">{what}</p>{}<p><a href=\"/intake\">{}</a></p>",
            html::alert(&format!("{}: {}", l(T::NothingToCancel), status_name(status, s.lang))),
            l(T::BackToPlacements)
        );
        return answer(StatusCode::CONFLICT, body);
    }
    let body = format!(
        "<h2>{ask}</h2><p class=\"subject\">{what}</p><p>{means}</p>\
         <form method=\"post\" action=\"/intake/needs/{id}/cancel\">{csrf}\
         <button type=\"submit\">{yes}</button>\
         <a class=\"button quiet\" href=\"/intake\">{keep}</a></form>",
        ask = l(T::CancelAsk),
        means = l(T::CancelMeans),
        id = esc(&need),
        csrf = csrf(&s),
        yes = l(T::CancelYes),
        keep = l(T::CancelKeep),
    );
    answer(StatusCode::OK, body)
}

/// The question's answer: cancel it.
async fn cancel(c: State<Console>, s: As<ForIntake>, Path(need): Path<String>, body: Bytes) -> Response {
    need_action(c, s, Path((need, "cancel".to_owned())), body).await
}

async fn need_action(
    State(c): State<Console>,
    As(s, _): As<ForIntake>,
    Path((need, action)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    // One key per need and action: a double tap acts once.
    let key = format!("console-{action}-{}", need.chars().take(40).collect::<String>());
    let mut client = c.intake_client();
    let act = async {
        Some(match action.as_str() {
            "cancel" => client
                .cancel_need(authed(
                    &s.token,
                    ik::CancelNeedRequest {
                        idempotency_key: key,
                        need_id: need,
                    },
                ))
                .await
                .map(|_| ()),
            "fulfil" => client
                .fulfil_need(authed(
                    &s.token,
                    ik::FulfilNeedRequest {
                        idempotency_key: key,
                        need_id: need,
                    },
                ))
                .await
                .map(|_| ()),
            _ => return None,
        })
    };
    live::action::<Placements, _>(&s, &form(&body), act).await
}
