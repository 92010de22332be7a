//! TLS on every gRPC and metrics listener, tried from outside: a plaintext
//! client, a client that trusts another CA, a client certificate from
//! another CA or none when mutual TLS is on, an expired certificate on
//! either side; and a certificate replaced on disk while clients are
//! connected (new connections get it, open ones carry on, nothing restarts).

use refer_proto::capacity::v1 as cap;
use refer_proto::common::v1 as pb;
use refer_proto::intake::v1 as intake;
use refer_service::testing::{authed, TestApp, TestSetup};
use refer_service::tls::ClientTls;
use refer_service::Role;
use refer_testkit::tls::DevCa;
use refer_testkit::NatsServer;
use refer_tests::*;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_stream::StreamExt;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

/// A health check through `tls` to `addr` (`https`, or `http` when `tls` is
/// `None`): the status, or the error in words.
async fn health(addr: SocketAddr, tls: Option<&ClientTls>) -> Result<i32, String> {
    let endpoint = match tls {
        Some(tls) => tls.endpoint(&format!("https://{addr}"), "the test CA").unwrap(),
        None => ClientTls::default()
            .endpoint(&format!("http://{addr}"), "none")
            .unwrap(),
    };
    let channel = endpoint
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await
        .map_err(|e| format!("{e:?}"))?;
    let mut client = HealthClient::new(channel);
    let asked = client.check(HealthCheckRequest { service: String::new() });
    match tokio::time::timeout(Duration::from_secs(3), asked).await {
        Ok(Ok(answer)) => Ok(answer.into_inner().status),
        Ok(Err(status)) => Err(format!("{status:?}")),
        Err(_) => Err("no answer within 3 s".into()),
    }
}

/// What a plaintext HTTP request to `addr` gets back (empty: nothing).
async fn plain_http(addr: SocketAddr) -> String {
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = socket
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), socket.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

/// A CA of someone else's, and a certificate it issued for this machine.
struct Foreign {
    dir: tempfile::TempDir,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn foreign() -> Foreign {
    let dir = tempfile::tempdir().unwrap();
    let ca = DevCa::generate().unwrap();
    let (cert, key) = ca.issue(&["127.0.0.1", "localhost"]).unwrap();
    let paths = Foreign {
        ca: dir.path().join("ca.pem"),
        cert: dir.path().join("cert.pem"),
        key: dir.path().join("cert.key"),
        dir,
    };
    std::fs::write(&paths.ca, ca.pem()).unwrap();
    std::fs::write(&paths.cert, cert).unwrap();
    std::fs::write(&paths.key, key).unwrap();
    paths
}

/// The SHA-256 of the certificate a new TLS connection to `addr` is served.
async fn served(addr: SocketAddr, ca: &Path) -> String {
    let stream = refer_service::tls::connect(addr, ca, None)
        .await
        .expect("a TLS handshake");
    let (_, session) = stream.get_ref();
    refer_service::tls::fingerprint(&session.peer_certificates().expect("a certificate")[0])
}

fn fingerprint_of(pem: &str) -> String {
    refer_service::tls::fingerprint_pem(pem).expect("a PEM certificate")
}

const SERVING: i32 = 1;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_refuses_plaintext_and_serves_only_clients_that_verify_it() {
    let c = Coalition::start(0, 0).await;
    let ours = c.setup.client_tls();
    let theirs = foreign();
    let trusting_another_ca = ClientTls {
        ca_file: Some(theirs.ca.clone()),
        ..Default::default()
    };
    for app in &c.apps {
        let name = app.url();
        // Verified against our CA: served.
        assert_eq!(health(app.addr, Some(&ours)).await, Ok(SERVING), "{name}");
        // Plaintext gRPC: the listener speaks only TLS.
        let plain = health(app.addr, None).await;
        assert!(plain.is_err(), "{name} answered a plaintext client: {plain:?}");
        // A client that trusts another CA refuses the service's certificate.
        let refused = health(app.addr, Some(&trusting_another_ca)).await.unwrap_err();
        assert!(
            refused.to_lowercase().contains("certificate") || refused.contains("UnknownIssuer"),
            "{name}: {refused}"
        );
        // The metrics page too: plaintext gets nothing, TLS gets the page.
        let answer = plain_http(app.metrics_addr).await;
        assert!(
            !answer.contains("HTTP/1.1"),
            "{name}'s metrics answered plaintext: {answer}"
        );
        assert!(
            app.metrics().await.starts_with("HTTP/1.1 200"),
            "{name}'s metrics over TLS"
        );
    }
}

/// A capacity service that requires client certificates of the test CA
/// (its bus kept alive with it).
async fn capacity_with_mutual_tls() -> (NatsServer, TestSetup, TestApp) {
    let nats = NatsServer::start().await.unwrap();
    let setup = TestSetup::new(
        nats.access(),
        [(ADMIN, Role::Admin, AGENCY, "admin")],
        refer_domain::sample::NIGHT,
    )
    .mutual_tls();
    let app = TestApp::spawn(refer_capacity::SERVICE, &setup).await;
    (nats, setup, app)
}

#[tokio::test]
async fn with_mutual_tls_a_service_refuses_clients_without_a_certificate_of_its_ca() {
    let (_nats, setup, app) = capacity_with_mutual_tls().await;
    let with_ours = setup.client_tls();
    assert!(with_ours.cert_file.is_some(), "the test client presents a certificate");
    assert_eq!(health(app.addr, Some(&with_ours)).await, Ok(SERVING));
    assert!(
        app.metrics().await.starts_with("HTTP/1.1 200"),
        "metrics with a client certificate"
    );

    let without = ClientTls {
        ca_file: with_ours.ca_file.clone(),
        ..Default::default()
    };
    let refused = health(app.addr, Some(&without)).await;
    assert!(refused.is_err(), "served a client with no certificate: {refused:?}");

    let theirs = foreign();
    let with_theirs = without.clone().with_identity(theirs.cert.clone(), theirs.key.clone());
    let refused = health(app.addr, Some(&with_theirs)).await;
    assert!(
        refused.is_err(),
        "served a client certificate from another CA: {refused:?}"
    );

    // A certificate of our CA that has expired is refused as well.
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = setup.keys.ca().issue_expired(&["127.0.0.1"]).unwrap();
    std::fs::write(dir.path().join("old.pem"), cert).unwrap();
    std::fs::write(dir.path().join("old.key"), key).unwrap();
    let expired = without.with_identity(dir.path().join("old.pem"), dir.path().join("old.key"));
    let refused = health(app.addr, Some(&expired)).await;
    assert!(refused.is_err(), "served an expired client certificate: {refused:?}");
}

#[tokio::test]
async fn a_service_with_an_expired_certificate_is_refused_by_its_clients() {
    let nats = NatsServer::start().await.unwrap();
    let keys = nats.access().keys;
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = keys.ca().issue_expired(&["127.0.0.1", "localhost"]).unwrap();
    let (cert_file, key_file) = (dir.path().join("expired.pem"), dir.path().join("expired.key"));
    std::fs::write(&cert_file, cert).unwrap();
    std::fs::write(&key_file, key).unwrap();
    let setup = TestSetup::new(
        nats.access(),
        [(ADMIN, Role::Admin, AGENCY, "admin")],
        refer_domain::sample::NIGHT,
    )
    .server_cert(cert_file, key_file);
    let app = TestApp::spawn(refer_capacity::SERVICE, &setup).await;
    let refused = health(app.addr, Some(&setup.client_tls())).await.unwrap_err();
    assert!(refused.to_lowercase().contains("expired"), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_replaced_on_disk_serves_new_connections_and_open_ones_carry_on() {
    let log = Log::capture("debug,h2=info,hyper=info,tower=info,async_nats=info,rustls=debug");
    let c = Coalition::start(1, 0).await;
    let ca = c.setup.keys.ca_file();
    let capacity = &c.apps[0];
    let (cert_file, key_file) = c.setup.keys.service_cert();
    let before = fingerprint_of(&std::fs::read_to_string(&cert_file).unwrap());
    assert_eq!(served(capacity.addr, &ca).await, before);

    // A provider watches its referrals on a connection opened before the change.
    let shelter = site(&c, 0, &[pb::ServiceKind::ShelterBed], 2).await;
    let mut watching = c.capacity.clone();
    let watch = cap::WatchReferralsRequest {
        provider_id: shelter.clone(),
        after_position: 0,
    };
    let mut referrals = watching
        .watch_referrals(authed(&provider_token(0), watch))
        .await
        .unwrap()
        .into_inner();

    // The operator replaces the files (key first: a moment of mismatch must
    // not stop anything), as a renewal would.
    let (cert, key) = c.setup.keys.ca().issue(&["127.0.0.1", "localhost"]).unwrap();
    let after = fingerprint_of(&cert);
    let old_key = std::fs::read_to_string(&key_file).unwrap();
    let secret_lines = |pem: &str| -> Vec<String> {
        pem.lines()
            .filter(|l| !l.starts_with("-----"))
            .map(str::to_owned)
            .collect()
    };
    let secrets: Vec<String> = secret_lines(&old_key).into_iter().chain(secret_lines(&key)).collect();
    std::fs::write(&key_file, key).unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        served(capacity.addr, &ca).await,
        before,
        "a key without its certificate is not taken"
    );
    std::fs::write(&cert_file, cert).unwrap();
    let started = Instant::now();
    while served(capacity.addr, &ca).await != after {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the new certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "new connections got the new certificate {:?} after it was written",
        started.elapsed()
    );
    // Every service reads the same files: each serves the new certificate
    // within a second or two of its own look at them.
    for app in &c.apps {
        while served(app.addr, &ca).await != after {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{} never served it",
                app.url()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    // The connection opened before still carries the provider's stream: a
    // referral made now arrives on it. And the service never restarted.
    let request = intake::RequestPlacementRequest {
        idempotency_key: "after-rotation".into(),
        person: Some(person("ROTATION-1", &[pb::NeedKind::Shelter])),
    };
    c.intake
        .clone()
        .request_placement(authed(INTAKE, request))
        .await
        .unwrap();
    let arrived = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match referrals.next().await {
                Some(Ok(r)) if r.status == cap::ReferralStatus::Pending as i32 => return r,
                Some(Ok(_)) => continue,
                other => panic!("the stream opened before the rotation ended: {other:?}"),
            }
        }
    })
    .await
    .expect("the referral arrives on the old connection");
    assert_eq!(arrived.provider_id, shelter);

    // The rotation is logged by fingerprint; no line of either key ever is.
    let log = log.bytes();
    assert!(contains(&log, "TLS certificate reloaded"), "the reload is logged");
    assert!(contains(&log, &after), "with the new certificate's fingerprint");
    for line in &secrets {
        assert!(!contains(&log, line), "a line of a private key in the log");
    }
    assert!(!contains(&log, "PRIVATE KEY"), "a private key in the log");
    assert_eq!(health(capacity.addr, Some(&c.setup.client_tls())).await, Ok(SERVING));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_client_ca_is_trusted_once_its_file_changes_without_a_restart() {
    let (_nats, setup, app) = capacity_with_mutual_tls().await;
    // The service's client CA file is the test CA's: clients verify the
    // service against a copy, so only the service sees the edits below.
    let theirs = foreign();
    let server_ca = theirs.dir.path().join("server-ca.pem");
    std::fs::copy(setup.keys.ca_file(), &server_ca).unwrap();
    let with_ours = ClientTls {
        ca_file: Some(server_ca),
        ..setup.client_tls()
    };
    // A client whose certificate a new CA signed: not trusted yet.
    let with_theirs = ClientTls {
        ca_file: with_ours.ca_file.clone(),
        ..Default::default()
    }
    .with_identity(theirs.cert.clone(), theirs.key.clone());
    let refused = health(app.addr, Some(&with_theirs)).await;
    assert!(refused.is_err(), "served a CA it was not given: {refused:?}");

    // The operator adds the new CA beside the old one in the client CA file
    // (a half-written file first: it must not stop anything).
    let client_ca = setup.keys.ca_file();
    let old = std::fs::read_to_string(&client_ca).unwrap();
    std::fs::write(&client_ca, "-----BEGIN CERTIFICATE-----\nnot yet").unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        health(app.addr, Some(&with_ours)).await,
        Ok(SERVING),
        "a broken file keeps the old CA"
    );
    let both = old.clone() + &std::fs::read_to_string(&theirs.ca).unwrap();
    std::fs::write(&client_ca, both).unwrap();
    let started = Instant::now();
    while health(app.addr, Some(&with_theirs)).await != Ok(SERVING) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the new client CA was never trusted"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        health(app.addr, Some(&with_ours)).await,
        Ok(SERVING),
        "the old CA still counts"
    );

    // Taking a CA out stops trusting it, for new connections.
    std::fs::write(&client_ca, std::fs::read_to_string(&theirs.ca).unwrap()).unwrap();
    let started = Instant::now();
    while health(app.addr, Some(&with_ours)).await == Ok(SERVING) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the removed client CA is still trusted"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
