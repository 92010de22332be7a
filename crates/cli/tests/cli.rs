//! The `refer` command against the four services running (in-process, over
//! real gRPC and a real nats-server), as each role would use it.

use refer_tests::*;
use serde_json::Value;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

struct Cli {
    urls: [String; 4],
    nats: String,
    /// The operator's credential on that bus, and the bus's CA.
    nkey: std::path::PathBuf,
    nats_ca: std::path::PathBuf,
    /// The CA of the services' certificates.
    ca: std::path::PathBuf,
}

impl Cli {
    /// The operator's command line against coalition `c`.
    fn of(c: &Coalition) -> Self {
        Self {
            urls: c.urls(),
            nats: c.nats.url(),
            nkey: c.setup.keys.seed_file("operator"),
            nats_ca: c.setup.keys.nats_ca_file(),
            ca: c.setup.keys.ca_file(),
        }
    }

    fn run(&self, token: &str, args: &[&str]) -> Output {
        self.run_with(token, args, &[])
    }

    /// `run` with more of the environment set (a time zone).
    fn run_with(&self, token: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_refer"))
            .args(args)
            .envs(env.iter().copied())
            .env("REFER_TOKEN", token)
            .env("REFER_CAPACITY_URL", &self.urls[0])
            .env("REFER_DONATIONS_URL", &self.urls[1])
            .env("REFER_INTAKE_URL", &self.urls[2])
            .env("REFER_MATCHER_URL", &self.urls[3])
            .env("REFER_NATS_URL", &self.nats)
            .env("REFER_NATS_NKEY_FILE", &self.nkey)
            .env("REFER_NATS_CA_FILE", &self.nats_ca)
            .env("REFER_CA_FILE", &self.ca)
            .env("HOME", "/nonexistent")
            .output()
            .expect("run refer")
    }

    /// Runs with `--json` and parses stdout; panics with stderr on failure.
    fn json(&self, token: &str, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.run(token, &all);
        assert!(
            out.status.success(),
            "refer {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
    }

    fn fails(&self, token: &str, args: &[&str]) -> String {
        let out = self.run(token, args);
        assert!(!out.status.success(), "refer {args:?} should fail");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_does_its_job_from_the_command_line() {
    let c = Coalition::start(1, 1).await;
    let cli = Cli::of(&c);
    let provider = provider_token(0);
    let business = business_token(0);
    let cli = std::sync::Arc::new(cli);

    let run = |token: String, args: Vec<&'static str>| {
        let cli = cli.clone();
        async move {
            tokio::task::spawn_blocking(move || cli.json(&token, &args))
                .await
                .unwrap()
        }
    };

    // A shelter registers and declares two beds.
    let site = run(
        provider.clone(),
        vec![
            "provider",
            "register",
            "--name",
            "Harbor House",
            "--services",
            "bed,counseling",
            "--languages",
            "en,es",
            "--at",
            "34.05,-118.24",
            "--region",
            "US-06-037",
        ],
    )
    .await;
    let id = site["provider_id"].as_str().unwrap().to_owned();
    let id: &'static str = Box::leak(id.into_boxed_str());
    let shown = run(provider.clone(), vec!["provider", "capacity", "set", id, "bed", "2"]).await;
    assert_eq!(shown["capacity"][0]["declared"], 2);
    let adjusted = run(
        provider.clone(),
        vec!["provider", "capacity", "adjust", id, "bed", "-1"],
    )
    .await;
    assert_eq!(adjusted["capacity"][0]["free"], 1);
    run(
        provider.clone(),
        vec!["provider", "capacity", "set", id, "counseling", "1"],
    )
    .await;
    // Each capacity says when it was declared, in the reader's local time,
    // and that it is fresh (no "stale"); the JSON gives the instant.
    assert!(shown["capacity"][0]["as_of_ms"].as_i64().unwrap() > 1_700_000_000_000);
    assert_eq!(shown["capacity"][0]["stale"], false);
    let table = cli.run_with(&provider, &["provider", "show", id], &[("TZ", "America/Los_Angeles")]);
    let table = String::from_utf8_lossy(&table.stdout).into_owned();
    assert!(table.contains("AS OF"), "{table}");
    assert!(table.contains(" PST") || table.contains(" PDT"), "local time: {table}");
    assert!(!table.contains("stale"), "{table}");
    // The list says it too, for every site.
    let listed = run(provider.clone(), vec!["provider", "list"]).await;
    let capacity = &listed[0]["capacity"];
    assert!(
        capacity[0]["as_of_ms"].as_i64().unwrap() > 1_700_000_000_000,
        "{listed}"
    );
    assert_eq!(capacity[0]["stale"], false, "{listed}");
    let list = cli.run_with(&provider, &["provider", "list"], &[("TZ", "America/Los_Angeles")]);
    let list = String::from_utf8_lossy(&list.stdout).into_owned();
    assert!(
        list.contains("(as of ") && (list.contains(" PST)") || list.contains(" PDT)")),
        "{list}"
    );

    // A hotel donates rooms.
    let donated = run(
        business.clone(),
        vec![
            "business",
            "donate",
            "--kind",
            "hotel-room-night",
            "--quantity",
            "4",
            "--from",
            "2026-11-25T00:00Z",
            "--until",
            "2026-12-05T00:00Z",
            "--at",
            "34.06,-118.30",
            "--region",
            "US-06-037",
            "--max-per-need",
            "3",
        ],
    )
    .await;
    assert_eq!(donated[0]["quantity"], "4");
    let listed = run(business.clone(), vec!["business", "list"]).await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let donation: &'static str = Box::leak(listed[0]["donation"].as_str().unwrap().to_owned().into_boxed_str());
    let shown = run(business.clone(), vec!["business", "show", donation]).await;
    assert_eq!(shown[0]["free"], "4");
    let sites = run(provider.clone(), vec!["provider", "list"]).await;
    assert_eq!(sites[0]["name"], "Harbor House");

    // Intake requests a bed and counseling for one woman.
    let placed = run(
        INTAKE.to_string(),
        vec![
            "intake",
            "request",
            "--case-reference",
            "CASE-11",
            "--needs",
            "shelter,counseling",
            "--languages",
            "es",
            "--at",
            "33.77,-118.19",
            "--region",
            "US-06-037",
            "--max-km",
            "80",
            "--avoid",
            "US-06-059",
        ],
    )
    .await;
    let placement = placed[0]["placement"].as_str().unwrap().to_owned();
    let placement: &'static str = Box::leak(placement.into_boxed_str());

    // The shelter sees the referrals and accepts them.
    let started = Instant::now();
    let referrals = loop {
        let list = run(provider.clone(), vec!["provider", "referrals", id, "--pending"]).await;
        if list.as_array().unwrap().len() == 2 {
            break list;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "no referrals: {list}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Intake sees when the shelter's answer is due.
    let status = run(INTAKE.to_string(), vec!["intake", "status", placement]).await;
    assert!(
        status
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["status"] != "proposed" || n["detail"].as_str().unwrap().starts_with("answer due")),
        "{status}"
    );
    // The hand-off: the agency's on-call desk, the shelter's default door.
    let contact = run(
        INTAKE.to_string(),
        vec!["intake", "handoff", "Night duty desk, 555-0199"],
    )
    .await;
    assert_eq!(contact[0]["contact"], "Night duty desk, 555-0199");
    let door = run(
        provider.clone(),
        vec![
            "provider",
            "handoff",
            id,
            "Side door on Elm St; ask for the duty worker",
        ],
    )
    .await;
    assert_eq!(
        door[0]["default_handoff"],
        "Side door on Elm St; ask for the duty worker"
    );
    for r in referrals.as_array().unwrap() {
        assert_eq!(r["languages"], "es");
        assert_eq!(r["agency_handoff"], "", "nothing of the agency before acceptance");
        let referral: &'static str = Box::leak(r["referral"].as_str().unwrap().to_owned().into_boxed_str());
        let answered = run(provider.clone(), vec!["provider", "accept", id, referral]).await;
        assert_eq!(answered[0]["status"], "accepted");
        assert_eq!(answered[0]["agency_handoff"], "call Night duty desk, 555-0199");
    }
    let started = Instant::now();
    loop {
        let status = run(INTAKE.to_string(), vec!["intake", "status", placement]).await;
        if status.as_array().unwrap().iter().all(|n| n["status"] == "accepted") {
            assert!(status[0]["placed_with"].as_str().unwrap().contains(id));
            assert!(
                status
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|n| n["detail"] == "at Harbor House: Side door on Elm St; ask for the duty worker"),
                "{status}"
            );
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "not accepted: {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Watching the placement replays its changes, then would follow live ones.
    let mut watch = Command::new(env!("CARGO_BIN_EXE_refer"))
        .args(["intake", "watch", placement, "--json"])
        .env("REFER_TOKEN", INTAKE)
        .env("REFER_INTAKE_URL", &cli.urls[2])
        .env("REFER_CA_FILE", &cli.ca)
        .env("HOME", "/nonexistent")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines = tokio::task::spawn_blocking({
        let stdout = watch.stdout.take().unwrap();
        move || {
            use std::io::BufRead;
            let mut accepted = 0;
            for line in std::io::BufReader::new(stdout).lines() {
                let change: Value = serde_json::from_str(&line.unwrap()).unwrap();
                if change["status"] == "accepted" {
                    accepted += 1;
                }
                if accepted == 2 {
                    break;
                }
            }
            accepted
        }
    });
    let accepted = tokio::time::timeout(Duration::from_secs(20), lines)
        .await
        .expect("watch output")
        .unwrap();
    watch.kill().unwrap();
    watch.wait().unwrap();
    assert_eq!(accepted, 2);

    // Who read what: the agency its case reference and the shelter's
    // hand-off (setting its contact reads nothing), the shelter the
    // agency's contact, its own default and hand-off; never the content.
    let admin = run(ADMIN.to_string(), vec!["admin", "reads"]).await;
    let kinds = |reads: &Value, role: &str| -> Vec<String> {
        let mut kinds: Vec<String> = reads
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["reader"] == role)
            .map(|r| r["kind"].as_str().unwrap().to_owned())
            .collect();
        kinds.sort();
        kinds.dedup();
        kinds
    };
    assert_eq!(kinds(&admin, "intake"), ["case_reference", "handoff"], "{admin}");
    // The shelter's acceptances copied its default door into the hand-off.
    assert_eq!(
        kinds(&admin, "provider"),
        ["agency_contact", "handoff", "site_handoff"],
        "{admin}"
    );
    let text = admin.to_string();
    for content in ["CASE-11", "Night duty desk", "Side door on Elm St"] {
        assert!(!text.contains(content), "{content} in the read log: {text}");
    }
    let theirs = run(provider.clone(), vec!["provider", "reads"]).await;
    assert!(
        theirs.as_array().unwrap().iter().all(|r| r["kind"] != "case_reference"),
        "{theirs}"
    );
    assert_eq!(
        kinds(&theirs, "intake"),
        ["handoff"],
        "the agency read the shelter's hand-off"
    );
    let agency = run(INTAKE.to_string(), vec!["intake", "reads"]).await;
    assert!(
        kinds(&agency, "provider").contains(&"agency_contact".to_owned()),
        "{agency}"
    );
    let hotel = run(business.clone(), vec!["business", "reads"]).await;
    assert_eq!(
        hotel.as_array().unwrap().len(),
        0,
        "nothing of the hotel's was read: {hotel}"
    );

    // The admin sees the matcher's workload; counts only.
    let stats = run(ADMIN.to_string(), vec!["admin", "stats"]).await;
    assert_eq!(stats["providers"], "1");
    assert_eq!(stats["pending_referrals"], "0");

    // Everything is up.
    let doctor = run(ADMIN.to_string(), vec!["doctor"]).await;
    assert!(
        doctor.as_array().unwrap().iter().all(|c| c["status"] == "ok"),
        "{doctor}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_say_what_went_wrong_and_what_to_do() {
    let c = Coalition::start(1, 0).await;
    let cli = Cli::of(&c);
    let cli = std::sync::Arc::new(cli);
    let fails = |token: &'static str, args: Vec<&'static str>| {
        let cli = cli.clone();
        async move {
            tokio::task::spawn_blocking(move || cli.fails(token, &args))
                .await
                .unwrap()
        }
    };
    let err = fails("not-a-token", vec!["admin", "stats"]).await;
    assert!(
        err.contains("rejected the token") && err.contains("REFER_TOKEN"),
        "{err}"
    );
    let err = fails(INTAKE, vec!["admin", "stats"]).await;
    assert!(err.contains("not allowed"), "{err}");
    // Several replicas listed: the first that answers is used.
    let replicas = format!("http://127.0.0.1:9,{}", c.urls()[2]);
    let listed = {
        let cli = cli.clone();
        tokio::task::spawn_blocking(move || cli.json(INTAKE, &["intake", "list", "--intake", &replicas]))
            .await
            .unwrap()
    };
    assert!(listed.is_array(), "{listed}");
    let err = fails(
        INTAKE,
        vec![
            "intake",
            "request",
            "--needs",
            "shelter",
            "--party-size",
            "40",
            "--at",
            "33.77,-118.19",
            "--region",
            "US-06-037",
        ],
    )
    .await;
    assert!(err.contains("person.profile.party_size"), "{err}");
    let err = fails(
        INTAKE,
        vec![
            "intake",
            "request",
            "--needs",
            "shelter",
            "--at",
            "333,0",
            "--region",
            "US-06-037",
        ],
    )
    .await;
    assert!(err.contains("latitude"), "{err}");
    // An unreachable service names the address and the way to check.
    let out = Command::new(env!("CARGO_BIN_EXE_refer"))
        .args(["intake", "list", "--intake", "http://127.0.0.1:9"])
        .env("REFER_TOKEN", INTAKE)
        .env("HOME", "/nonexistent")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains("cannot reach the intake service at http://127.0.0.1:9")
            && err.contains("refer doctor"),
        "{err}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_refer"))
        .args([
            "doctor",
            "--nats",
            "nats://127.0.0.1:9",
            "--capacity",
            "http://127.0.0.1:9",
        ])
        .env("HOME", "/nonexistent")
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success() && report.contains("FAIL") && report.contains("unreachable"),
        "{report}"
    );
}

#[test]
fn an_admin_adds_a_partner_and_lists_tokens_without_revealing_them() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_refer"))
        .args([
            "admin",
            "add-partner",
            "--name",
            "Seaside Hotel",
            "--role",
            "business",
            "--json",
        ])
        .env("REFER_TOKENS_FILE", &file)
        .env("HOME", "/nonexistent")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let added: Value = serde_json::from_slice(&out.stdout).unwrap();
    let token = added["token"].as_str().unwrap();
    let book = refer_service::TokenBook::load(&file).unwrap();
    let mut metadata = tonic::metadata::MetadataMap::new();
    metadata.insert("authorization", format!("Bearer {token}").parse().unwrap());
    assert_eq!(
        book.authenticate(&metadata).unwrap().role,
        refer_service::Role::Business
    );
    let out = Command::new(env!("CARGO_BIN_EXE_refer"))
        .args(["admin", "tokens", "--tokens-file", file.to_str().unwrap()])
        .env("HOME", "/nonexistent")
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(listing.contains("Seaside Hotel") && listing.contains("business"));
    assert!(!listing.contains(token), "the token itself is never listed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_rotates_the_key_encryption_key() {
    use refer_domain::standing::StandingEvent;
    use refer_domain::Event;
    let c = Coalition::start(0, 0).await;
    let contact = "Night duty desk, 555-0199";
    let set = refer_proto::intake::v1::SetHandoffContactRequest {
        idempotency_key: "contact".into(),
        contact: contact.into(),
    };
    c.intake
        .clone()
        .set_handoff_contact(refer_service::testing::authed(INTAKE, set))
        .await
        .unwrap();
    let fresh = c.setup.dir.path().join("new-kek.hex");
    std::fs::write(&fresh, "5a".repeat(32)).unwrap();
    let cli = Cli::of(&c);
    let old = c.setup.kek_file();
    let (new_path, old_path) = (fresh.display().to_string(), old.display().to_string());
    let rotated = tokio::task::spawn_blocking(move || {
        cli.json(
            ADMIN,
            &["admin", "rotate-kek", "--kek", &new_path, "--previous", &old_path],
        )
    })
    .await
    .unwrap();
    assert_eq!(
        rotated["bucket"],
        "REFER_DATA_KEYS_CAPACITY,REFER_DATA_KEYS_DONATIONS,REFER_DATA_KEYS_INTAKE"
    );
    assert_eq!(rotated["rewrapped"], "1", "{rotated}");

    // The new key alone opens the contact; the old one alone no longer does.
    let commits = c
        .store
        .read_all(0, c.store.last_sequence().await.unwrap())
        .await
        .unwrap();
    let sealed = commits
        .iter()
        .flat_map(|x| &x.events)
        .find_map(|e| match &e.event {
            Event::Standing(StandingEvent::Set { text, .. }) => Some(text.clone()),
            _ => None,
        })
        .unwrap();
    let js = async_nats::jetstream::new(c.nats.connect().await);
    let purpose = refer_service::sealing::purpose::agency_contact(AGENCY);
    let with = |kek: &std::path::Path| {
        let js = js.clone();
        let kek = refer_sealed::Kek::load(kek).unwrap();
        async move {
            refer_sealed::Vault::open(&js, "REFER_DATA_KEYS_INTAKE", kek, vec![])
                .await
                .unwrap()
        }
    };
    assert_eq!(with(&fresh).await.open_text(&sealed, &purpose).await.unwrap(), contact);
    assert!(matches!(
        with(&old).await.open_text(&sealed, &purpose).await,
        Err(refer_sealed::SealError::UnknownKek { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_hardens_the_buckets_an_earlier_version_made() {
    use async_nats::jetstream::kv;
    use refer_service::buckets::{Bucket, Storage};
    let c = Coalition::start(0, 0).await;
    let js = async_nats::jetstream::new(c.nats.connect().await);
    // As an earlier version made its buckets: by async-nats, rollups allowed.
    js.create_key_value(kv::Config {
        bucket: "REFER_EARLIER".into(),
        history: 1,
        ..Default::default()
    })
    .await
    .unwrap();
    let earlier = Bucket {
        name: "REFER_EARLIER".into(),
        description: "an earlier bucket",
        replicas: 1,
        max_age: Duration::ZERO,
        storage: Storage::File,
        cap: None,
    };
    let reopen = || earlier.open(&js);
    // And the idempotency bucket as an earlier version made it: uncapped.
    let mut keys = js
        .get_stream("KV_REFER_KEYS")
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .config
        .clone();
    (keys.max_bytes, keys.discard) = (-1, async_nats::jetstream::stream::DiscardPolicy::New);
    js.update_stream(&keys).await.unwrap();
    let refused = reopen()
        .await
        .expect_err("a bucket that allows rollups is refused")
        .to_string();
    assert!(refused.contains("refer admin harden-buckets"), "{refused}");

    let cli = Cli::of(&c);
    let out = cli.json("", &["admin", "harden-buckets"]);
    let mut hardened: Vec<&str> = out["hardened"].as_str().unwrap().split(',').collect();
    hardened.sort_unstable();
    assert_eq!(
        hardened,
        ["REFER_EARLIER", "REFER_KEYS"],
        "this version's buckets need nothing"
    );
    let keys = js
        .get_stream("KV_REFER_KEYS")
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .config
        .clone();
    assert_eq!(keys.max_bytes, refer_client::provision::IDEMPOTENCY_CAP);
    let bucket = reopen().await.expect("opens once hardened");
    bucket.put("kept", "v".into()).await.unwrap();
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Rollup", "all");
    let ack = js
        .publish_with_headers("$KV.REFER_EARLIER.wipe", headers, "x".into())
        .await
        .unwrap();
    assert!(ack.await.is_err(), "a rollup is refused now");
    assert!(bucket.get("kept").await.unwrap().is_some());
    // Run again, it finds nothing left to do.
    let again = cli.json("", &["admin", "harden-buckets"]);
    assert_eq!(again["hardened"], "");
}

/// The operator's `admin provision` makes every stream and bucket a
/// deployment needs (no service may), as Refer makes them; run again, it
/// changes nothing; a stream someone made otherwise under one of its names
/// is refused, named, and left for the operator to remove.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_provisions_every_stream_and_bucket_once() {
    let nats = refer_testkit::NatsServer::start().await.unwrap();
    let access = nats.access();
    let cli = Cli {
        urls: Default::default(),
        nats: nats.url(),
        nkey: access.keys.seed_file("operator"),
        nats_ca: access.keys.nats_ca_file(),
        ca: access.keys.ca_file(),
    };
    let expected = "REFER,REFER_READS,REFER_DATA_KEYS_CAPACITY,REFER_DATA_KEYS_DONATIONS,REFER_DATA_KEYS_INTAKE,\
                    REFER_KEYS,REFER_INSTANCES,REFER_LEASES,REFER_CONSOLE_SESSIONS";
    let out = cli.json("", &["admin", "provision", "--console-idle-minutes", "45"]);
    assert_eq!(out["ready"], expected);
    let js = async_nats::jetstream::new(nats.connect().await);
    let mut sessions = js.get_stream("KV_REFER_CONSOLE_SESSIONS").await.unwrap();
    let config = sessions.info().await.unwrap().config.clone();
    assert_eq!(config.max_age, Duration::from_secs(45 * 60));
    assert!(!config.allow_rollup && config.deny_delete);
    let keys = js.get_stream("REFER_READS").await.unwrap().cached_info().config.clone();
    assert!(keys.deny_delete && keys.deny_purge, "the read log is append-only");
    let last = js.get_stream("REFER").await.unwrap().cached_info().state.last_sequence;
    assert_eq!(
        cli.json("", &["admin", "provision", "--console-idle-minutes", "45"])["ready"],
        expected
    );
    assert_eq!(
        js.get_stream("REFER").await.unwrap().cached_info().state.last_sequence,
        last
    );

    // A stream or bucket made otherwise under one of its names (to capture
    // more, to be wiped, to forget) is refused, named, with what differs.
    use async_nats::jetstream::stream::{Config, Republish};
    let tampered = [
        (
            Config {
                name: "REFER_READS".into(),
                subjects: vec!["refer_reads.>".into(), "_INBOX_intake.>".into()],
                ..Default::default()
            },
            "subjects",
        ),
        (
            Config {
                name: "REFER".into(),
                subjects: vec!["refer.>".into()],
                allow_direct: true,
                allow_atomic_publish: true,
                allow_rollup: true,
                ..Default::default()
            },
            "allow_rollup_hdrs true where Refer makes false",
        ),
        (
            Config {
                name: "KV_REFER_DATA_KEYS_INTAKE".into(),
                subjects: vec!["$KV.REFER_DATA_KEYS_INTAKE.>".into()],
                max_messages_per_subject: 2,
                discard: async_nats::jetstream::stream::DiscardPolicy::New,
                republish: Some(Republish {
                    source: ">".into(),
                    destination: "_INBOX_capacity.>".into(),
                    headers_only: false,
                }),
                ..Default::default()
            },
            "a republish",
        ),
        (
            Config {
                name: "KV_REFER_LEASES".into(),
                subjects: vec!["$KV.REFER_LEASES.>".into()],
                max_messages_per_subject: 1,
                max_age: Duration::from_secs(3600),
                deny_delete: true,
                allow_direct: true,
                discard: async_nats::jetstream::stream::DiscardPolicy::New,
                ..Default::default()
            },
            "max_age 3600s where Refer makes 3s",
        ),
        (
            Config {
                name: "REFER_READS".into(),
                subjects: vec!["refer_reads.>".into()],
                allow_direct: true,
                deny_delete: true,
                deny_purge: true,
                allow_atomic_publish: true,
                duplicate_window: Duration::from_secs(1),
                ..Default::default()
            },
            "duplicate_window 1s where Refer makes 120s",
        ),
        (
            Config {
                name: "KV_REFER_INSTANCES".into(),
                subjects: vec!["$KV.REFER_INSTANCES.>".into()],
                max_messages_per_subject: 1,
                max_age: Duration::from_secs(6),
                deny_delete: true,
                allow_direct: true,
                no_ack: true,
                discard: async_nats::jetstream::stream::DiscardPolicy::New,
                ..Default::default()
            },
            "no_ack true where Refer makes false",
        ),
    ];
    for (config, differs) in tampered {
        let other = refer_testkit::NatsServer::start().await.unwrap();
        let js = async_nats::jetstream::new(other.connect().await);
        let name = config.name.clone();
        js.create_stream(config).await.unwrap();
        let cli = Cli {
            urls: Default::default(),
            nats: other.url(),
            nkey: other.access().keys.seed_file("operator"),
            nats_ca: other.access().keys.nats_ca_file(),
            ca: other.access().keys.ca_file(),
        };
        let refused = tokio::task::spawn_blocking(move || cli.run("", &["admin", "provision"]))
            .await
            .unwrap();
        assert!(!refused.status.success(), "{name} was taken as it is");
        let why = String::from_utf8_lossy(&refused.stderr);
        let stream = name.strip_prefix("KV_").unwrap_or(&name).to_owned();
        assert!(why.contains(&stream) && why.contains("not as Refer makes it"), "{why}");
        assert!(why.contains(differs), "{why}");
    }
}

/// The operator's month report, read from the stream: raw counts for the
/// coalition's eyes, and what `--publish` lets leave it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_reports_the_month_raw_and_as_it_may_be_published() {
    let c = Coalition::start(1, 0).await;
    let shelter = site(&c, 0, &[refer_proto::common::v1::ServiceKind::ShelterBed], 2).await;
    accept_every_referral(&c, 0, shelter);
    for n in 0..6 {
        request_person(
            &c,
            &format!("report-{n}"),
            person(&format!("ZQ9-R{n}"), &[refer_proto::common::v1::NeedKind::Shelter]),
        )
        .await;
    }
    let cli = std::sync::Arc::new(Cli::of(&c));
    let report = |args: &'static [&'static str]| {
        let cli = cli.clone();
        async move { tokio::task::spawn_blocking(move || cli.json("", args)).await.unwrap() }
    };
    // Two beds: two placed once the shelter has answered.
    let deadline = Instant::now() + Duration::from_secs(20);
    let raw = loop {
        let raw = report(&["admin", "report", "--from", "2026-11"]).await;
        let needs = &raw["tables"][0];
        assert_eq!(needs["title"], "needs by kind and outcome");
        assert_eq!(needs["rows"][0], "shelter");
        assert_eq!(needs["row_totals"][0], 6, "{raw}");
        if needs["cells"][0][0] == 2 {
            break raw;
        }
        assert!(Instant::now() < deadline, "never two placed: {raw}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let delays = raw["times"].as_array().unwrap();
    assert_eq!(delays[1]["name"], "request to acceptance");
    assert_eq!(delays[1]["needs"], 2);
    assert_eq!(raw["providers_active"], 1);

    // Published: the two placed (by one shelter: not even "< 5"), and the
    // four not, hidden; the six shown.
    let published = report(&["admin", "report", "--from", "2026-11", "--publish"]).await;
    let needs = &published["tables"][0];
    assert_eq!(needs["cells"][0][0], "suppressed", "{published}");
    assert_eq!(needs["cells"][0][1], "< 5", "{published}");
    assert_eq!(needs["row_totals"][0], 6, "{published}");
    assert_eq!(
        published["times"][1]["median_minutes"],
        Value::Null,
        "two needs are too few"
    );
    assert_eq!(published["providers_active"], "< 5");
    // The services' clock is at 2026-11-26 (refer_service::testing).
    assert_eq!(published["from_month"], "2026-11", "a month, never a day");
    let december = report(&["admin", "report", "--from", "2026-12"]).await;
    assert_eq!(december["tables"][0]["total"], 0, "November's needs are not December's");
    let csv = cli.run("", &["admin", "report", "--from", "2026-11", "--publish", "--csv"]);
    let csv = String::from_utf8_lossy(&csv.stdout).into_owned();
    assert!(
        csv.starts_with(
            "needs by kind and outcome,placed,waitlisted,declined,expired,cancelled,open,total\nshelter,suppressed,"
        ),
        "{csv}"
    );
    let refused = cli.fails("", &["admin", "report", "--from", "2026-13"]);
    assert!(
        refused.contains("--from/--to") && refused.contains("YYYY-MM"),
        "{refused}"
    );

    // A partner's own, through the matcher with its token: the agency
    // asked for all six, so its figures are the operator's; the shelter
    // was offered the two it took.
    let (agency, shelter) = tokio::task::spawn_blocking({
        let cli = cli.clone();
        move || {
            (
                cli.json(INTAKE, &["report", "--from", "2026-11"]),
                cli.json(&provider_token(0), &["report", "--from", "2026-11"]),
            )
        }
    })
    .await
    .unwrap();
    assert_eq!(agency["tables"], raw["tables"], "{agency}");
    assert_eq!(agency["organisation_id"], AGENCY.as_uuid().simple().to_string());
    assert_eq!(shelter["tables"][0]["cells"][0][0], 2, "{shelter}");
    assert_eq!(shelter["tables"][0]["total"], 2, "{shelter}");
    let theirs = cli.run(INTAKE, &["report", "--from", "2026-11", "--publish", "--csv"]);
    let tables = |csv: &str| csv.split("delays,median,p90\n").next().unwrap().to_owned();
    assert_eq!(
        tables(&String::from_utf8_lossy(&theirs.stdout)),
        tables(&csv),
        "the same published tables"
    );
    // The CSV holds every figure: the delays and the partners active too.
    assert!(csv.contains("\ndelays,median,p90\nrequest to first proposal,"), "{csv}");
    assert!(csv.contains("\npartners active,count\nproviders,"), "{csv}");
    let other = provider_org(0).as_uuid().to_string();
    let refused = cli.fails(INTAKE, &["report", "--org", &other]);
    assert!(
        refused.contains("organisation_id") && refused.contains("own"),
        "{refused}"
    );
}

/// A stolen service credential can make consumers until the store's bound
/// is reached (docs/operations.md, "Limits"); the operator prunes the idle
/// ones, and the services' own, which always pull, stay and go on serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_prunes_junk_consumers_and_keeps_the_services() {
    use async_nats::jetstream::consumer::pull;
    let c = Coalition::start(1, 0).await;
    let shelter = site(&c, 0, &[refer_proto::common::v1::ServiceKind::ShelterBed], 2).await;
    let thief = async_nats::ConnectOptions::new()
        .nkey(c.setup.keys.seed("matcher"))
        .custom_inbox_prefix(refer_service::runtime::inbox_of("matcher"))
        .add_root_certificates(c.setup.keys.nats_ca_file())
        .require_tls(true)
        .connect(c.nats.url())
        .await
        .unwrap();
    let stream = async_nats::jetstream::new(thief).get_stream("REFER").await.unwrap();
    let junk: Vec<String> = (0..12).map(|n| format!("junk{n}")).collect();
    for name in &junk {
        stream
            .create_consumer(pull::Config {
                durable_name: Some(name.clone()),
                ..Default::default()
            })
            .await
            .expect("a service credential may make consumers");
    }
    let operator = async_nats::jetstream::new(c.nats.connect().await);
    let names = || async {
        use tokio_stream::StreamExt;
        let stream = operator.get_stream("REFER").await.unwrap();
        let names: Vec<String> = stream.consumer_names().filter_map(|n| n.ok()).collect().await;
        names
    };
    let services: Vec<String> = names().await.into_iter().filter(|n| !junk.contains(n)).collect();
    assert!(services.len() >= 4, "every service pulls from a consumer: {services:?}");
    tokio::time::sleep(Duration::from_secs(2)).await;

    let cli = std::sync::Arc::new(Cli::of(&c));
    let pruned = {
        let cli = cli.clone();
        tokio::task::spawn_blocking(move || cli.json("", &["admin", "prune-consumers", "--idle-seconds", "1"]))
            .await
            .unwrap()
    };
    assert_eq!(pruned["pruned"], "12", "{pruned}");
    let mut left = names().await;
    left.sort();
    let mut kept = services.clone();
    kept.sort();
    assert_eq!(left, kept, "the services' consumers stay, the junk goes");

    // And the services go on: a declaration reaches capacity's referral board.
    let shown = tokio::task::spawn_blocking({
        let cli = cli.clone();
        let id: &'static str = Box::leak(shelter.into_boxed_str());
        move || cli.json(&provider_token(0), &["provider", "capacity", "set", id, "bed", "5"])
    })
    .await
    .unwrap();
    assert_eq!(shown["capacity"][0]["declared"], 5, "{shown}");
}
