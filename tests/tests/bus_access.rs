//! The bus's door, tried from outside: every test server enforces
//! deploy/nats/auth.conf (the permissions compose deploys), and here each
//! credential tries what it must not do. What was refused is checked on the
//! stream with the operator's credential, not only by the error seen.

use futures::StreamExt;
use refer_proto::common::v1 as pb;
use refer_tests::*;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A client with `role`'s credential that records the permission
/// violations the server reports to it.
async fn as_role(c: &Coalition, role: &str) -> (async_nats::Client, Arc<Mutex<Vec<String>>>) {
    let violations = Arc::new(Mutex::new(Vec::new()));
    let seen = violations.clone();
    let client = async_nats::ConnectOptions::new()
        .nkey(c.setup.keys.seed(role))
        .custom_inbox_prefix(refer_service::runtime::inbox_of(role))
        .add_root_certificates(c.setup.keys.nats_ca_file())
        .require_tls(true)
        .event_callback(move |event| {
            let seen = seen.clone();
            async move {
                if let async_nats::Event::ServerError(e) = event {
                    seen.lock().unwrap().push(e.to_string());
                }
            }
        })
        .connect(c.nats.url())
        .await
        .unwrap();
    (client, violations)
}

/// Intake seals its contact under an idempotency key: the key bucket, and
/// the bucket of idempotency bindings, then hold entries.
async fn seal_a_contact(c: &Coalition) {
    let set = refer_proto::intake::v1::SetHandoffContactRequest {
        idempotency_key: "contact".into(),
        contact: "night desk 555-0142".into(),
    };
    c.intake
        .clone()
        .set_handoff_contact(refer_service::testing::authed(INTAKE, set))
        .await
        .unwrap();
}

async fn last_sequence(c: &Coalition, stream: &str) -> u64 {
    let js = async_nats::jetstream::new(c.nats.connect().await);
    js.get_stream(stream)
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .state
        .last_sequence
}

/// Sends `payload` to `subject` as a request and waits a moment: a denied
/// publish gets no answer, an allowed one does.
async fn try_request(client: &async_nats::Client, subject: &str, payload: &str) -> Option<String> {
    let asked = client.request(subject.to_owned(), payload.to_owned().into());
    match tokio::time::timeout(Duration::from_millis(500), asked).await {
        Ok(Ok(answer)) => Some(String::from_utf8_lossy(&answer.payload).into_owned()),
        _ => None,
    }
}

#[tokio::test]
async fn a_client_without_a_credential_with_a_made_up_one_or_without_tls_is_refused() {
    let c = Coalition::start(0, 0).await;
    let tls = || {
        async_nats::ConnectOptions::new()
            .add_root_certificates(c.setup.keys.nats_ca_file())
            .require_tls(true)
    };
    let anonymous = tls().connect(c.nats.url()).await;
    let err = anonymous.expect_err("no credential: refused");
    assert_eq!(
        err.kind(),
        async_nats::ConnectErrorKind::AuthorizationViolation,
        "{err}"
    );
    let stranger = nkeys::KeyPair::new_user().seed().unwrap();
    let made_up = tls().nkey(stranger).connect(c.nats.url()).await;
    assert!(made_up.is_err(), "a key the bus does not know is refused");
    // A service given no credential says so at start, naming the setting.
    let bus = |nkey_file, ca_file| refer_service::runtime::Bus {
        url: c.nats.url(),
        nkey_file: Some(nkey_file),
        ca_file: Some(ca_file),
        plaintext: false,
        inbox: refer_service::runtime::inbox_of("capacity"),
    };
    let no_seed = bus(c.setup.dir.path().join("nowhere.nk"), c.setup.keys.nats_ca_file());
    let err = refer_service::runtime::connect(&no_seed).await.err().unwrap();
    assert!(err.to_string().contains("nats_nkey_file"), "{err}");
    // A client that trusts another CA does not take a forged bus for ours,
    // and one without TLS is not let in.
    let foreign = refer_testkit::NatsKeys::generate().unwrap();
    let elsewhere = bus(c.setup.keys.seed_file("capacity"), foreign.nats_ca_file());
    let err = refer_service::runtime::connect(&elsewhere).await.err().unwrap();
    assert!(err.to_string().contains("refused"), "{err}");
    let plain = async_nats::ConnectOptions::new()
        .nkey(c.setup.keys.seed("operator"))
        .connect(c.nats.url())
        .await;
    assert!(plain.is_err(), "plaintext is refused");
    let unsure = refer_service::runtime::Bus {
        ca_file: None,
        ..bus(c.setup.keys.seed_file("capacity"), c.setup.keys.nats_ca_file())
    };
    let err = refer_service::runtime::connect(&unsure).await.err().unwrap();
    assert!(
        err.to_string().contains("nats_ca_file"),
        "no TLS is a setting, never a default: {err}"
    );
}

/// What a subscription to `subject` with `role`'s credential receives
/// while intake seals a contact (its reads of the sealed-key bucket, and
/// every service's deliveries, travel to reply inboxes), and the
/// violations the server reported.
async fn overheard(c: &Coalition, role: &str, subject: &str) -> (Vec<String>, Vec<String>) {
    let (client, violations) = as_role(c, role).await;
    let mut sub = client.subscribe(subject.to_owned()).await.unwrap();
    client.flush().await.unwrap();
    seal_a_contact(c).await;
    let mut heard = Vec::new();
    let until = tokio::time::Instant::now() + Duration::from_secs(3);
    while let Ok(Some(message)) = tokio::time::timeout_at(until, sub.next()).await {
        heard.push(message.subject.to_string());
    }
    let violations = violations.lock().unwrap().clone();
    (heard, violations)
}

#[tokio::test]
async fn no_credential_overhears_another_process_replies() {
    let c = Coalition::start(0, 0).await;
    // Another connection with intake's own credential hears them (so they
    // do flow there; the operator lives in the store's account and cannot) ...
    let (heard, _) = overheard(&c, "intake", "_INBOX_intake.>").await;
    assert!(!heard.is_empty(), "intake's replies travel to its inboxes");
    // ... no other credential does, on any inbox but its own.
    for role in ["console", "matcher", "capacity", "donations"] {
        for subject in ["_INBOX.>", "_INBOX_intake.>"] {
            let (heard, violations) = overheard(&c, role, subject).await;
            assert!(heard.is_empty(), "{role} overheard {subject}: {heard:?}");
            assert!(
                violations
                    .iter()
                    .any(|v| v.to_lowercase().contains("permissions violation")),
                "{role} subscribing to {subject} is refused: {violations:?}"
            );
        }
    }
}

#[tokio::test]
async fn each_service_may_write_only_its_own_events() {
    let c = Coalition::start(1, 0).await;
    site(&c, 0, &[pb::ServiceKind::ShelterBed], 2).await;
    let id = "0123456789abcdef0123456789abcdef";
    // Who may append to which aggregate, as deploy/nats/auth.conf says.
    let cases = [
        ("donations", "provider", false),
        ("donations", "donation", true),
        ("capacity", "placement", false),
        ("capacity", "provider", true),
        ("intake", "donation", false),
        ("intake", "placement", true),
        ("matcher", "standing", false),
        ("matcher", "need", true),
        ("console", "need", false),
        ("console", "provider", false),
    ];
    for (role, kind, allowed) in cases {
        let (client, violations) = as_role(&c, role).await;
        let before = last_sequence(&c, "REFER").await;
        // Not a valid event: only whether the bus takes it matters here.
        let answer = try_request(&client, &format!("refer.{kind}.{id}"), "forged").await;
        let after = last_sequence(&c, "REFER").await;
        if allowed {
            assert!(answer.is_some() && after == before + 1, "{role} may append to {kind}");
        } else {
            assert_eq!(after, before, "{role} wrote refer.{kind}.*: {answer:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
            let seen = violations.lock().unwrap().join("; ");
            assert!(
                seen.contains("Permissions Violation"),
                "{role} -> {kind}: told {seen:?}"
            );
        }
    }
}

/// Each sealing service seals into a key bucket of its own, so a stolen
/// credential erases (or overwrites) no other service's items: secure
/// erasure is by a bucket's sequence, which no subject permission narrows.
/// Capacity reads intake's bucket (the notes intake shares with a site)
/// and may not erase or write there; donations, the matcher and the
/// console reach none of it; no role deletes or purges a stream.
#[tokio::test]
async fn no_service_may_delete_or_purge_a_stream_nor_erase_another_services_keys() {
    let c = Coalition::start(1, 0).await;
    seal_a_contact(&c).await;
    let intakes = "KV_REFER_DATA_KEYS_INTAKE";
    let keys_before = last_sequence(&c, intakes).await;
    assert!(keys_before > 0, "intake sealed its contact into its own bucket");
    for role in ["capacity", "donations", "intake", "matcher", "console"] {
        let (client, _) = as_role(&c, role).await;
        for subject in [
            "$JS.API.STREAM.DELETE.REFER",
            "$JS.API.STREAM.PURGE.REFER",
            "$JS.API.STREAM.UPDATE.REFER",
        ]
        .into_iter()
        .map(str::to_owned)
        .chain(["CAPACITY", "DONATIONS", "INTAKE"].into_iter().flat_map(|sealer| {
            [
                format!("$JS.API.STREAM.DELETE.KV_REFER_DATA_KEYS_{sealer}"),
                format!("$JS.API.STREAM.PURGE.KV_REFER_DATA_KEYS_{sealer}"),
            ]
        })) {
            assert_eq!(
                try_request(&client, &subject, "{}").await,
                None,
                "{role} may not {subject}"
            );
        }
    }
    let seq = format!("{{\"seq\":{keys_before}}}");
    for role in ["capacity", "donations", "matcher", "console"] {
        let (client, _) = as_role(&c, role).await;
        let erase = try_request(&client, &format!("$JS.API.STREAM.MSG.DELETE.{intakes}"), &seq).await;
        assert_eq!(erase, None, "{role} may not erase intake's key");
        let js = async_nats::jetstream::new(client.clone());
        let written = match js
            .publish("$KV.REFER_DATA_KEYS_INTAKE.dek.case.forged", "x".into())
            .await
        {
            Ok(ack) => ack.await.is_ok(),
            Err(_) => false,
        };
        assert!(!written, "{role} may not write intake's bucket");
        let opened = try_request(&client, &format!("$JS.API.STREAM.MSG.GET.{intakes}"), &seq).await;
        match role {
            "capacity" => assert!(
                opened.is_some_and(|r| r.contains("message")),
                "capacity reads intake's bucket (notes shared with a site)"
            ),
            _ => assert_eq!(opened, None, "{role} may not read a wrapped key"),
        }
    }
    let (intake, _) = as_role(&c, "intake").await;
    let read = try_request(&intake, &format!("$JS.API.STREAM.MSG.GET.{intakes}"), &seq).await;
    assert!(
        read.is_some_and(|r| r.contains("message")),
        "intake reads what it sealed"
    );
    // Everything is still there; the operator may do what nobody else may.
    let js = async_nats::jetstream::new(c.nats.connect().await);
    let mut keys = js.get_stream(intakes).await.unwrap();
    assert!(keys.get_raw_message(keys_before).await.is_ok(), "the key was erased");
    assert_eq!(keys.info().await.unwrap().state.messages, 1);
    let (operator, _) = as_role(&c, "operator").await;
    let info = try_request(&operator, "$JS.API.STREAM.INFO.REFER", "").await;
    assert!(info.is_some_and(|i| i.contains("\"config\"")));
}

/// No process but the operator makes a stream: whoever makes one first
/// decides what it captures. Every credential tries to make a bucket no
/// process made yet as a copy of the sealed keys, and a stream capturing
/// intake's reply inboxes; and to find the consumers the services run
/// (listing them, or asking by a projection's name), which would let it
/// pull another service's deliveries away.
#[tokio::test]
async fn no_service_may_make_a_stream_nor_find_another_services_consumer() {
    let c = Coalition::start(1, 0).await;
    seal_a_contact(&c).await;
    let js = async_nats::jetstream::new(c.nats.connect().await);
    let consumers: Vec<String> = js
        .get_stream("REFER")
        .await
        .unwrap()
        .consumer_names()
        .filter_map(|n| async move { n.ok() })
        .collect()
        .await;
    assert!(consumers.len() >= 4, "every service runs a consumer: {consumers:?}");
    // `<projection>_<random>`: 32 hex digits drawn anew for each consumer.
    let randoms: std::collections::BTreeSet<&str> = consumers
        .iter()
        .map(|name| name.rsplit_once('_').expect("a random suffix").1)
        .collect();
    assert_eq!(randoms.len(), consumers.len(), "suffixes repeat: {consumers:?}");
    let copy = r#"{"name":"KV_REFER_NEW","mirror":{"name":"KV_REFER_DATA_KEYS_INTAKE"}}"#;
    let capture = r#"{"name":"CAPTURE","subjects":["_INBOX_intake.>"]}"#;
    for role in ["capacity", "donations", "intake", "matcher", "console"] {
        let (client, _) = as_role(&c, role).await;
        for (subject, config) in [
            ("$JS.API.STREAM.CREATE.KV_REFER_NEW", copy),
            ("$JS.API.STREAM.CREATE.CAPTURE", capture),
        ] {
            assert_eq!(
                try_request(&client, subject, config).await,
                None,
                "{role} may not {subject}"
            );
        }
        for subject in ["$JS.API.CONSUMER.LIST.REFER", "$JS.API.CONSUMER.NAMES.REFER"] {
            assert_eq!(
                try_request(&client, subject, "{}").await,
                None,
                "{role} may not {subject}"
            );
        }
        for name in &consumers {
            // The projection's name finds nothing.
            let (projection, random) = name.rsplit_once('_').expect("a random suffix");
            assert!(
                random.len() == 32 && random.chars().all(|c| c.is_ascii_hexdigit()),
                "{name}"
            );
            let asked = try_request(&client, &format!("$JS.API.CONSUMER.INFO.REFER.{projection}"), "").await;
            assert!(
                asked.as_ref().is_none_or(|a| a.contains("consumer not found")),
                "{role} found {name} by its projection's name: {asked:?}"
            );
        }
    }
    for stream in ["KV_REFER_NEW", "CAPTURE"] {
        assert!(js.get_stream(stream).await.is_err(), "{stream} was made");
    }
}

/// The stream that captures `subject`, and whether it holds a message there
/// (the operator's view).
async fn holds(c: &Coalition, subject: &str) -> bool {
    let stream = match subject.strip_prefix("$KV.") {
        Some(rest) => format!("KV_{}", rest.split('.').next().unwrap()),
        None if subject.starts_with("refer_reads.") => "REFER_READS".to_owned(),
        None => "REFER".to_owned(),
    };
    let js = async_nats::jetstream::new(c.nats.connect().await);
    js.get_stream(stream)
        .await
        .unwrap()
        .get_last_raw_message_by_subject(subject)
        .await
        .is_ok()
}

/// nats-server checks the subject a client publishes to, never the reply
/// subject it names, and JetStream answers to that reply subject from
/// inside the server. Each process credential here names the store's
/// subjects as the reply of requests it may send: an API answer, an ack, and
/// bytes it staged in its own bucket and reads back. None may land.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_credential_can_have_the_server_answer_into_the_store() {
    let c = Coalition::start(1, 0).await;
    let targets = [
        "refer.provider.forged",
        "refer_reads.forged",
        "$KV.REFER_DATA_KEYS_DONATIONS.dek.forged",
        "$KV.REFER_INSTANCES.capacity.forged",
        "$KV.REFER_KEYS.forged",
        "$KV.REFER_LEASES.forged",
    ];
    let staged = "$KV.REFER_CONSOLE_SESSIONS.staged";
    let read_back = "$JS.API.DIRECT.GET.KV_REFER_CONSOLE_SESSIONS.$KV.REFER_CONSOLE_SESSIONS.staged";
    let asks = [
        ("console", staged, "chosen bytes"),
        ("console", read_back, ""),
        (
            "console",
            "$JS.API.STREAM.MSG.GET.KV_REFER_CONSOLE_SESSIONS",
            r#"{"last_by_subj":"$KV.REFER_CONSOLE_SESSIONS.staged"}"#,
        ),
        ("console", "$JS.API.STREAM.INFO.KV_REFER_CONSOLE_SESSIONS", ""),
        ("matcher", "$JS.API.STREAM.INFO.REFER", ""),
        ("capacity", "$JS.API.STREAM.MSG.GET.REFER", r#"{"seq":1}"#),
        ("intake", "$JS.API.INFO", ""),
    ];
    for (role, subject, payload) in asks {
        let (client, violations) = as_role(&c, role).await;
        for target in targets {
            client
                .publish_with_reply(subject, target, payload.to_owned().into())
                .await
                .unwrap();
        }
        client.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            violations.lock().unwrap().is_empty(),
            "{role} may send {subject}: {:?}",
            violations.lock().unwrap()
        );
    }
    for target in targets {
        assert!(!holds(&c, target).await, "a process had the server write {target}");
    }
    // Control: the same asks from inside the store's account do land, so
    // the check above can see a write.
    let operator = c.nats.connect().await;
    for target in targets {
        operator
            .publish_with_reply("$JS.API.STREAM.INFO.KV_REFER_CONSOLE_SESSIONS", target, "".into())
            .await
            .unwrap();
    }
    operator.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    for target in targets {
        assert!(holds(&c, target).await, "the operator's ask reached {target}");
    }
}

#[tokio::test]
async fn no_credential_may_wipe_a_bucket_with_a_rollup() {
    let c = Coalition::start(1, 0).await;
    seal_a_contact(&c).await;
    // Each role against every bucket deploy/nats/auth.conf lets it write.
    let cases = [
        ("intake", "REFER_DATA_KEYS_INTAKE"),
        ("donations", "REFER_KEYS"),
        ("capacity", "REFER_INSTANCES"),
        ("matcher", "REFER_LEASES"),
        ("matcher", "REFER_INSTANCES"),
    ];
    for (role, bucket) in cases {
        let (client, _) = as_role(&c, role).await;
        let js = async_nats::jetstream::new(client);
        // Under the role's own service name: instance names are per service.
        let subject = format!("$KV.{bucket}.{role}.probe");
        // The role may write the bucket (so what follows is refused for the
        // rollup, not for the subject)...
        js.publish(subject.clone(), "probe".into())
            .await
            .unwrap()
            .await
            .unwrap_or_else(|e| panic!("{role} writes {bucket}: {e}"));
        let before = entries(&c, bucket).await;
        assert!(before > 1, "{bucket} holds the services' entries");
        // ...but one entry with a rollup must not take the others with it.
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Rollup", "all");
        let rolled = match js.publish_with_headers(subject, headers, "wipe".into()).await {
            Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        assert!(rolled.is_err(), "{role} rolled {bucket} up");
        assert_eq!(entries(&c, bucket).await, before, "{role} wiped {bucket}");
    }
}

/// How many entries bucket `name` holds (the operator's view).
async fn entries(c: &Coalition, name: &str) -> u64 {
    let js = async_nats::jetstream::new(c.nats.connect().await);
    let mut stream = js.get_stream(format!("KV_{name}")).await.unwrap();
    stream.info().await.unwrap().state.messages
}

/// A fourth node that dials the cluster's routes with `cert` and `key`,
/// trusting the bus's CA (public, as a CA is). Its own clients log in to
/// the store's account (accounts meet across a route by name) without a
/// credential: whatever reaches it is the attacker's.
struct Rogue {
    child: std::process::Child,
    url: String,
    dir: tempfile::TempDir,
}

impl Rogue {
    fn start(cluster: &refer_testkit::NatsCluster, cert: &std::path::Path, key: &std::path::Path) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let [port, route_port] = refer_testkit::free_ports::<2>().unwrap();
        let routes: Vec<String> = (0..3).map(|i| cluster.node(i).route_url().unwrap()).collect();
        let config = format!(
            "listen: 127.0.0.1:{port}\nserver_name: rogue-{port}\nlog_file: \"{}\"\n\
             cluster {{\n  name: {}\n  listen: 127.0.0.1:{route_port}\n  routes: [{}]\n  \
             tls {{ cert_file: \"{}\", key_file: \"{}\", ca_file: \"{}\", verify: true, timeout: 2 }}\n}}\n\
             accounts {{ REFER_STORE {{ users: [{{ user: rogue, password: rogue }}] }} }}\n\
             no_auth_user: rogue\n",
            dir.path().join("rogue.log").display(),
            cluster.node(0).cluster_name().unwrap(),
            routes.join(", "),
            cert.display(),
            key.display(),
            cluster.access().keys.nats_ca_file().display(),
        );
        let path = dir.path().join("rogue.conf");
        std::fs::write(&path, config).unwrap();
        let child = std::process::Command::new(refer_testkit::server_binary().unwrap())
            .arg("-c")
            .arg(&path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        Self {
            child,
            url: format!("nats://127.0.0.1:{port}"),
            dir,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("rogue.log")).unwrap_or_default()
    }

    /// Whether a message the operator publishes on the cluster reaches the
    /// rogue's own client within `wait`.
    async fn hears_the_cluster(&self, cluster: &refer_testkit::NatsCluster, wait: Duration) -> bool {
        let mut listener = None;
        let started = std::time::Instant::now();
        while listener.is_none() && started.elapsed() < Duration::from_secs(10) {
            listener = async_nats::connect(&self.url).await.ok();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let listener = listener.expect("the rogue node listens");
        let mut heard = listener.subscribe("refer.>").await.unwrap();
        listener.flush().await.unwrap();
        let operator = cluster.node(0).connect().await;
        let deadline = std::time::Instant::now() + wait;
        while std::time::Instant::now() < deadline {
            operator.publish("refer.probe.rogue", "hello".into()).await.unwrap();
            operator.flush().await.unwrap();
            if let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(200), heard.next()).await {
                return true;
            }
        }
        false
    }
}

impl Drop for Rogue {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_certificate_cannot_join_the_bus_as_a_node() {
    let cluster = refer_testkit::NatsCluster::start().await.unwrap();
    let keys = cluster.access().keys;
    // Control: the same rogue with a node's certificate joins and hears
    // everything (a route is trusted with every subject), so the test can see a join.
    let (cert, key) = keys.node_cert();
    let node = Rogue::start(&cluster, &cert, &key);
    assert!(
        node.hears_the_cluster(&cluster, Duration::from_secs(15)).await,
        "a node certificate joins the routes: {}",
        node.log()
    );
    drop(node);
    // A service's or console's certificate, though: refused at the route's handshake.
    let (cert, key) = keys.service_cert();
    let rogue = Rogue::start(&cluster, &cert, &key);
    assert!(
        !rogue.hears_the_cluster(&cluster, Duration::from_secs(6)).await,
        "a service's certificate made its holder a node of the bus"
    );
}

/// Provider 0 declares `units` shelter beds at `site` through `client`.
async fn declare(
    client: &refer_proto::capacity::v1::capacity_client::CapacityClient<tonic::transport::Channel>,
    site: &str,
    units: u32,
) -> Result<(), tonic::Status> {
    let set = refer_proto::capacity::v1::SetCapacityRequest {
        idempotency_key: format!("declare-{units}"),
        provider_id: site.to_owned(),
        service: pb::ServiceKind::ShelterBed as i32,
        declared: units,
        expected_version: None,
    };
    let token = provider_token(0);
    client
        .clone()
        .set_capacity(refer_service::testing::authed(&token, set))
        .await
        .map(|_| ())
}

/// The stream drops a message whose id it saw in the last two minutes, on
/// any subject: a credential holder who could work out the id of a commit
/// to come (the aggregate and the command's key, every id the stream has
/// shown) and publish junk under it first would have that commit refused
/// as applied before. Ids are unguessable: the commit still lands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_under_a_commits_likely_message_id_does_not_block_it() {
    let c = Coalition::start(1, 0).await;
    let shelter = site(&c, 0, &[pb::ServiceKind::ShelterBed], 2).await;
    let provider = uuid::Uuid::parse_str(&shelter).unwrap();
    let aggregate = refer_domain::AggregateRef {
        kind: refer_domain::AggregateKind::Provider,
        id: provider,
    };
    // Every id a reader of the stream has seen, and the obvious one for
    // the declaration to come (`declare` uses the key "declare-3").
    let js = async_nats::jetstream::new(c.nats.connect().await);
    let mut stream = js.get_stream("REFER").await.unwrap();
    let last = stream.info().await.unwrap().state.last_sequence;
    let mut ids = vec![format!("{aggregate}/declare-3")];
    for seq in 1..=last {
        if let Ok(message) = stream.get_raw_message(seq).await {
            if let Some(id) = message.headers.get("Nats-Msg-Id") {
                ids.push(id.to_string());
            }
        }
    }
    let (donations, _) = as_role(&c, "donations").await;
    let squatter = async_nats::jetstream::new(donations);
    for id in &ids {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", id.as_str());
        squatter
            .publish_with_headers(
                format!("refer.standing.{}", uuid::Uuid::new_v4().simple()),
                headers,
                "junk".into(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let before = last_sequence(&c, "REFER").await;
    declare(&c.capacity, &shelter, 3).await.expect("the declaration lands");
    assert_eq!(
        last_sequence(&c, "REFER").await,
        before + 1,
        "the declaration was dropped"
    );
}

/// A credential may write only some kinds of aggregate's subjects, but a
/// commit names its own aggregate: a reader that trusted it let the matcher
/// forge intake's erasure of a placement, and donations register a site.
/// Readers pass over a commit whose aggregate is not its subject's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_credential_writes_another_kind_of_event_through_its_own_subjects() {
    use refer_domain::events::provider::ProviderEvent;
    let c = Coalition::start(1, 0).await;
    let shelter = site(&c, 0, &[pb::ServiceKind::ShelterBed], 2).await;
    let (donations, _) = as_role(&c, "donations").await;
    let forger = async_nats::jetstream::new(donations);
    let commit = |aggregate: refer_domain::AggregateRef, event: refer_domain::Event| {
        let meta = refer_domain::CommandMeta {
            occurred_at: refer_domain::sample::NIGHT,
            correlation_id: refer_domain::ids::CorrelationId::from_u128(1),
            causation_id: None,
            idempotency_key: None,
        };
        let envelope = refer_domain::Envelope::new(refer_domain::ids::EventId::from_u128(7), aggregate, &meta, event);
        refer_domain::encode_commit(&[envelope]).unwrap()
    };
    // A site's registration on a donation's subject of the same id, and a
    // donation's on another donation's subject.
    let (site_id, donation_id, other) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let registered = refer_domain::Event::Provider(ProviderEvent::Registered(Box::new(refer_domain::sample::shelter(
        provider_org(0),
    ))));
    let offered = refer_domain::Event::Donation(refer_domain::events::donation::DonationEvent::Registered(
        refer_domain::sample::hotel_rooms(business_org(0)),
    ));
    let forged = [
        (
            site_id,
            refer_domain::AggregateRef {
                kind: refer_domain::AggregateKind::Provider,
                id: site_id,
            },
            registered,
        ),
        (
            other,
            refer_domain::AggregateRef {
                kind: refer_domain::AggregateKind::Donation,
                id: donation_id,
            },
            offered,
        ),
    ];
    for (subject_id, aggregate, event) in forged {
        forger
            .publish(
                format!("refer.donation.{}", subject_id.simple()),
                commit(aggregate, event).into(),
            )
            .await
            .unwrap()
            .await
            .expect("the bus lets donations write its own subjects");
    }
    // Once the matcher has read past them, it knows one site, no donation.
    declare(&c.capacity, &shelter, 3).await.unwrap();
    let last = last_sequence(&c, "REFER").await;
    let mut matcher = refer_proto::matcher::v1::matcher_client::MatcherClient::new(c.channel(3));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        let status = matcher
            .get_status(refer_service::testing::authed(
                ADMIN,
                refer_proto::matcher::v1::GetStatusRequest {},
            ))
            .await
            .unwrap()
            .into_inner();
        if status.checkpoint >= last {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "the matcher never read {last}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!((status.providers, status.donations), (1, 0), "{status:?}");
    let get = refer_proto::capacity::v1::GetProviderRequest {
        provider_id: site_id.to_string(),
    };
    let found = c
        .capacity
        .clone()
        .get_provider(refer_service::testing::authed(&provider_token(0), get))
        .await;
    assert_eq!(
        found.map(|_| ()).unwrap_err().code(),
        tonic::Code::NotFound,
        "capacity knows the forged site"
    );
    let metrics = c.apps[0].metrics().await;
    assert!(metrics.contains("refer_commits_quarantined_total"), "{metrics}");
}

/// The idempotency bucket lives in memory and every service may write it:
/// uncapped, an outside attacker grew it without end. Filled past its cap,
/// it makes room by dropping its oldest bindings, never by refusing one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_credential_fills_a_nodes_memory_nor_blocks_commands_with_bindings() {
    let c = Coalition::start(1, 0).await;
    let shelter = site(&c, 0, &[pb::ServiceKind::ShelterBed], 2).await;
    let (capacity, _) = as_role(&c, "capacity").await;
    let filler = async_nats::jetstream::new(capacity);
    let junk = vec![b'x'; 900 * 1024];
    let cap = refer_service::provision::IDEMPOTENCY_CAP as u64;
    let entries = cap / junk.len() as u64 + 32;
    for n in 0..entries {
        filler
            .publish(format!("$KV.REFER_KEYS.junk-{n}"), junk.clone().into())
            .await
            .unwrap()
            .await
            .unwrap_or_else(|e| panic!("entry {n} of {entries} refused: {e}"));
    }
    let js = async_nats::jetstream::new(c.nats.connect().await);
    let state = js
        .get_stream("KV_REFER_KEYS")
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .state
        .clone();
    assert!(state.bytes <= cap, "the bucket holds {} bytes", state.bytes);
    assert!(
        state.messages < entries,
        "the oldest made room: {} of {entries}",
        state.messages
    );
    let before = last_sequence(&c, "REFER").await;
    declare(&c.capacity, &shelter, 3)
        .await
        .expect("a command binds its key in the full bucket");
    assert_eq!(last_sequence(&c, "REFER").await, before + 1);
}

/// The idempotency bucket lives in memory: a whole cluster restarting
/// loses it, and no service may make it again. Commands go on (each
/// replica binds keys on its own, counted) until the operator provisions
/// it again, after which bindings are shared once more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_idempotency_bucket_loses_the_check_never_a_command() {
    let c = Coalition::start(1, 0).await;
    let shelter = site(&c, 0, &[pb::ServiceKind::ShelterBed], 2).await;
    let js = async_nats::jetstream::new(c.nats.connect().await);
    js.delete_stream("KV_REFER_KEYS").await.unwrap();
    let before = last_sequence(&c, "REFER").await;
    declare(&c.capacity, &shelter, 3)
        .await
        .expect("a command without the bucket");
    assert_eq!(last_sequence(&c, "REFER").await, before + 1);
    let metrics = c.apps[0].metrics().await;
    assert!(metrics.contains("refer_idempotency_bucket_missing_total"), "{metrics}");
    assert!(
        js.get_stream("KV_REFER_KEYS").await.is_err(),
        "a service made the bucket"
    );
    refer_service::testing::provision(&c.setup.access(), 1).await;
    declare(&c.capacity, &shelter, 4)
        .await
        .expect("a command with the bucket back");
    let bucket = js.get_key_value("REFER_KEYS").await.unwrap();
    use futures::TryStreamExt;
    let bound: Vec<String> = bucket.keys().await.unwrap().try_collect().await.unwrap();
    assert_eq!(bound.len(), 1, "the binding is shared again: {bound:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_services_credential_is_rotated_without_downtime() {
    let mut c = Coalition::start(1, 0).await;
    let shelter = site(&c, 0, &[pb::ServiceKind::ShelterBed], 2).await;
    let old_seed = c.setup.keys.seed("capacity");
    let next = nkeys::KeyPair::new_user();

    // The operator lets the new key in beside the old one (docs/operations.md).
    let old_entry = "{ nkey: $REFER_NKEY_CAPACITY, permissions: $CAPACITY }";
    let beside = format!("{{ nkey: {}, permissions: $CAPACITY }}", next.public_key());
    c.nats
        .reload_auth(|conf| {
            assert!(
                conf.contains(old_entry),
                "auth.conf lists capacity's key as {old_entry}"
            );
            conf.replacen(old_entry, &format!("{old_entry}\n      {beside}"), 1)
        })
        .await
        .unwrap();
    let before = last_sequence(&c, "REFER").await;
    declare(&c.capacity, &shelter, 3)
        .await
        .expect("the running replica still writes");
    assert_eq!(last_sequence(&c, "REFER").await, before + 1);

    // The secret is replaced and a replica started with it serves beside the old one...
    std::fs::write(c.setup.keys.seed_file("capacity"), next.seed().unwrap()).unwrap();
    let replica =
        refer_service::testing::TestApp::spawn_named(refer_capacity::SERVICE, &c.setup, "capacity-next").await;
    let through_replica = refer_proto::capacity::v1::capacity_client::CapacityClient::new(replica.channel());
    declare(&through_replica, &shelter, 4)
        .await
        .expect("the new credential writes");
    assert_eq!(last_sequence(&c, "REFER").await, before + 2);

    // ...the old one stops, and the operator takes the old key out.
    c.apps[0].stop().await;
    c.nats.reload_auth(|conf| conf.replace(old_entry, "")).await.unwrap();
    declare(&through_replica, &shelter, 5)
        .await
        .expect("the new credential's connection carries on");
    assert_eq!(last_sequence(&c, "REFER").await, before + 3);
    let refused = async_nats::ConnectOptions::new()
        .nkey(old_seed)
        .add_root_certificates(c.setup.keys.nats_ca_file())
        .require_tls(true)
        .connect(c.nats.url())
        .await;
    assert!(refused.is_err(), "the old credential is refused once taken out");
}

#[tokio::test]
async fn no_service_may_take_or_drop_another_services_instance_name() {
    let c = Coalition::start(0, 0).await;
    let roles = ["capacity", "donations", "intake", "matcher"];
    let operator = async_nats::jetstream::new(c.nats.connect().await);
    let names = operator.get_key_value("REFER_INSTANCES").await.unwrap();
    for role in roles {
        let (client, _) = as_role(&c, role).await;
        let js = async_nats::jetstream::new(client);
        for other in roles {
            let entry = format!("{other}.probe-{role}");
            let written = match js.publish(format!("$KV.REFER_INSTANCES.{entry}"), "taken".into()).await {
                Ok(ack) => tokio::time::timeout(Duration::from_millis(500), ack)
                    .await
                    .is_ok_and(|acked| acked.is_ok()),
                Err(_) => false,
            };
            // What the bucket holds, as the operator reads it.
            let found = names.get(&entry).await.unwrap().is_some();
            if other == role {
                assert!(written && found, "{role} claims its own names");
            } else {
                assert!(!written && !found, "{role} wrote {other}'s instance names");
            }
        }
    }
    // Every service still serves under its name.
    for app in &c.apps {
        let mut health = tonic_health::pb::health_client::HealthClient::new(app.channel());
        let asked = tonic_health::pb::HealthCheckRequest { service: String::new() };
        let status = health.check(asked).await.unwrap().into_inner().status;
        assert_eq!(
            status,
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32,
            "{}",
            app.url()
        );
    }
}
