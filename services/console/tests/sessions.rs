//! Two console replicas sharing their sessions through the bus: signed in on
//! one, signed in on both; signed out on one, signed out everywhere; a
//! console restart signs nobody out; the bucket holds no token in clear.

mod browse;

use browse::*;
use refer_console::session::BUCKET;
use refer_tests::*;

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
