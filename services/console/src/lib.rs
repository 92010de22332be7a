//! Refer's console: server-rendered pages for each role, usable on a phone,
//! with a little JavaScript for live updates. It talks to the four services
//! as an ordinary gRPC client with the signed-in partner's token, so every
//! check stays on the services; it keeps the token in a server-side session
//! (`session`), checks a CSRF token on every form, and sends headers that
//! forbid inline scripts and framing.
#![forbid(unsafe_code)]
// A handler answers with a page either way; a refusal is a response too.
#![allow(clippy::result_large_err)]

mod admin;
mod business;
pub mod config;
pub mod html;
pub mod i18n;
mod intake;
mod languages;
mod live;
pub mod places;
mod provider;
mod reports;
pub mod session;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use config::Config;
use html::{alert, page};
use i18n::{Lang, T};
use refer_client::Role;
use refer_proto::capacity::v1::capacity_client::CapacityClient;
use refer_proto::donations::v1::donations_client::DonationsClient;
use refer_proto::intake::v1::intake_client::IntakeClient;
use refer_proto::matcher::v1::matcher_client::MatcherClient;
use session::{Session, Sessions, COOKIE};
use std::net::SocketAddr;
use std::time::Duration;
use tonic::transport::Channel;

/// Everything a handler needs: the services' channels and the sessions.
#[derive(Clone)]
pub struct Console {
    pub capacity: Channel,
    pub donations: Channel,
    pub intake: Channel,
    pub matcher: Channel,
    pub sessions: Sessions,
    secure_cookies: bool,
    /// The partners' token file, for the admin's page (optional).
    tokens_file: Option<std::path::PathBuf>,
}

/// A channel to a service: `urls` may list several replicas,
/// comma-separated; calls then go to the ones that answer. `https://`
/// addresses are verified against `ca_file` (refer_client::tls).
fn channel(urls: &str, tls: &refer_client::tls::ClientTls) -> anyhow::Result<Channel> {
    let endpoints = urls
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(|url| {
            Ok(tls
                .endpoint(url, "ca_file (REFER_CA_FILE)")?
                .connect_timeout(Duration::from_secs(2))
                .timeout(Duration::from_secs(10)))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(match endpoints.as_slice() {
        [one] => one.connect_lazy(),
        _ => Channel::balance_list(endpoints.into_iter()),
    })
}

impl Console {
    /// The console with its sessions kept in this process.
    pub fn new(config: &Config) -> anyhow::Result<Self> {
        Self::with_sessions(config, Sessions::new(config.idle))
    }

    /// The console keeping its sessions in `sessions`.
    pub fn with_sessions(config: &Config, sessions: Sessions) -> anyhow::Result<Self> {
        Ok(Self {
            capacity: channel(&config.capacity_url, &config.services_tls)?,
            donations: channel(&config.donations_url, &config.services_tls)?,
            intake: channel(&config.intake_url, &config.services_tls)?,
            matcher: channel(&config.matcher_url, &config.services_tls)?,
            sessions,
            secure_cookies: config.secure_cookies,
            tokens_file: config.tokens_file.clone(),
        })
    }

    pub fn intake_client(&self) -> IntakeClient<Channel> {
        IntakeClient::new(self.intake.clone())
    }
    pub fn capacity_client(&self) -> CapacityClient<Channel> {
        CapacityClient::new(self.capacity.clone())
    }

    /// The signed-in session of this request, if any.
    async fn session(&self, headers: &HeaderMap) -> Option<Session> {
        let cookies = headers.get(header::COOKIE)?.to_str().ok()?;
        self.sessions.get(session::cookie(cookies, COOKIE)?).await
    }

    /// The session of a caller in `role`: otherwise sign-in, or a refusal.
    pub(crate) async fn signed_in(&self, headers: &HeaderMap, role: Role) -> Result<Session, Response> {
        match self.session(headers).await {
            None => Err(Redirect::to("/signin").into_response()),
            Some(s) if s.role == role => Ok(s),
            Some(s) => Err(refused(s.lang, Some(&s))),
        }
    }
}

/// A role a page is for (`As<R>`).
pub(crate) trait PageRole: Send + Sync {
    const ROLE: Role;
}
macro_rules! page_roles {
    ($($name:ident => $role:expr),* $(,)?) => {$(
        pub(crate) struct $name;
        impl PageRole for $name {
            const ROLE: Role = $role;
        }
    )*};
}
page_roles!(ForIntake => Role::Intake, ForProvider => Role::Provider, ForBusiness => Role::Business, ForAdmin => Role::Admin);

/// A request signed in as role `R`: the handler gets the session, and any
/// other caller is sent to sign in or refused before it runs (the one
/// place every page checks who is calling).
pub(crate) struct As<R: PageRole>(pub Session, std::marker::PhantomData<R>);

impl<R: PageRole> axum::extract::FromRequestParts<Console> for As<R> {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut axum::http::request::Parts, c: &Console) -> Result<Self, Response> {
        c.signed_in(&parts.headers, R::ROLE)
            .await
            .map(|s| As(s, std::marker::PhantomData))
    }
}

/// A request signed in with any role (a page every partner has): anyone
/// else is sent to sign in.
pub(crate) struct Anyone(pub Session);

impl axum::extract::FromRequestParts<Console> for Anyone {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut axum::http::request::Parts, c: &Console) -> Result<Self, Response> {
        c.session(&parts.headers)
            .await
            .map(Anyone)
            .ok_or_else(|| Redirect::to("/signin").into_response())
    }
}

/// The language of a visitor not signed in: their `refer_lang` cookie.
fn visitor_lang(headers: &HeaderMap) -> Lang {
    headers
        .get(header::COOKIE)
        .and_then(|c| c.to_str().ok())
        .and_then(|c| session::cookie(c, "refer_lang"))
        .and_then(Lang::parse)
        .unwrap_or_default()
}

fn refused(lang: Lang, session: Option<&Session>) -> Response {
    let body = alert(T::Forbidden.get(lang));
    (
        StatusCode::FORBIDDEN,
        html(page(lang, T::Forbidden.get(lang), session, &body)),
    )
        .into_response()
}

pub(crate) fn html(body: String) -> axum::response::Html<String> {
    axum::response::Html(body)
}

/// The fields of a form (repeated names kept, in order).
pub(crate) fn form(body: &Bytes) -> Vec<(String, String)> {
    form_urlencoded::parse(body).into_owned().collect()
}

pub(crate) fn field<'a>(form: &'a [(String, String)], name: &str) -> &'a str {
    form.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.as_str())
}

pub(crate) fn fields<'a>(form: &'a [(String, String)], name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    form.iter().filter(move |(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// The values a form was filled with, to show it again after a refusal.
pub(crate) struct Filled(pub Vec<(String, String)>);

impl Filled {
    pub(crate) fn get(&self, name: &str) -> &str {
        field(&self.0, name)
    }
    pub(crate) fn has(&self, name: &str, value: &str) -> bool {
        fields(&self.0, name).any(|v| v == value)
    }
    /// A form as posted with `pairs`, for tests.
    #[cfg(test)]
    pub(crate) fn of(pairs: &[(&str, &str)]) -> Self {
        Self(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect())
    }
}

/// A form posted without this session's CSRF token is refused.
pub(crate) fn check_csrf(session: &Session, form: &[(String, String)]) -> Result<(), Response> {
    if field(form, "csrf") == session.csrf {
        Ok(())
    } else {
        tracing::warn!("a form without its CSRF token was refused");
        Err(refused(session.lang, Some(session)))
    }
}

/// Headers on every answer: a content security policy with no inline
/// script or style, no framing, no sniffing, no referrer to other sites.
async fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    let set = |h: &mut HeaderMap, name: header::HeaderName, value: &'static str| {
        h.insert(name, HeaderValue::from_static(value));
    };
    set(
        h,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; \
         frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    );
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    // Same-origin only: the language switch returns to the page it was on.
    set(h, header::REFERRER_POLICY, "same-origin");
    set(h, header::CACHE_CONTROL, "no-store");
    // Once seen over https, a browser never comes back over plain http
    // (browsers ignore it on plain http, so a development console is unaffected).
    set(h, header::STRICT_TRANSPORT_SECURITY, "max-age=31536000");
    response
}

pub fn router(console: Console) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/signin", get(sign_in_page).post(sign_in))
        .route("/signout", post(sign_out))
        .route("/lang/{code}", get(switch_lang))
        .route("/static/console.css", get(css))
        .route("/static/console.js", get(js))
        .merge(intake::routes())
        .merge(provider::routes())
        .merge(business::routes())
        .merge(admin::routes())
        .merge(reports::routes())
        .fallback(not_found)
        .layer(axum::middleware::from_fn(whole_body))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(console)
}

/// How long a client may take to send a request's body once its head
/// came, and how large a body may be (the console's forms are small).
pub const BODY_DEADLINE: Duration = Duration::from_secs(10);
pub const BODY_LIMIT: usize = 64 * 1024;

/// Reads a request's whole body before any page sees it: one that does not
/// arrive within [`BODY_DEADLINE`] is answered 408 and its connection
/// closed (a client that stalls its body holds nothing for long); one
/// larger than [`BODY_LIMIT`] is answered 413.
async fn whole_body(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let (parts, body) = request.into_parts();
    match tokio::time::timeout(BODY_DEADLINE, axum::body::to_bytes(body, BODY_LIMIT)).await {
        Ok(Ok(bytes)) => next.run(axum::extract::Request::from_parts(parts, bytes.into())).await,
        Ok(Err(_)) => (
            StatusCode::PAYLOAD_TOO_LARGE,
            [(header::CONNECTION, "close")],
            "the request is larger than a form of this console",
        )
            .into_response(),
        Err(_) => (
            StatusCode::REQUEST_TIMEOUT,
            [(header::CONNECTION, "close")],
            "the request's body did not arrive in time",
        )
            .into_response(),
    }
}

/// A page the console does not have: said in words, with a 404.
async fn not_found(State(c): State<Console>, headers: HeaderMap) -> Response {
    let session = c.session(&headers).await;
    let lang = session.as_ref().map_or_else(|| visitor_lang(&headers), |s| s.lang);
    let body = alert(T::NotFound.get(lang));
    (
        StatusCode::NOT_FOUND,
        html(page(lang, T::NotFound.get(lang), session.as_ref(), &body)),
    )
        .into_response()
}

async fn home(State(c): State<Console>, headers: HeaderMap) -> Response {
    match c.session(&headers).await.map(|s| s.role) {
        Some(Role::Intake) => Redirect::to("/intake").into_response(),
        Some(Role::Provider) => Redirect::to("/provider").into_response(),
        Some(Role::Business) => Redirect::to("/business").into_response(),
        Some(Role::Admin) => Redirect::to("/admin").into_response(),
        None => Redirect::to("/signin").into_response(),
    }
}

/// The cookie that ties a sign-in form to the browser it was served to.
const SIGN_IN_COOKIE: &str = "refer_signin";

/// The sign-in page with `message`, and a fresh sign-in nonce: in a cookie
/// (HttpOnly, SameSite=Strict, an hour) and in the form. A sign-in posts
/// both; a page of another site can forge the form but never read or set
/// the cookie, so it cannot sign a browser in as some partner (login CSRF).
fn sign_in_answer(c: &Console, lang: Lang, status: StatusCode, message: &str) -> Response {
    let nonce = session::random_id();
    let cookie = session::set_cookie(SIGN_IN_COOKIE, &nonce, c.secure_cookies, Some(3600));
    let body = format!(
        "{message}<p>{intro}</p><form method=\"post\" action=\"/signin\">\
         <input type=\"hidden\" name=\"signin\" value=\"{nonce}\">\
         <label for=\"token\">{token}</label>\
         <input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"current-password\" required>\
         <button type=\"submit\">{signin}</button></form>",
        intro = T::SignInIntro.get(lang),
        token = T::Token.get(lang),
        signin = T::SignIn.get(lang),
    );
    (
        status,
        [(header::SET_COOKIE, cookie)],
        html(page(lang, T::SignIn.get(lang), None, &body)),
    )
        .into_response()
}

async fn sign_in_page(State(c): State<Console>, headers: HeaderMap) -> Response {
    sign_in_answer(&c, visitor_lang(&headers), StatusCode::OK, "")
}

/// Whether a sign-in was posted by this console's own form in this browser:
/// the browser says the request is not from another site (when it says),
/// and the form's nonce is the one in the browser's cookie.
fn own_sign_in(headers: &HeaderMap, form: &[(String, String)]) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if header("sec-fetch-site").is_some_and(|site| !matches!(site, "same-origin" | "none")) {
        return false;
    }
    let posted = field(form, "signin");
    let kept = header("cookie").and_then(|c| session::cookie(c, SIGN_IN_COOKIE));
    match kept {
        Some(kept) if !posted.is_empty() => {
            // Compared in constant time: the nonce is a secret of the browser.
            kept.len() == posted.len()
                && kept
                    .bytes()
                    .zip(posted.bytes())
                    .fold(0u8, |diff, (a, b)| diff | (a ^ b))
                    == 0
        }
        _ => false,
    }
}

/// The role a token has, found by asking the services (each admits only
/// its roles): `None` when none knows it. A service that does not answer is
/// skipped; if no other knows the token, that service is named.
async fn role_of(c: &Console, token: &str) -> Result<Option<Role>, (&'static str, tonic::Status)> {
    use refer_client::tokens::authed;
    use refer_proto::{capacity::v1 as cap, donations::v1 as don, intake::v1 as ik, matcher::v1 as m};
    let mut down = None;
    let mut judge = |r: Result<(), tonic::Status>, service: &'static str| match r {
        Ok(()) => true,
        Err(s) if matches!(s.code(), tonic::Code::Unauthenticated | tonic::Code::PermissionDenied) => false,
        Err(s) => {
            down.get_or_insert((service, s));
            false
        }
    };
    let admin = MatcherClient::new(c.matcher.clone())
        .get_status(authed(token, m::GetStatusRequest {}))
        .await
        .map(|_| ());
    if judge(admin, "matcher") {
        return Ok(Some(Role::Admin));
    }
    let list = ik::ListPlacementsRequest {
        page_size: 1,
        page_token: String::new(),
    };
    let intake = c.intake_client().list_placements(authed(token, list)).await.map(|_| ());
    if judge(intake, "intake") {
        return Ok(Some(Role::Intake));
    }
    let sites = cap::ListProvidersRequest {
        page_size: 1,
        ..Default::default()
    };
    let provider = c
        .capacity_client()
        .list_providers(authed(token, sites))
        .await
        .map(|_| ());
    if judge(provider, "capacity") {
        return Ok(Some(Role::Provider));
    }
    let donations = don::ListDonationsRequest {
        page_size: 1,
        ..Default::default()
    };
    let business = DonationsClient::new(c.donations.clone())
        .list_donations(authed(token, donations))
        .await
        .map(|_| ());
    if judge(business, "donations") {
        return Ok(Some(Role::Business));
    }
    match down {
        Some(down) => Err(down),
        None => Ok(None),
    }
}

async fn sign_in(
    State(c): State<Console>,
    ConnectInfo(Peer(client)): ConnectInfo<Peer>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let lang = visitor_lang(&headers);
    let again = |status: StatusCode, message: String| sign_in_answer(&c, lang, status, &message);
    let form = form(&body);
    if !own_sign_in(&headers, &form) {
        tracing::warn!("a sign-in without this console's form was refused");
        return again(StatusCode::FORBIDDEN, alert(T::SignInAgain.get(lang)));
    }
    if !c.sessions.allow_sign_in(client.ip()) {
        return again(StatusCode::TOO_MANY_REQUESTS, alert(T::TooManyAttempts.get(lang)));
    }
    let token = field(&form, "token").trim().to_owned();
    let role = if token.is_empty() || token.len() > 512 {
        Ok(None)
    } else {
        role_of(&c, &token).await
    };
    match role {
        Ok(Some(role)) => {
            let Some(s) = c.sessions.create(token, role, lang).await else {
                return again(StatusCode::SERVICE_UNAVAILABLE, alert(T::SessionsAway.get(lang)));
            };
            c.sessions.signed_in(client.ip());
            tracing::info!(role = ?role, "signed in");
            let cookie = session::set_cookie(COOKIE, &s.id, c.secure_cookies, None);
            // The nonce is spent.
            let spent = session::set_cookie(SIGN_IN_COOKIE, "", c.secure_cookies, Some(0));
            let mut answer = Redirect::to("/").into_response();
            for cookie in [cookie, spent] {
                if let Ok(value) = HeaderValue::from_str(&cookie) {
                    answer.headers_mut().append(header::SET_COOKIE, value);
                }
            }
            answer
        }
        Ok(None) => again(StatusCode::UNAUTHORIZED, alert(T::WrongToken.get(lang))),
        Err((service, status)) => again(StatusCode::SERVICE_UNAVAILABLE, html::problem(lang, service, &status)),
    }
}

async fn sign_out(State(c): State<Console>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(s) = c.session(&headers).await {
        if let Err(refusal) = check_csrf(&s, &form(&body)) {
            return refusal;
        }
        c.sessions.end(&s.id).await;
    }
    let cookie = session::set_cookie(COOKIE, "", c.secure_cookies, Some(0));
    ([(header::SET_COOKIE, cookie)], Redirect::to("/signin")).into_response()
}

/// Switches the language (a GET: it changes nothing but the display).
async fn switch_lang(State(c): State<Console>, headers: HeaderMap, Path(code): Path<String>) -> Response {
    let lang = Lang::parse(&code).unwrap_or_default();
    if let Some(s) = c.session(&headers).await {
        c.sessions.set_lang(&s.id, lang).await;
    }
    let back = headers
        .get(header::REFERER)
        .and_then(|r| r.to_str().ok())
        .and_then(|r| {
            r.find("://")
                .and_then(|i| r[i + 3..].find('/').map(|j| r[i + 3 + j..].to_owned()))
        })
        .filter(|p| p.starts_with('/') && !p.starts_with("//"))
        .unwrap_or_else(|| "/".into());
    let cookie = session::set_cookie("refer_lang", lang.code(), c.secure_cookies, Some(31_536_000));
    ([(header::SET_COOKIE, cookie)], Redirect::to(&back)).into_response()
}

async fn css() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../static/console.css"),
    )
        .into_response()
}

async fn js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../static/console.js"),
    )
        .into_response()
}

/// The console serving: where, and how to stop it.
pub struct Running {
    pub addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<()>,
}

impl Running {
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.server.await?;
        Ok(())
    }
}

/// The address a request came from, over https or plain http.
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub SocketAddr);

/// The console's TLS connections, as the accept loop takes them.
struct TlsListener(refer_client::tls::Incoming);

impl axum::serve::Listener for TlsListener {
    type Io = refer_client::tls::TlsConnection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.0.accept().await {
            Some(accepted) => accepted,
            // The accepting task is gone: nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.0
            .local_addr()
            .ok_or_else(|| std::io::Error::other("no local address"))
    }
}

/// How long a client may take to send a request's head (its line and
/// headers). One that starts a request and never finishes it is cut off,
/// instead of holding a connection (and a file) for ever.
pub const HEAD_DEADLINE: Duration = Duration::from_secs(10);

/// Serves `app` on every connection `listener` accepts, HTTP/1.1 with
/// [`HEAD_DEADLINE`], each request knowing its client's address, until
/// `stopped`; then the requests in flight finish (within [`STOP_GRACE`]).
async fn serve<L>(mut listener: L, app: Router, stopped: impl std::future::Future<Output = ()>)
where
    L: axum::serve::Listener<Addr = SocketAddr>,
{
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEAD_DEADLINE);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(stopped);
    loop {
        let (io, addr) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut stopped => break,
        };
        let app = app.clone().layer(axum::Extension(ConnectInfo(Peer(addr))));
        let service = hyper_util::service::TowerToHyperService::new(app);
        let connection = graceful.watch(http.serve_connection(hyper_util::rt::TokioIo::new(io), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "a connection ended with an error");
            }
        });
    }
    // Requests in flight finish; any still open after a grace (a client
    // that stopped reading, say) are closed with the process.
    if tokio::time::timeout(STOP_GRACE, graceful.shutdown()).await.is_err() {
        tracing::info!(grace = ?STOP_GRACE, "live pages still open at stop; closing them");
    }
}

/// How long a stopping console lets open requests finish.
pub const STOP_GRACE: Duration = Duration::from_secs(3);

/// Starts the console (port 0 picks a free one): https with the
/// configured certificate (reloaded when its files change), or plain http
/// only when `tls_plaintext` says so.
pub async fn launch(config: &Config) -> anyhow::Result<Running> {
    html::set_time_zone(&config.time_zone)?;
    if let Some(places) = &config.places {
        places::set_places(places.clone());
    }
    let listening = config.tls.listening("the console", &[b"http/1.1"])?;
    let sessions = match &config.sessions_nats_url {
        None => Sessions::new(config.idle),
        Some(url) => {
            let bus = refer_client::bus::Bus {
                url: url.clone(),
                nkey_file: config.sessions_nats_nkey_file.clone(),
                ca_file: config.sessions_nats_ca_file.clone(),
                plaintext: config.sessions_nats_plaintext,
                inbox: refer_client::bus::inbox_of("console"),
            };
            Sessions::shared(&bus, config.sessions_replicas, config.idle).await?
        }
    };
    let console = Console::with_sessions(config, sessions)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let app = router(console);
    let stopped = async {
        let _ = stopped.await;
    };
    let (server, scheme) = match listening {
        refer_client::tls::Listening::Plaintext => (tokio::spawn(serve(listener, app, stopped)), "http"),
        refer_client::tls::Listening::Tls(acceptor) => {
            let reload = acceptor.keep_fresh();
            let incoming = TlsListener(acceptor.incoming(listener, true));
            (
                tokio::spawn(async move {
                    serve(incoming, app, stopped).await;
                    reload.abort();
                }),
                "https",
            )
        }
    };
    tracing::info!(%addr, scheme, "console listening");
    Ok(Running { addr, stop, server })
}
