//! A browser's exchanges with the console, spelled out (HTTP/1.1 over TLS):
//! what the session tests and the action tests send and read.
// Each test file uses some of these.
#![allow(dead_code)]

use refer_console::config::Config;
use refer_tests::*;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One HTTP/1.1 exchange: the status, the `Set-Cookie` session id (if
/// any), the `Location` (if any) and the body.
pub struct Answer {
    pub status: u16,
    pub session: Option<String>,
    /// The sign-in nonce's cookie a sign-in page sets.
    pub sign_in: Option<String>,
    pub location: Option<String>,
    pub body: String,
}

/// One exchange over https, the console's certificate verified against `ca`.
pub async fn http(
    console: (SocketAddr, &std::path::Path),
    method: &str,
    path: &str,
    session: Option<&str>,
    form: &str,
) -> Answer {
    let cookie = session.map_or(String::new(), |id| format!("Cookie: refer_session={id}\r\n"));
    exchange(console, method, path, &cookie, form).await
}

/// [`http`] with `headers` (each line ending in CRLF) as they are.
pub async fn exchange(
    (console, ca): (SocketAddr, &std::path::Path),
    method: &str,
    path: &str,
    headers: &str,
    form: &str,
) -> Answer {
    let mut socket = refer_service::tls::connect(console, ca, None)
        .await
        .expect("the console answers over TLS");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: console\r\nConnection: close\r\n{headers}\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        form.len()
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut text = String::new();
    let _ = socket.read_to_string(&mut text).await;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let header = |name: &str| {
        head.lines().find_map(|l| {
            l.split_once(": ")
                .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.to_owned())
        })
    };
    let cookie = |name: &str| {
        head.lines()
            .filter_map(|l| l.split_once(": ").filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie")))
            .find_map(|(_, c)| {
                c.strip_prefix(&format!("{name}="))
                    .map(|v| v.split(';').next().unwrap_or("").to_owned())
            })
            .filter(|v| !v.is_empty())
    };
    Answer {
        status: head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0),
        session: cookie("refer_session"),
        sign_in: cookie("refer_signin"),
        location: header("location"),
        body: body.to_owned(),
    }
}

/// The console's way to the test bus (its own credential, TLS).
pub fn bus(nats: &refer_testkit::NatsServer) -> refer_service::runtime::Bus {
    let keys = nats.access().keys;
    refer_service::runtime::Bus {
        url: nats.url(),
        nkey_file: Some(keys.seed_file("console")),
        ca_file: Some(keys.nats_ca_file()),
        plaintext: false,
        inbox: refer_service::runtime::inbox_of("console"),
    }
}

pub fn config(c: &Coalition) -> Config {
    let [capacity, donations, intake, matcher] = c.urls();
    let nats = c.nats.url();
    let seed = c.setup.keys.seed_file("console");
    Config::from_sources(None, |key| match key {
        "REFER_LISTEN" => Some("127.0.0.1:0".into()),
        "REFER_CAPACITY_URL" => Some(capacity.clone()),
        "REFER_DONATIONS_URL" => Some(donations.clone()),
        "REFER_INTAKE_URL" => Some(intake.clone()),
        "REFER_MATCHER_URL" => Some(matcher.clone()),
        "REFER_SESSIONS_NATS_URL" => Some(nats.clone()),
        "REFER_TOKENS_FILE" => Some(c.setup.tokens_file().display().to_string()),
        "REFER_SESSIONS_NATS_NKEY_FILE" => Some(seed.display().to_string()),
        "REFER_SESSIONS_NATS_CA_FILE" => Some(c.setup.keys.nats_ca_file().display().to_string()),
        "REFER_CA_FILE" => Some(c.setup.keys.ca_file().display().to_string()),
        "REFER_TLS_CERT_FILE" => Some(c.setup.keys.service_cert().0.display().to_string()),
        "REFER_TLS_KEY_FILE" => Some(c.setup.keys.service_cert().1.display().to_string()),
        _ => None,
    })
    .unwrap()
}

/// The sign-in nonce in a sign-in page's form.
pub fn nonce(page: &str) -> String {
    let at = page
        .find("name=\"signin\" value=\"")
        .expect("a sign-in form with its nonce")
        + 21;
    page[at..].split('"').next().unwrap().to_owned()
}

/// Signs in as a browser does: the sign-in page, then its form posted
/// with the page's cookie.
pub async fn sign_in(console: (SocketAddr, &std::path::Path), token: &str) -> Answer {
    let door = http(console, "GET", "/signin", None, "").await;
    let kept = door.sign_in.expect("the sign-in page sets its nonce's cookie");
    assert_eq!(kept, nonce(&door.body), "the form carries the cookie's nonce");
    exchange(
        console,
        "POST",
        "/signin",
        &format!("Cookie: refer_signin={kept}\r\nSec-Fetch-Site: same-origin\r\n"),
        &format!("signin={kept}&token={token}"),
    )
    .await
}

/// The CSRF token in a page's forms.
pub fn csrf(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a form with its CSRF token") + 19;
    page[at..].split('"').next().unwrap().to_owned()
}
