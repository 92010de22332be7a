//! Two console replicas sharing their sessions through the bus: signed in on
//! one, signed in on both; signed out on one, signed out everywhere; a
//! console restart signs nobody out; the bucket holds no token in clear.

use refer_console::config::Config;
use refer_console::session::BUCKET;
use refer_tests::*;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One HTTP/1.1 exchange: the status, the `Set-Cookie` session id (if
/// any), the `Location` (if any) and the body.
struct Answer {
    status: u16,
    session: Option<String>,
    /// The sign-in nonce's cookie a sign-in page sets.
    sign_in: Option<String>,
    location: Option<String>,
    body: String,
}

/// One exchange over https, the console's certificate verified against `ca`.
async fn http(
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
async fn exchange(
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
fn bus(nats: &refer_testkit::NatsServer) -> refer_service::runtime::Bus {
    let keys = nats.access().keys;
    refer_service::runtime::Bus {
        url: nats.url(),
        nkey_file: Some(keys.seed_file("console")),
        ca_file: Some(keys.nats_ca_file()),
        plaintext: false,
        inbox: refer_service::runtime::inbox_of("console"),
    }
}

fn config(c: &Coalition) -> Config {
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
fn nonce(page: &str) -> String {
    let at = page
        .find("name=\"signin\" value=\"")
        .expect("a sign-in form with its nonce")
        + 21;
    page[at..].split('"').next().unwrap().to_owned()
}

/// Signs in as a browser does: the sign-in page, then its form posted
/// with the page's cookie.
async fn sign_in(console: (SocketAddr, &std::path::Path), token: &str) -> Answer {
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

/// Login CSRF: a page of another site can post the sign-in form with a
/// partner's token, but without the nonce the console gave this browser
/// (or, said by the browser, from another site) nobody is signed in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_posted_from_another_site_signs_nobody_in() {
    let c = Coalition::start(0, 0).await;
    let config = config(&c);
    let ca = c.setup.keys.ca_file();
    let console = refer_console::launch(&config).await.unwrap();
    let at = (console.addr, ca.as_path());
    let door = http(at, "GET", "/signin", None, "").await;
    let kept = door.sign_in.clone().unwrap();
    let forged = [
        // The form alone, as another site posts it.
        (String::new(), format!("token={INTAKE}")),
        // A nonce of its own, no cookie.
        (String::new(), format!("signin={kept}&token={INTAKE}")),
        // The cookie, another nonce in the form.
        (
            format!("Cookie: refer_signin={kept}\r\n"),
            format!("signin={}&token={INTAKE}", "0".repeat(64)),
        ),
        // Both right, but the browser says it comes from another site.
        (
            format!("Cookie: refer_signin={kept}\r\nSec-Fetch-Site: cross-site\r\n"),
            format!("signin={kept}&token={INTAKE}"),
        ),
    ];
    for (headers, form) in forged {
        let answer = exchange(at, "POST", "/signin", &headers, &form).await;
        assert_eq!(answer.status, 403, "{headers:?} {form:?}: {}", answer.body);
        assert!(answer.session.is_none(), "signed in by {headers:?} {form:?}");
        assert!(answer.body.contains("did not come from this page"), "{}", answer.body);
        assert!(answer.sign_in.is_some(), "a fresh form to sign in with");
    }
    // The console's own form in the same browser signs in, and its nonce is spent.
    let signed = sign_in(at, INTAKE).await;
    assert_eq!(signed.status, 303, "{}", signed.body);
    assert!(signed.session.is_some());
    console.stop().await.unwrap();
}

/// The CSRF token in a page's forms.
fn csrf(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a form with its CSRF token") + 19;
    page[at..].split('"').next().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_console_replicas_share_sessions_and_the_bus_holds_no_token() {
    let c = Coalition::start(0, 0).await;
    let config = config(&c);
    let ca = c.setup.keys.ca_file();
    let a = refer_console::launch(&config).await.unwrap();
    let b = refer_console::launch(&config).await.unwrap();

    // Signed in on A.
    let signed = sign_in((a.addr, &ca), INTAKE).await;
    assert_eq!(signed.status, 303, "{}", signed.body);
    let id = signed.session.expect("a session cookie");
    // Then signed in on B, with the same cookie.
    let page = http((b.addr, &ca), "GET", "/intake", Some(&id), "").await;
    assert_eq!(page.status, 200, "B knows the session A opened: {:?}", page.location);

    // Neither the token nor the session id is in the bucket, nor anywhere in its stream.
    let client = c.nats.connect().await;
    let js = async_nats::jetstream::new(client);
    let stream = js.get_stream(format!("KV_{BUCKET}")).await.unwrap();
    let last = stream.get_info().await.unwrap().state.last_sequence;
    assert!(last >= 1, "the session is in the bucket");
    for seq in 1..=last {
        let Ok(message) = stream.get_raw_message(seq).await else {
            continue;
        };
        let bytes = [message.subject.as_bytes(), &message.payload[..]].concat();
        assert!(!contains(&bytes, INTAKE), "a token in clear at {seq}");
        assert!(!contains(&bytes, &id), "a session id in clear at {seq}");
    }

    // A restarted console still knows the session.
    a.stop().await.unwrap();
    let a = refer_console::launch(&config).await.unwrap();
    assert_eq!(http((a.addr, &ca), "GET", "/intake", Some(&id), "").await.status, 200);

    // Signed out on B: signed out on A too.
    let form = format!("csrf={}", csrf(&page.body));
    let out = http((b.addr, &ca), "POST", "/signout", Some(&id), &form).await;
    assert_eq!(out.location.as_deref(), Some("/signin"));
    let after = http((a.addr, &ca), "GET", "/intake", Some(&id), "").await;
    assert_eq!(
        (after.status, after.location.as_deref()),
        (303, Some("/signin")),
        "signed out everywhere"
    );
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

#[tokio::test]
async fn a_shared_session_ends_when_idle() {
    let nats = refer_testkit::NatsServer::start().await.unwrap();
    refer_service::testing::provision(&nats.access(), 1).await;
    // The bucket keeps entries 30 minutes (provisioned); each console ends
    // a session after its own idle time.
    let idle = std::time::Duration::from_secs(1);
    let a = refer_console::session::Sessions::shared(&bus(&nats), 1, idle)
        .await
        .unwrap();
    let b = refer_console::session::Sessions::shared(&bus(&nats), 1, idle)
        .await
        .unwrap();
    let lang = refer_console::i18n::Lang::Es;
    let s = a.create("t".into(), refer_service::Role::Provider, lang).await.unwrap();
    let seen = b.get(&s.id).await.expect("B reads it");
    assert_eq!((seen.token.as_str(), seen.lang), ("t", lang));
    tokio::time::sleep(idle + std::time::Duration::from_millis(300)).await;
    assert!(b.get(&s.id).await.is_none(), "idle too long");
    assert!(a.get(&s.id).await.is_none());
}

/// Whoever makes the sessions bucket's stream first could make it capture
/// other processes' inboxes: the console's credential may not make it (the
/// operator does), and a bucket made so anyway (with the operator's
/// credential, by mistake or theft) is refused, naming it.
#[tokio::test]
async fn a_sessions_bucket_made_to_capture_other_traffic_is_refused() {
    let nats = refer_testkit::NatsServer::start().await.unwrap();
    let capturing = async_nats::jetstream::stream::Config {
        name: format!("KV_{BUCKET}"),
        subjects: vec![format!("$KV.{BUCKET}.>"), "_INBOX_intake.>".into()],
        ..Default::default()
    };
    let console = nats.access().connect_as("console").await.unwrap();
    let js = async_nats::jetstream::ContextBuilder::new()
        .timeout(std::time::Duration::from_secs(1))
        .build(console);
    assert!(
        js.create_stream(capturing.clone()).await.is_err(),
        "the console's credential made a stream"
    );
    let operator = async_nats::jetstream::new(nats.connect().await);
    operator.create_stream(capturing).await.unwrap();
    let idle = std::time::Duration::from_secs(60);
    let refused = refer_console::session::Sessions::shared(&bus(&nats), 1, idle).await;
    let err = refused.err().expect("a bucket that captures other traffic is refused");
    assert!(err.to_string().contains("is not as Refer makes it"), "{err}");
}
