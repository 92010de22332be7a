//! A role's live page, one mechanism for every role that has one: the page
//! with its live section, the fragment the page fetches again, the
//! server-sent events that tell it to (`static/console.js`), and the answer
//! after an action (back to the page, or the service's answer in words).
//! A role says what it loads, how it shows it and what it watches (`Live`).

use crate::html::{http_status, notice, page, problem};
use crate::i18n::T;
use crate::session::Session;
use crate::{check_csrf, html as respond, As, Console, PageRole};
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use futures::stream::BoxStream;
use futures::StreamExt;
use std::future::Future;

/// What changes on a live page: one id per change (`lost` when a watch
/// broke, so the page fetches its fragment and watches again).
pub(crate) type Changes = Vec<BoxStream<'static, Result<String, tonic::Status>>>;

/// A role's live page.
pub(crate) trait Live: Send + Sync + 'static {
    /// Who the page is for.
    type Role: PageRole + 'static;
    /// What the page shows, as loaded from the services.
    type Data: Send + Default;
    /// The page's path; its fragment and events are below it.
    const PATH: &'static str;
    /// The service the page reads (named in a problem).
    const SERVICE: &'static str;
    /// The page's title.
    const TITLE: T;
    /// Where an action that worked leads (the page, or the page saying so).
    const AFTER: &'static str = Self::PATH;
    /// The notice shown above the live section when the page's query is
    /// this one (something was just done).
    const DONE: Option<(&'static str, T)> = None;
    /// The link above the live section to make a new one: path and label.
    const NEW: Option<(&'static str, T)> = None;

    fn load(c: &Console, s: &Session) -> impl Future<Output = Result<Self::Data, tonic::Status>> + Send;
    /// The live section's content.
    fn show(s: &Session, data: &Self::Data) -> String;
    /// The watches of what `data` shows, each from where `data` stands.
    fn watch(c: &Console, s: &Session, data: Self::Data) -> impl Future<Output = Changes> + Send;
}

/// What page `L` shows above its live section: its `DONE` notice when the
/// page's `query` says so, and its `NEW` link.
fn head<L: Live>(s: &Session, query: Option<&str>) -> String {
    let mut head = String::new();
    if let Some((done, said)) = L::DONE {
        if query == Some(done) {
            head += &notice(said.get(s.lang));
        }
    }
    if let Some((path, label)) = L::NEW {
        head += &format!("<p><a class=\"button\" href=\"{path}\">{}</a></p>", label.get(s.lang));
    }
    head
}

/// The page, its fragment and its events, for role page `L`.
pub(crate) fn routes<L: Live>() -> Router<Console> {
    Router::new()
        .route(L::PATH, get(index::<L>))
        .route(&format!("{}/fragment", L::PATH), get(fragment::<L>))
        .route(&format!("{}/events", L::PATH), get(events::<L>))
}

/// The live section, and the HTTP status it is answered with (the
/// service's refusal, when it refused).
async fn section<L: Live>(c: &Console, s: &Session) -> (StatusCode, String) {
    match L::load(c, s).await {
        Ok(data) => (StatusCode::OK, L::show(s, &data)),
        Err(status) => (http_status(&status), problem(s.lang, L::SERVICE, &status)),
    }
}

async fn index<L: Live>(State(c): State<Console>, As(s, _): As<L::Role>, RawQuery(query): RawQuery) -> Response {
    let (code, inner) = section::<L>(&c, &s).await;
    let body = format!(
        "{head}<section id=\"live\" aria-live=\"polite\" data-live=\"{path}/events\" data-fragment=\"{path}/fragment\">{inner}</section>",
        head = head::<L>(&s, query.as_deref()),
        path = L::PATH,
    );
    (code, respond(page(s.lang, L::TITLE.get(s.lang), Some(&s), &body))).into_response()
}

async fn fragment<L: Live>(State(c): State<Console>, As(s, _): As<L::Role>) -> Response {
    let (code, inner) = section::<L>(&c, &s).await;
    (code, respond(inner)).into_response()
}

/// Server-sent events: one `change` per change of what the page shows
/// (the page then fetches its fragment again).
async fn events<L: Live>(State(c): State<Console>, As(s, _): As<L::Role>) -> Response {
    let data = L::load(&c, &s).await.unwrap_or_default();
    let changes = futures::stream::select_all(L::watch(&c, &s, data).await).map(|change| {
        let id = change.unwrap_or_else(|_| "lost".to_owned());
        Ok::<_, std::convert::Infallible>(Event::default().event("change").data(id))
    });
    Sse::new(changes).keep_alive(KeepAlive::default()).into_response()
}

/// After an action on page `L`: back to the page, or the service's answer
/// in words on it.
pub(crate) fn after<L: Live>(s: &Session, done: Result<(), tonic::Status>) -> Response {
    match done {
        Ok(()) => Redirect::to(L::AFTER).into_response(),
        Err(status) => {
            let body = problem(s.lang, L::SERVICE, &status);
            let answer = respond(page(s.lang, L::TITLE.get(s.lang), Some(s), &body));
            (http_status(&status), answer).into_response()
        }
    }
}

/// An action posted from page `L` (a button's `form`): refused without the
/// session's CSRF token, otherwise `act` runs (`None`: no such action) and
/// the page follows.
pub(crate) async fn action<L: Live, F>(s: &Session, form: &[(String, String)], act: F) -> Response
where
    F: Future<Output = Option<Result<(), tonic::Status>>>,
{
    if let Err(refusal) = check_csrf(s, form) {
        return refusal;
    }
    match act.await {
        Some(done) => after::<L>(s, done),
        // An action the page does not have.
        None => crate::refused(s.lang, Some(s)),
    }
}
