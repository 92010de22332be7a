//! The `refer-capacity` binary as an operator runs it: configured from the
//! environment, discoverable through gRPC health and reflection, answering
//! UNAVAILABLE while NATS is down, and stopping cleanly on SIGTERM.

use refer_proto::capacity::v1 as pb;
use refer_proto::capacity::v1::capacity_client::CapacityClient;
use refer_service::auth::hash_token;
use refer_service::testing::authed;
use refer_testkit::NatsServer;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio_stream::StreamExt;
use tonic::transport::Channel;

const TOKEN: &str = "operator-admin-token";

/// The services' certificates verified against the test's services CA.
fn tls(nats: &NatsServer) -> refer_service::tls::ClientTls {
    refer_service::tls::ClientTls {
        ca_file: Some(nats.access().keys.ca_file()),
        ..Default::default()
    }
}

fn spawn(nats: &NatsServer, dir: &std::path::Path, port: u16, metrics_port: u16) -> Child {
    let tokens = dir.join("tokens.toml");
    let entry = format!(
        "[[token]]\nname = \"admin\"\nrole = \"admin\"\norg = \"6f1c0a7e-0b1d-4c47-9a51-5c6f0e3b2a10\"\nsha256 = \"{}\"\n",
        hash_token(TOKEN)
    );
    std::fs::write(&tokens, entry).unwrap();
    let kek = dir.join("kek.hex");
    std::fs::write(&kek, "42".repeat(32)).unwrap();
    Command::new(env!("CARGO_BIN_EXE_refer-capacity"))
        .env("REFER_KEK_FILE", &kek)
        .env("REFER_NATS_URL", nats.url())
        .env("REFER_NATS_NKEY_FILE", nats.access().keys.seed_file("capacity"))
        .env("REFER_NATS_CA_FILE", nats.access().keys.nats_ca_file())
        .env("REFER_TLS_CERT_FILE", nats.access().keys.service_cert().0)
        .env("REFER_TLS_KEY_FILE", nats.access().keys.service_cert().1)
        .env("REFER_DATA_DIR", dir.join("data"))
        .env("REFER_LISTEN", format!("127.0.0.1:{port}"))
        .env("REFER_METRICS_LISTEN", format!("127.0.0.1:{metrics_port}"))
        .env("REFER_TOKENS_FILE", &tokens)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("capacity.log")).unwrap())
        .spawn()
        .expect("start refer-capacity")
}

async fn connect(port: u16, tls: &refer_service::tls::ClientTls) -> Channel {
    let started = Instant::now();
    loop {
        match tls
            .endpoint(&format!("https://127.0.0.1:{port}"), "the test CA")
            .unwrap()
            .connect()
            .await
        {
            Ok(channel) => return channel,
            Err(_) if started.elapsed() < Duration::from_secs(20) => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(err) => panic!("the service did not come up: {err}"),
        }
    }
}

#[tokio::test]
async fn the_binary_serves_health_reflection_and_metrics_reports_unavailable_and_stops_on_sigterm() {
    let mut nats = NatsServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let [port, metrics_port] = refer_testkit::free_ports().unwrap();
    refer_service::testing::provision(&nats.access(), 1).await;
    let mut child = spawn(&nats, dir.path(), port, metrics_port);
    let channel = connect(port, &tls(&nats)).await;

    // gRPC health: the service reports itself serving.
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let check = tonic_health::pb::HealthCheckRequest {
        service: refer_capacity::SERVICE_NAME.into(),
    };
    let status = health.check(check).await.unwrap().into_inner().status;
    assert_eq!(
        status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    // gRPC reflection: generic tools can list the API.
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::{
        server_reflection_client::ServerReflectionClient, server_reflection_request::MessageRequest,
        ServerReflectionRequest,
    };
    let mut reflection = ServerReflectionClient::new(channel.clone());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) = responses.next().await.unwrap().unwrap().message_response
    else {
        panic!("no service list");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(names.contains(&refer_capacity::SERVICE_NAME.to_string()), "{names:?}");
    assert!(names.contains(&"grpc.health.v1.Health".to_string()), "{names:?}");

    // Prometheus metrics: each RPC by method and status code, with its time.
    let mut client = CapacityClient::new(channel.clone());
    let unknown = pb::GetProviderRequest {
        provider_id: uuid::Uuid::new_v4().to_string(),
    };
    assert_eq!(
        client.get_provider(authed(TOKEN, unknown)).await.unwrap_err().code(),
        tonic::Code::NotFound
    );
    let text = refer_service::testing::metrics(([127, 0, 0, 1], metrics_port).into(), &tls(&nats)).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.contains("refer_rpc_requests_total{method=\"/refer.capacity.v1.Capacity/GetProvider\",code=\"5\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("refer_rpc_duration_seconds_count{method=\"/refer.capacity.v1.Capacity/GetProvider\"}"),
        "{text}"
    );

    // With NATS down, a call that needs the bus says UNAVAILABLE.
    nats.kill();
    let get = pb::GetProviderRequest {
        provider_id: uuid::Uuid::new_v4().to_string(),
    };
    let err = client.get_provider(authed(TOKEN, get)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
    nats.restart().await.unwrap();

    // SIGTERM: a clean exit.
    let killed = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(killed.success());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "no exit after SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit status {status:?}");
}

/// Sends SIGTERM to `child` and waits for it to exit (at most `within`).
async fn terminate(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let killed = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(killed.success());
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if started.elapsed() > within {
            let _ = child.kill();
            panic!("no exit {within:?} after SIGTERM");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn with_its_bus_gone_the_service_still_stops_on_sigterm() {
    // Serving, then the bus goes away for good: an operator's SIGTERM stops it.
    let mut nats = NatsServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let [port, metrics_port] = refer_testkit::free_ports().unwrap();
    refer_service::testing::provision(&nats.access(), 1).await;
    let mut child = spawn(&nats, dir.path(), port, metrics_port);
    connect(port, &tls(&nats)).await;
    nats.kill();
    tokio::time::sleep(Duration::from_secs(1)).await;
    terminate(&mut child, Duration::from_secs(20)).await;

    // Started while the bus is away (it waits for it): SIGTERM stops it too.
    let dir = tempfile::tempdir().unwrap();
    let [port, metrics_port] = refer_testkit::free_ports().unwrap();
    let mut child = spawn(&nats, dir.path(), port, metrics_port);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(child.try_wait().unwrap().is_none(), "it waits for the bus");
    terminate(&mut child, Duration::from_secs(20)).await;
}

#[test]
fn a_bad_configuration_stops_the_service_with_the_setting_named() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("refer.toml");
    std::fs::write(
        &config,
        "tokens_file = \"tokens.toml\"\nlisten = \"0.0.0.0:50051\"\nstream_replicas = 7\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_refer-capacity"))
        .env("REFER_CONFIG", &config)
        .env_remove("REFER_TOKENS_FILE")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("stream_replicas=\"7\" must be 1 to 5"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_refer-capacity"))
        .env("REFER_LISTEN", "nowhere")
        .env("REFER_TOKENS_FILE", "t")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("REFER_LISTEN=\"nowhere\""));
}

#[tokio::test]
async fn the_service_refuses_to_start_without_a_sound_key_encryption_key() {
    let nats = NatsServer::start().await.unwrap();
    refer_service::testing::provision(&nats.access(), 1).await;
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.toml");
    std::fs::write(&tokens, "").unwrap();
    let start = |kek: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_refer-capacity"));
        command
            .env("REFER_NATS_URL", nats.url())
            .env("REFER_NATS_NKEY_FILE", nats.access().keys.seed_file("capacity"))
            .env("REFER_NATS_CA_FILE", nats.access().keys.nats_ca_file())
            .env("REFER_TLS_CERT_FILE", nats.access().keys.service_cert().0)
            .env("REFER_TLS_KEY_FILE", nats.access().keys.service_cert().1)
            .env("REFER_DATA_DIR", dir.path().join("data"))
            .env("REFER_LISTEN", "127.0.0.1:0")
            .env("REFER_METRICS_LISTEN", "127.0.0.1:0")
            .env("REFER_TOKENS_FILE", &tokens)
            .env_remove("REFER_CONFIG")
            .env_remove("REFER_KEK_FILE");
        if let Some(text) = kek {
            let path = dir.path().join("kek.hex");
            std::fs::write(&path, text).unwrap();
            command.env("REFER_KEK_FILE", path);
        }
        let out = command.output().unwrap();
        assert!(!out.status.success(), "started with key {kek:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let missing = start(None);
    assert!(
        missing.contains("set kek_file in the configuration or REFER_KEK_FILE"),
        "{missing}"
    );
    let short = start(Some("00112233"));
    assert!(short.contains("kek.hex") && short.contains("too short"), "{short}");
    let garbage = start(Some(&"zz".repeat(32)));
    assert!(garbage.contains("must hold 64 hex digits"), "{garbage}");
    assert!(!garbage.contains("zzzz"), "the key's text is never echoed: {garbage}");
}

/// No service makes a stream or bucket (whoever makes one first decides
/// what it captures): on a bus the operator has not provisioned, the
/// service waits, then refuses to start, naming the operator's command,
/// and has made nothing.
#[tokio::test]
async fn the_service_never_makes_the_stream_and_names_the_operators_step() {
    let nats = NatsServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let [port, metrics_port] = refer_testkit::free_ports().unwrap();
    let mut child = spawn(&nats, dir.path(), port, metrics_port);
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(!status.success(), "started on a bus nobody provisioned");
    let log = std::fs::read_to_string(dir.path().join("capacity.log")).unwrap();
    assert!(
        log.contains("stream REFER does not exist") && log.contains("`refer admin provision`"),
        "{log}"
    );
    let js = async_nats::jetstream::new(nats.connect().await);
    let (mut names, mut streams) = (js.stream_names(), Vec::new());
    while let Some(name) = names.next().await {
        streams.push(name.unwrap());
    }
    assert!(streams.is_empty(), "the service made {streams:?}");
}
