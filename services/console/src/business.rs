//! Businesses' page: their donations (hotel room-nights, a truck, rental
//! cars, audio/video equipment) with quantity, window and conditions; the
//! hand-off an agency is told; withdraw; how many units were used and
//! when, never by whom.

use crate::html::{checkboxes, csrf, esc, http_status, local_time, page, problem, select, tag_if, when};
use crate::i18n::{Lang, T};
use crate::live::{self, Changes, Live};
use crate::places::{location, place_fields};
use crate::session::{random_id, Session};
use crate::{check_csrf, form, html as respond, Console, Filled};
use crate::{As, ForBusiness};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use futures::StreamExt;
use refer_client::tokens::authed;
use refer_proto::common::v1 as pb;
use refer_proto::donations::v1 as don;
use refer_proto::donations::v1::donations_client::DonationsClient;
use std::fmt::Write;

pub fn routes() -> Router<Console> {
    Router::new()
        .merge(live::routes::<Donations>())
        .route("/business/new", get(new_form).post(register))
        .route(
            "/business/donations/{donation}/handoff",
            get(handoff_form).post(set_handoff),
        )
        .route("/business/donations/{donation}/{action}", post(action))
}

const KINDS: &[(&str, pb::ResourceKind, T)] = &[
    ("hotel_room_night", pb::ResourceKind::HotelRoomNight, T::HotelRoomNights),
    ("vehicle", pb::ResourceKind::Vehicle, T::Vehicle),
    ("rental_car", pb::ResourceKind::RentalCar, T::RentalCar),
    ("audio_visual", pb::ResourceKind::AudioVisual, T::NeedAudioVisual),
];

fn kind_name(kind: i32, lang: Lang) -> &'static str {
    KINDS
        .iter()
        .find(|(_, k, _)| *k as i32 == kind)
        .map_or("?", |(_, _, t)| t.get(lang))
}

fn client(c: &Console) -> DonationsClient<tonic::transport::Channel> {
    DonationsClient::new(c.donations.clone())
}

fn donations_html(s: &Session, donations: &[don::Donation]) -> String {
    let lang = s.lang;
    let l = |t: T| t.get(lang);
    if donations.is_empty() {
        return format!("<p>{}</p>", l(T::NoDonations));
    }
    let mut out = String::new();
    for d in donations {
        let spec = d.spec.clone().unwrap_or_default();
        let id = esc(&d.donation_id);
        let window = spec.window.unwrap_or_default();
        let withdrawn = tag_if(d.withdrawn, l(T::Withdrawn));
        let _ = write!(
            out,
            "<article class=\"donation\" data-donation=\"{id}\"><h2>{kind}: {quantity}{withdrawn}</h2>\
             <p>{used} {used_text} · {held} {held_text} · {free} {free_text}</p>\
             <p>{from} {start} — {to} {end}</p>{offered}",
            offered = match d.as_of_ms {
                0 => String::new(),
                ms => format!("<p class=\"as-of\">{} {}</p>", l(T::Offered), local_time(ms)),
            },
            kind = kind_name(spec.kind, lang),
            quantity = spec.quantity,
            used = d.used,
            used_text = l(T::PlacedUnits),
            held = d.held,
            held_text = l(T::Held),
            free = d.free,
            free_text = l(T::Free),
            from = l(T::From),
            start = when(window.start_ms),
            to = l(T::Until),
            end = when(window.end_ms),
        );
        if !d.usage.is_empty() {
            let _ = write!(out, "<h3>{}</h3><ul>", l(T::UsedWhen));
            for u in &d.usage {
                let _ = write!(
                    out,
                    "<li>{}: {} × {}</li>",
                    when(u.at_ms),
                    u.units,
                    kind_name(spec.kind, lang)
                );
            }
            out += "</ul>";
        }
        if !d.withdrawn {
            let _ = write!(
                out,
                "<a class=\"button quiet\" href=\"/business/donations/{id}/handoff\">{handoff}</a>\
                 <form class=\"inline\" method=\"post\" action=\"/business/donations/{id}/withdraw\">{csrf}\
                 <button type=\"submit\" class=\"quiet\">{withdraw}</button></form>",
                csrf = csrf(s),
                handoff = l(T::EditHandoff),
                withdraw = l(T::Withdraw),
            );
        }
        out += "</article>";
    }
    out
}

/// The business's donations, their use live.
pub(crate) struct Donations;

impl Live for Donations {
    type Role = ForBusiness;
    type Data = Vec<don::Donation>;
    const PATH: &'static str = "/business";
    const SERVICE: &'static str = "donations";
    const TITLE: T = T::Donations;
    const AFTER: &'static str = "/business?saved=1";
    const DONE: Option<(&'static str, T)> = Some(("saved=1", T::Saved));
    const NEW: Option<(&'static str, T)> = Some(("/business/new", T::NewDonation));

    async fn load(c: &Console, s: &Session) -> Result<Self::Data, tonic::Status> {
        let list = don::ListDonationsRequest {
            page_size: 100,
            page_token: String::new(),
        };
        Ok(client(c)
            .list_donations(authed(&s.token, list))
            .await?
            .into_inner()
            .donations)
    }

    fn show(s: &Session, donations: &Self::Data) -> String {
        donations_html(s, donations)
    }

    /// One change per change of the business's donations (their use).
    async fn watch(c: &Console, s: &Session, donations: Self::Data) -> Changes {
        let watch = don::WatchDonationsRequest {
            after_position: donations.iter().map(|d| d.version).max().unwrap_or(0),
            ..Default::default()
        };
        match client(c).watch_donations(authed(&s.token, watch)).await {
            Ok(stream) => vec![stream.into_inner().map(|d| d.map(|d| d.donation_id)).boxed()],
            Err(_) => vec![],
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn new_form_html(s: &Session, f: &Filled, message: &str) -> String {
    let lang = s.lang;
    let l = |t: T| t.get(lang);
    let key = match f.get("key") {
        "" => random_id()[..32].to_owned(),
        k => k.to_owned(),
    };
    let value = |name: &str, default: &'static str| match f.get(name) {
        "" => default.to_owned(),
        v => esc(v),
    };
    // Hours are counted from when the form was first shown, so that a
    // retried submit sends the same offer under the same key.
    let at = match f.get("at") {
        "" => now_ms().to_string(),
        v => esc(v),
    };
    let kinds: Vec<(&str, &str)> = KINDS.iter().map(|(v, _, t)| (*v, t.get(lang))).collect();
    let mut out = message.to_owned();
    let _ = write!(
        out,
        "<form method=\"post\" action=\"/business/new\">{csrf}<input type=\"hidden\" name=\"key\" value=\"{key}\">\
         <input type=\"hidden\" name=\"at\" value=\"{at}\">{kind}\
         <label for=\"quantity\">{quantity}</label><input id=\"quantity\" name=\"quantity\" type=\"number\" min=\"1\" max=\"100000\" value=\"{q}\">\
         <label for=\"from\">{from}</label><input id=\"from\" name=\"from\" type=\"number\" min=\"0\" max=\"8760\" value=\"{from_v}\">\
         <label for=\"until\">{until}</label><input id=\"until\" name=\"until\" type=\"number\" min=\"1\" max=\"8784\" value=\"{until_v}\">\
         <label for=\"max\">{max}</label><input id=\"max\" name=\"max\" type=\"number\" min=\"0\" max=\"100000\" value=\"{max_v}\">",
        csrf = csrf(s),
        key = esc(&key),
        kind = select("kind", l(T::Kind), &kinds, f.get("kind")),
        quantity = l(T::Quantity),
        q = value("quantity", "1"),
        from = l(T::StartsInHours),
        from_v = value("from", "0"),
        until = l(T::EndsInHours),
        until_v = value("until", "168"),
        max = l(T::MaxPerPerson),
        max_v = value("max", "0"),
    );
    out += &checkboxes(
        "ages",
        l(T::Age),
        &[("adult", l(T::Adult)), ("juvenile", l(T::Juvenile))],
        f,
        &["adult", "juvenile"],
    );
    out += &checkboxes(
        "genders",
        l(T::Gender),
        &[
            ("female", l(T::Female)),
            ("male", l(T::Male)),
            ("non_binary", l(T::NonBinary)),
        ],
        f,
        &["female", "male", "non_binary"],
    );
    out += &crate::languages::fields(
        "languages",
        l(T::Languages),
        l(T::OtherLanguages),
        lang,
        f,
        &["en", "es"],
    );
    let _ = write!(
        out,
        "<fieldset><legend>{}</legend>{}</fieldset>",
        l(T::WhereDonation),
        place_fields(lang, f)
    );
    let _ = write!(
        out,
        "<label for=\"handoff\">{}</label><textarea id=\"handoff\" name=\"handoff\" maxlength=\"1024\" rows=\"3\">{}</textarea>\
         <button type=\"submit\">{}</button></form>",
        l(T::DonationHandoff),
        esc(f.get("handoff")),
        l(T::RegisterDonation)
    );
    out
}

async fn new_form(As(s, _): As<ForBusiness>) -> Response {
    let body = new_form_html(&s, &Filled(vec![]), "");
    respond(page(s.lang, T::NewDonation.get(s.lang), Some(&s), &body)).into_response()
}

/// A field the donations service names (`spec.eligibility.genders`), as
/// the form names it ("Gender").
fn field_label(path: &str, lang: Lang) -> Option<String> {
    let rest = path.strip_prefix("spec.")?;
    let label = match rest.split(['.', '[']).take(2).collect::<Vec<_>>()[..] {
        ["kind", ..] => T::Kind,
        ["quantity", ..] => T::Quantity,
        ["window", "start_ms"] => T::StartsInHours,
        ["window", ..] => T::EndsInHours,
        ["max_units_per_need", ..] => T::MaxPerPerson,
        ["eligibility", "age_bands"] => T::Age,
        ["eligibility", "genders"] => T::Gender,
        ["eligibility", "languages"] => T::Languages,
        ["location", ..] => T::WhereDonation,
        _ => return None,
    };
    Some(label.get(lang).to_owned())
}

async fn register(State(c): State<Console>, As(s, _): As<ForBusiness>, body: Bytes) -> Response {
    let f = Filled(form(&body));
    if let Err(refusal) = check_csrf(&s, &f.0) {
        return refusal;
    }
    // The form again, as filled, with what was wrong and the status saying so.
    let again = |code: StatusCode, message: String| {
        let body = new_form_html(&s, &f, &message);
        (code, respond(page(s.lang, T::NewDonation.get(s.lang), Some(&s), &body))).into_response()
    };
    let place = match location(&f) {
        Ok(place) => place,
        Err(none) => {
            return again(
                StatusCode::UNPROCESSABLE_ENTITY,
                crate::html::alert(&format!(
                    "{} {}",
                    T::CouldNot.get(s.lang),
                    none.say(s.lang, T::WhereDonation.get(s.lang))
                )),
            )
        }
    };
    let languages = match crate::languages::chosen("languages", &f) {
        Ok(languages) => languages,
        Err(typed) => {
            let text = format!(
                "{} {}: {}",
                T::CouldNot.get(s.lang),
                T::OtherLanguages.get(s.lang),
                T::NotALanguage.get(s.lang).replace("{}", &typed)
            );
            return again(StatusCode::UNPROCESSABLE_ENTITY, crate::html::alert(&text));
        }
    };
    let hours = |name: &str| f.get(name).parse::<i64>().unwrap_or(0);
    let now = f.get("at").parse::<i64>().unwrap_or_else(|_| now_ms());
    let spec = don::DonationSpec {
        org_id: String::new(),
        kind: KINDS
            .iter()
            .find(|(v, ..)| *v == f.get("kind"))
            .map_or(0, |(_, k, _)| *k as i32),
        quantity: f.get("quantity").parse().unwrap_or(0),
        window: Some(pb::TimeWindow {
            start_ms: now + hours("from") * 3_600_000,
            end_ms: now + hours("until") * 3_600_000,
        }),
        location: Some(place),
        max_units_per_need: f.get("max").parse().unwrap_or(0),
        eligibility: Some(pb::Eligibility {
            age_bands: [("adult", pb::AgeBand::Adult), ("juvenile", pb::AgeBand::Juvenile)]
                .iter()
                .filter(|(v, _)| f.has("ages", v))
                .map(|(_, a)| *a as i32)
                .collect(),
            genders: [
                ("female", pb::Gender::Female),
                ("male", pb::Gender::Male),
                ("non_binary", pb::Gender::NonBinary),
            ]
            .iter()
            .filter(|(v, _)| f.has("genders", v))
            .map(|(_, g)| *g as i32)
            .collect(),
            languages,
            accessibility: vec![],
            service_area: None,
        }),
    };
    let request = don::RegisterDonationRequest {
        idempotency_key: f.get("key").to_owned(),
        donation_id: uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, f.get("key").as_bytes()).to_string(),
        spec: Some(spec),
    };
    let donation = match client(&c).register_donation(authed(&s.token, request)).await {
        Ok(done) => done.into_inner().donation_id,
        Err(status) => {
            let said = crate::html::refusal(s.lang, "donations", &status, |path| field_label(path, s.lang));
            return again(http_status(&status), said);
        }
    };
    let handoff = f.get("handoff");
    if handoff.trim().is_empty() {
        return Redirect::to("/business?saved=1").into_response();
    }
    // Offered; its hand-off goes with it, under a key of its own (a retried
    // submit sets it once). Refused, the hand-off page keeps what was typed.
    let key = format!("{}-handoff", f.get("key"));
    save_handoff(&c, &s, &donation, handoff, key).await
}

/// The hand-off page: what an agency will be told (sealed; shown only to
/// an agency whose need this donation serves), as it is now, to edit.
fn handoff_html(s: &Session, donation: &str, text: &str, message: &str) -> String {
    let l = |t: T| t.get(s.lang);
    format!(
        "{message}<form method=\"post\" action=\"/business/donations/{id}/handoff\">{csrf}\
         <input type=\"hidden\" name=\"key\" value=\"{key}\">\
         <label for=\"instructions\">{label}</label>\
         <textarea id=\"instructions\" name=\"instructions\" maxlength=\"1024\" rows=\"4\">{text}</textarea>\
         <button type=\"submit\">{save}</button><a class=\"button quiet\" href=\"/business\">{back}</a></form>",
        id = esc(donation),
        csrf = csrf(s),
        key = &random_id()[..32],
        label = l(T::DonationHandoff),
        text = esc(text),
        save = l(T::Save),
        back = l(T::BackToDonations),
    )
}

async fn handoff_form(State(c): State<Console>, As(s, _): As<ForBusiness>, Path(donation): Path<String>) -> Response {
    let title = T::EditHandoff.get(s.lang);
    let get = don::GetDonationHandoffRequest {
        donation_id: donation.clone(),
    };
    match client(&c).get_donation_handoff(authed(&s.token, get)).await {
        Ok(h) => {
            let body = handoff_html(&s, &donation, &h.into_inner().instructions, "");
            respond(page(s.lang, title, Some(&s), &body)).into_response()
        }
        Err(status) => {
            let body = problem(s.lang, "donations", &status);
            (http_status(&status), respond(page(s.lang, title, Some(&s), &body))).into_response()
        }
    }
}

async fn set_handoff(
    State(c): State<Console>,
    As(s, _): As<ForBusiness>,
    Path(donation): Path<String>,
    body: Bytes,
) -> Response {
    let f = Filled(form(&body));
    if let Err(refusal) = check_csrf(&s, &f.0) {
        return refusal;
    }
    save_handoff(&c, &s, &donation, f.get("instructions"), f.get("key").to_owned()).await
}

/// Sets the donation's hand-off, then back to the donations (a reload
/// repeats nothing); refused, the hand-off page again as typed.
async fn save_handoff(c: &Console, s: &Session, donation: &str, text: &str, key: String) -> Response {
    let r = don::SetDonationHandoffRequest {
        idempotency_key: key,
        donation_id: donation.to_owned(),
        instructions: text.to_owned(),
    };
    match client(c).set_donation_handoff(authed(&s.token, r)).await {
        Ok(_) => Redirect::to("/business?saved=1").into_response(),
        Err(status) => {
            let body = handoff_html(s, donation, text, &problem(s.lang, "donations", &status));
            let title = T::EditHandoff.get(s.lang);
            (http_status(&status), respond(page(s.lang, title, Some(s), &body))).into_response()
        }
    }
}

async fn action(
    State(c): State<Console>,
    As(s, _): As<ForBusiness>,
    Path((donation, action)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let f = form(&body);
    let key = random_id()[..32].to_owned();
    let act = async {
        Some(match action.as_str() {
            "withdraw" => {
                let r = don::WithdrawDonationRequest {
                    idempotency_key: key,
                    donation_id: donation,
                };
                client(&c).withdraw_donation(authed(&s.token, r)).await.map(|_| ())
            }
            _ => return None,
        })
    };
    live::action::<Donations, _>(&s, &f, act).await
}
