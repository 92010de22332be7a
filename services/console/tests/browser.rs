//! The console in a real browser (Debian's Chromium, driven by Playwright
//! from npm: `scripts/install-browser` installs both), against the whole
//! system started in-process: see `tests/console/flow.mjs` for what a
//! person does and what is checked.

use refer_console::config::Config;
use refer_proto::common::v1 as pb;
use refer_tests::*;
use std::path::PathBuf;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_intake_officer_and_a_provider_work_a_night_in_two_browsers() {
    let log = Log::capture("debug,h2=info,hyper=info,tower=info,async_nats=info");
    let mut c = Coalition::start(1, 1).await;
    site(&c, 0, &[pb::ServiceKind::ShelterBed], 2).await;
    // A legal clinic of the same partner whose count was declared three
    // days before the coalition's clock (`NIGHT`): stale under its 24 hours.
    let clinic = site(&c, 0, &[pb::ServiceKind::Legal], 1).await;
    let three_days_ago = refer_domain::sample::NIGHT.plus_secs(-72 * 3600);
    let declared_then = refer_domain::CommandMeta {
        occurred_at: three_days_ago,
        correlation_id: refer_domain::ids::CorrelationId::from_u128(1),
        causation_id: None,
        idempotency_key: Some(refer_domain::IdempotencyKey::new("stale-clinic").unwrap()),
    };
    c.store
        .execute::<refer_domain::provider::Provider>(
            clinic.parse().unwrap(),
            &refer_domain::provider::ProviderCommand::SetCapacity {
                service: refer_domain::kinds::ServiceKind::Legal,
                declared: 1,
            },
            &declared_then,
            None,
        )
        .await
        .unwrap();
    let urls = c.urls();
    let config = Config::from_sources(None, |key| {
        Some(match key {
            "REFER_LISTEN" => "127.0.0.1:0".to_owned(),
            "REFER_CAPACITY_URL" => urls[0].clone(),
            "REFER_DONATIONS_URL" => urls[1].clone(),
            "REFER_INTAKE_URL" => urls[2].clone(),
            "REFER_MATCHER_URL" => urls[3].clone(),
            "REFER_CA_FILE" => c.setup.keys.ca_file().display().to_string(),
            "REFER_TLS_CERT_FILE" => c.setup.keys.service_cert().0.display().to_string(),
            "REFER_TLS_KEY_FILE" => c.setup.keys.service_cert().1.display().to_string(),
            "REFER_TOKENS_FILE" => c.setup.tokens_file().display().to_string(),
            "REFER_TIME_ZONE" => "America/Los_Angeles".to_owned(),
            _ => return None,
        })
    })
    .unwrap();
    let console = refer_console::launch(&config).await.unwrap();

    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let chromium = std::env::var("REFER_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists() && root.join("tests/console/node_modules/playwright-core").exists(),
        "the browser tests need chromium and the npm packages: run scripts/install-browser"
    );
    let handshake = tempfile::tempdir().unwrap();
    let node = tokio::process::Command::new("node")
        .arg(root.join("tests/console/flow.mjs"))
        .env("CONSOLE_URL", format!("https://{}", console.addr))
        .env("CONSOLE_CERT", c.setup.keys.service_cert().0)
        // Requests the flow makes from node itself trust the test's CA.
        .env("NODE_EXTRA_CA_CERTS", c.setup.keys.ca_file())
        .env("INTAKE_TOKEN", INTAKE)
        .env("PROVIDER_TOKEN", provider_token(0))
        .env("BUSINESS_TOKEN", business_token(0))
        .env("ADMIN_TOKEN", ADMIN)
        .env("CHROMIUM", &chromium)
        .env("SCREENSHOTS", std::env::var("REFER_SCREENSHOTS").unwrap_or_default())
        .env("HANDSHAKE", handshake.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run node");
    let flow = tokio::spawn(node.wait_with_output());
    // When the flow has a form filled in, the intake service goes down.
    let started = std::time::Instant::now();
    while !handshake.path().join("ready").exists() && !flow.is_finished() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(240),
            "the flow never got ready"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    c.apps[2].stop().await;
    std::fs::write(handshake.path().join("stopped"), "").unwrap();
    let out = flow.await.unwrap().expect("node ran");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(out.status.success(), "the browser flow failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("console flow: all checks passed"));

    // Nothing of a person's identity in any log line (the console's included).
    let log = log.bytes();
    assert!(contains(&log, "signed in"), "the console logged its sign-ins");
    for case in ["NIGHT-A7", "NIGHT-B8", "Side door on Elm St"] {
        assert!(!contains(&log, case), "{case} in a log line");
    }
    console.stop().await.unwrap();
}
