//! One process per identity, as deployed (docs/operations.md, "One name,
//! one process"). compose.yaml's own services are started on loopback as
//! real processes with exactly the environment compose gives them, read
//! from compose.yaml itself: each must serve, the matcher and its standby
//! must never both lead, and no two replicas may share a durable consumer.
//! And a process started under a name another live process holds is
//! refused, while the holder itself, killed and restarted on its data,
//! takes its name back.

use futures::StreamExt;
use refer_proto::matcher::v1 as mpb;
use refer_proto::matcher::v1::matcher_client::MatcherClient;
use refer_service::testing::{authed, TestSetup};
use refer_service::Role;
use refer_testkit::{NatsCluster, NatsServer};
use refer_tests::{ADMIN, AGENCY, INTAKE};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

/// Longest the test waits for something that must happen.
const PATIENCE: Duration = Duration::from_secs(60);

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// compose.yaml as JSON, read by PyYAML (what scripts/check-compose reads
/// it with; it resolves the file's anchors and merge keys).
fn compose() -> serde_json::Value {
    let script = "import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)";
    for python in [PathBuf::from("python3"), root().join(".tools/venv/bin/python")] {
        let out = Command::new(&python)
            .args(["-c", script])
            .arg(root().join("compose.yaml"))
            .output();
        if let Ok(out) = out {
            if out.status.success() {
                return serde_json::from_slice(&out.stdout).expect("PyYAML's JSON");
            }
        }
    }
    panic!("compose.yaml could not be read: this test needs python3 with PyYAML (scripts/check-compose installs it)");
}

/// One service process, killed when dropped.
struct Proc {
    name: String,
    service: String,
    env: BTreeMap<String, String>,
    port: u16,
    log: PathBuf,
    child: Option<Child>,
    /// How its certificate is verified (the test CA).
    tls: refer_service::tls::ClientTls,
}

impl Proc {
    fn spawn(&mut self) {
        let log = std::fs::File::create(&self.log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_refer-node"))
            .arg(&self.service)
            .env_clear()
            .envs(&self.env)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start refer-node");
        self.child = Some(child);
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether it has exited, and how.
    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().unwrap())
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let sent = Command::new("kill").args([signal, &pid]).status().unwrap();
        assert!(sent.success(), "kill {signal} {pid}");
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    async fn serving(&self) -> bool {
        let endpoint = self
            .tls
            .endpoint(&format!("https://127.0.0.1:{}", self.port), "the test CA")
            .unwrap();
        let Ok(channel) = endpoint.connect().await else {
            return false;
        };
        let mut client = HealthClient::new(channel);
        let asked = client.check(HealthCheckRequest { service: String::new() });
        matches!(
            tokio::time::timeout(Duration::from_secs(2), asked).await,
            Ok(Ok(answer)) if answer.get_ref().status == ServingStatus::Serving as i32
        )
    }

    /// Waits until it serves; fails if it exits first.
    async fn until_serving(&mut self) {
        let started = Instant::now();
        while !self.serving().await {
            if let Some(status) = self.exited() {
                panic!("{} exited ({status}) instead of serving:\n{}", self.name, self.log());
            }
            assert!(
                started.elapsed() < PATIENCE,
                "{} never served:\n{}",
                self.name,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until it exits with a failure; returns its log.
    async fn until_exit(&mut self) -> String {
        let started = Instant::now();
        loop {
            if let Some(status) = self.exited() {
                assert!(!status.success(), "{} exited cleanly: {}", self.name, self.log());
                return self.log();
            }
            assert!(started.elapsed() < PATIENCE, "{} never stopped", self.name);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until it exits; fails if it serves instead.
    async fn until_refused(&mut self) -> String {
        let started = Instant::now();
        loop {
            if let Some(status) = self.exited() {
                assert!(!status.success(), "{} exited cleanly: {}", self.name, self.log());
                return self.log();
            }
            assert!(
                !self.serving().await,
                "{} serves under a name another process holds",
                self.name
            );
            assert!(started.elapsed() < PATIENCE, "{} was never refused", self.name);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            let _ = Command::new("kill")
                .args(["-CONT", &child.id().to_string()])
                .stderr(Stdio::null())
                .status();
        }
        self.kill();
    }
}

/// Each Refer service of compose.yaml (not the NATS nodes, not the
/// consoles) with exactly the environment compose gives its container,
/// translated to this machine as Docker would place it: the NATS nodes'
/// names to the cluster's loopback addresses, listening addresses to free
/// loopback ports, and paths inside the container (the data volume, the
/// token file, the KEK secret) to where each is mounted from. A service
/// that sets no instance name gets the one its container computes: a hash
/// of its data directory's path, which is the same in every container.
fn compose_services(cluster: &NatsCluster, setup: &TestSetup) -> Vec<Proc> {
    let compose = compose();
    // All ports picked at once: picked one after another, they can repeat.
    let mut ports = refer_testkit::free_ports::<32>().unwrap().into_iter();
    let mut procs = Vec::new();
    for (name, spec) in compose["services"].as_object().expect("services") {
        if name == "provision" {
            // The operator's step every service waits for, as compose runs
            // it: `refer admin provision --replicas <n>`.
            let command: Vec<&str> = spec["command"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|a| a.as_str())
                .collect();
            let ["refer", "admin", "provision", "--replicas", n] = command[..] else {
                panic!("provision runs {command:?}")
            };
            setup.provision_with(n.parse().expect("--replicas <n>"));
            continue;
        }
        let binary = spec["command"][0].as_str().unwrap_or_default();
        let service = match binary {
            "refer-capacity" | "refer-donations" | "refer-intake" | "refer-matcher" => {
                binary.trim_start_matches("refer-").to_owned()
            }
            _ => continue,
        };
        // Where each path inside the container comes from on this machine.
        let mut mounts: Vec<(String, PathBuf)> = Vec::new();
        for volume in spec["volumes"].as_array().into_iter().flatten() {
            let volume = volume.as_str().expect("short volume syntax");
            let mut parts = volume.split(':');
            let (source, target) = (parts.next().unwrap(), parts.next().unwrap());
            let host = match source {
                "./deploy/tokens.toml" => setup.tokens_file().to_path_buf(),
                bind if bind.starts_with('.') => root().join(bind),
                named => {
                    let dir = setup.dir.path().join("volumes").join(named);
                    std::fs::create_dir_all(&dir).unwrap();
                    dir
                }
            };
            mounts.push((target.to_owned(), host));
        }
        for secret in spec["secrets"].as_array().into_iter().flatten() {
            // Throwaway ones here: the KEK, the test bus's CA and credentials.
            let secret = secret.as_str().unwrap();
            let file = match secret {
                "refer-kek" => setup.kek_file(),
                "nats-ca" => setup.keys.nats_ca_file(),
                "refer-tls-ca" => setup.keys.ca_file(),
                // Each kind's own certificate: the test CA's one here.
                tls if tls.starts_with("tls-") && tls.ends_with("-cert") => setup.keys.service_cert().0,
                tls if tls.starts_with("tls-") && tls.ends_with("-key") => setup.keys.service_cert().1,
                nkey => setup
                    .keys
                    .seed_file(nkey.strip_prefix("nats-").expect("a NATS credential")),
            };
            mounts.push((format!("/run/secrets/{secret}"), file));
        }
        let translate = |value: &str| -> String {
            for (target, host) in &mounts {
                if let Some(rest) = value.strip_prefix(target.as_str()) {
                    if rest.is_empty() || rest.starts_with('/') {
                        return format!("{}{rest}", host.display());
                    }
                }
            }
            value.to_owned()
        };
        let (port, metrics) = (ports.next().unwrap(), ports.next().unwrap());
        let mut env = BTreeMap::new();
        for (key, value) in spec["environment"].as_object().expect("an environment") {
            let value = match value {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let value = match key.as_str() {
                "REFER_NATS_URL" => value
                    .split(',')
                    .map(|url| {
                        let host = url.trim().trim_start_matches("nats://").split(':').next().unwrap();
                        let n: usize = host.trim_start_matches("nats-").parse().expect("a compose NATS node");
                        cluster.node(n - 1).url()
                    })
                    .collect::<Vec<_>>()
                    .join(","),
                "REFER_LISTEN" => format!("127.0.0.1:{port}"),
                "REFER_METRICS_LISTEN" => format!("127.0.0.1:{metrics}"),
                _ => translate(&value),
            };
            env.insert(key.clone(), value);
        }
        if !env.contains_key("REFER_INSTANCE") {
            let data_dir = spec["environment"]["REFER_DATA_DIR"].as_str().unwrap_or("data");
            env.insert(
                "REFER_INSTANCE".into(),
                refer_service::runtime::instance_of(Path::new(data_dir)),
            );
        }
        env.insert("RUST_LOG".into(), "info".into());
        procs.push(Proc {
            name: name.clone(),
            service,
            env,
            port,
            log: setup.dir.path().join(format!("{name}.log")),
            child: None,
            tls: setup.client_tls(),
        });
    }
    procs
}

async fn leading(setup: &TestSetup, port: u16) -> Option<bool> {
    let mut client = MatcherClient::new(setup.endpoint(port).connect().await.ok()?);
    let asked = client.get_status(authed(ADMIN, mpb::GetStatusRequest {}));
    let answer = tokio::time::timeout(Duration::from_secs(2), asked).await.ok()?.ok()?;
    Some(answer.into_inner().leading)
}

fn tokens() -> Vec<(&'static str, Role, refer_domain::ids::OrgId, &'static str)> {
    vec![
        (ADMIN, Role::Admin, refer_domain::ids::OrgId::from_u128(0xAD), "admin"),
        (INTAKE, Role::Intake, AGENCY, "intake"),
    ]
}

#[tokio::test]
async fn compose_on_loopback_runs_one_leader_and_no_shared_consumer() {
    let cluster = NatsCluster::start().await.expect("a 3-node cluster");
    let setup = TestSetup::new(cluster.access(), tokens(), refer_domain::sample::NIGHT);
    let mut procs = compose_services(&cluster, &setup);
    let matchers = procs.iter().filter(|p| p.service == "matcher").count();
    assert!(
        procs.len() >= 8 && matchers == 2,
        "compose.yaml runs two of each service"
    );
    for proc in &mut procs {
        proc.spawn();
    }
    for proc in &mut procs {
        proc.until_serving().await;
    }

    // One leader: one matcher leads, the other stands by, and never both.
    let ports: Vec<u16> = procs
        .iter()
        .filter(|p| p.service == "matcher")
        .map(|p| p.port)
        .collect();
    let started = Instant::now();
    let mut samples = 0;
    while samples < 20 {
        let mut leaders = 0;
        for port in &ports {
            leaders += usize::from(leading(&setup, *port).await == Some(true));
        }
        assert!(leaders <= 1, "both matchers lead");
        if leaders == 1 || samples > 0 {
            samples += 1;
            assert_eq!(leaders, 1, "the leader stood down with no successor");
        }
        assert!(started.elapsed() < PATIENCE, "no matcher leads");
        tokio::time::sleep(Duration::from_millis(150)).await;
    }

    // No shared consumer: each process has its own, and all still run.
    let js = async_nats::jetstream::new(cluster.node(0).connect().await);
    let stream = js.get_stream("REFER").await.unwrap();
    let consumers: BTreeSet<String> = stream
        .consumer_names()
        .filter_map(|n| async move { n.ok() })
        .collect()
        .await;
    for proc in &mut procs {
        assert!(proc.exited().is_none(), "{} stopped:\n{}", proc.name, proc.log());
        // `<projection>-<instance>_<random>` (refer_eventstore::Subscriber).
        let own = format!("-{}_", proc.env["REFER_INSTANCE"]);
        let mine: Vec<&String> = consumers.iter().filter(|c| c.contains(&own)).collect();
        assert_eq!(mine.len(), 1, "{}: its consumers among {consumers:?}", proc.name);
    }
    assert_eq!(consumers.len(), procs.len(), "one consumer per process: {consumers:?}");
}

/// A service process under `instance`, with its data in `<dir>/<data>`.
fn named(setup: &TestSetup, data: &str, instance: &str) -> Proc {
    let (command, port, _) = setup.process(env!("CARGO_BIN_EXE_refer-node"), "capacity", data);
    let mut env: BTreeMap<String, String> = command
        .get_envs()
        .filter_map(|(k, v)| Some((k.to_str()?.to_owned(), v?.to_str()?.to_owned())))
        .collect();
    env.insert("REFER_INSTANCE".into(), instance.into());
    Proc {
        name: data.into(),
        service: "capacity".into(),
        env,
        port,
        log: setup.dir.path().join(format!("{data}.log")),
        child: None,
        tls: setup.client_tls(),
    }
}

#[tokio::test]
async fn a_second_process_under_a_name_in_use_is_refused_and_the_first_takes_it_back_after_a_crash() {
    let server = NatsServer::start().await.unwrap();
    let setup = TestSetup::new(server.access(), tokens(), refer_domain::sample::NIGHT);
    let mut first = named(&setup, "capacity-a", "capacity");
    first.spawn();
    first.until_serving().await;

    let mut second = named(&setup, "capacity-b", "capacity");
    second.spawn();
    let said = second.until_refused().await;
    assert!(
        said.contains("in use by another running process") && said.contains("REFER_INSTANCE"),
        "the refusal names the problem and the setting: {said}"
    );

    // The holder crashes and restarts on its own data: its name is its own.
    first.kill();
    first.spawn();
    first.until_serving().await;
    // Still refused for anyone else.
    second.spawn();
    second.until_refused().await;
    assert!(first.exited().is_none(), "the holder serves on");
}

#[tokio::test]
async fn a_holder_paused_past_its_claim_stops_when_it_wakes_under_a_name_taken_since() {
    let server = NatsServer::start().await.unwrap();
    let setup = TestSetup::new(server.access(), tokens(), refer_domain::sample::NIGHT);
    let mut paused = named(&setup, "capacity-a", "capacity");
    paused.spawn();
    paused.until_serving().await;
    // A stream open on it (a console's live view, a provider's watch):
    // it must not keep a process that lost its name alive.
    let channel = paused
        .tls
        .endpoint(&format!("https://127.0.0.1:{}", paused.port), "the test CA")
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut watch = HealthClient::new(channel)
        .watch(HealthCheckRequest { service: String::new() })
        .await
        .unwrap()
        .into_inner();
    assert!(watch.message().await.unwrap().is_some(), "the watch answers");
    // Frozen (SIGSTOP, as a stalled VM) past its claim's ttl: another
    // process under the name takes it once it lapses, and serves.
    paused.signal("-STOP");
    let mut successor = named(&setup, "capacity-b", "capacity");
    successor.spawn();
    successor.until_serving().await;
    // A call sent to it while it is stopped waits in its socket: woken, it
    // must not answer it under a name another process now holds.
    let queued = {
        let channel = paused
            .tls
            .endpoint(&format!("https://127.0.0.1:{}", paused.port), "the test CA")
            .unwrap()
            .connect_lazy();
        let mut client = refer_proto::capacity::v1::capacity_client::CapacityClient::new(channel);
        tokio::spawn(async move {
            client
                .list_providers(authed(
                    ADMIN,
                    refer_proto::capacity::v1::ListProvidersRequest::default(),
                ))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Woken, the first finds its name taken and stops: never two under it,
    // and the stream open on it ends (the client goes elsewhere).
    paused.signal("-CONT");
    let answered = queued.await.unwrap();
    assert!(
        answered.is_err(),
        "the woken holder answered a call under a name another process holds: {answered:?}"
    );
    let said = paused.until_exit().await;
    assert!(said.contains("another process took this instance's name"), "{said}");
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(Some(_)) = watch.message().await {}
    })
    .await;
    assert!(ended.is_ok(), "the watch on the stopped process never ended");
    assert!(
        successor.exited().is_none() && successor.serving().await,
        "the successor serves on"
    );
}

/// A capacity process (not started) on a `cp -a` copy of the data
/// directory `data`, under the same instance name.
fn copy_of(setup: &TestSetup, data: &str) -> Proc {
    let copy = setup.dir.path().join(format!("{data}-copy"));
    let status = Command::new("cp")
        .arg("-a")
        .arg(setup.dir.path().join(data))
        .arg(&copy)
        .status()
        .unwrap();
    assert!(status.success());
    let mut clone = named(setup, &format!("{data}-clone"), "capacity");
    clone.env.insert("REFER_DATA_DIR".into(), copy.display().to_string());
    clone
}

#[tokio::test]
async fn a_copy_of_a_holders_data_directory_started_under_its_name_is_refused() {
    let server = NatsServer::start().await.unwrap();
    let setup = TestSetup::new(server.access(), tokens(), refer_domain::sample::NIGHT);
    let mut holder = named(&setup, "capacity-a", "capacity");
    holder.spawn();
    holder.until_serving().await;
    // A restored or cloned volume: the holder's whole data directory,
    // under the same name.
    let mut clone = copy_of(&setup, "capacity-a");
    clone.spawn();
    let said = clone.until_refused().await;
    assert!(said.contains("in use by another running process"), "{said}");
    assert!(
        holder.exited().is_none() && holder.serving().await,
        "the holder serves on"
    );
}

#[tokio::test]
async fn a_copy_started_while_its_holder_stalls_for_seconds_is_refused_and_the_holder_keeps_its_name() {
    let server = NatsServer::start().await.unwrap();
    let setup = TestSetup::new(server.access(), tokens(), refer_domain::sample::NIGHT);
    let mut holder = named(&setup, "capacity-a", "capacity");
    holder.spawn();
    holder.until_serving().await;
    let mut clone = copy_of(&setup, "capacity-a");
    // The copy starts while the holder stalls for 3 s (a busy VM, a long
    // pause): shorter than the claim's ttl, so the holder is alive.
    holder.signal("-STOP");
    clone.spawn();
    tokio::time::sleep(Duration::from_secs(3)).await;
    holder.signal("-CONT");
    let said = clone.until_refused().await;
    assert!(said.contains("in use by another running process"), "{said}");
    assert!(
        holder.exited().is_none() && holder.serving().await,
        "the holder keeps its name and serves on"
    );
}

/// `scripts/check-compose --static` on a project folder holding `files`
/// (name, text; `compose.yaml` among them): its success and output.
fn check_compose_static(files: &[(&str, &str)]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let out = std::process::Command::new(root().join("scripts/check-compose"))
        .arg("--static")
        .env("REFER_COMPOSE_FILE", dir.path().join("compose.yaml"))
        .env_remove("COMPOSE_FILE")
        .output()
        .expect("run scripts/check-compose");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn check_compose_refuses_every_way_of_running_two_replicas_under_one_name() {
    let compose = std::fs::read_to_string(root().join("compose.yaml")).unwrap();
    let (passes, out) = check_compose_static(&[("compose.yaml", &compose)]);
    assert!(passes, "compose.yaml as it is passes: {out}");
    let edit = |from: &str, to: &str| {
        let doctored = compose.replacen(from, to, 1);
        assert_ne!(doctored, compose, "compose.yaml holds {from:?}");
        doctored
    };
    let capacity_2 = "REFER_INSTANCE: capacity-2\n";
    let override_file = "services:\n  capacity-2:\n    environment:\n      - REFER_INSTANCE=capacity\n";
    let data_2 = "      - capacity-2:/data\n";
    // Given capacity-2 written so that compose would run it as the first
    // replica or on its data, a service run as several containers, or a
    // project compose would read beyond the file ...
    // (the attack, the project's files, what the check must say)
    type Attack<'a> = (&'a str, Vec<(&'a str, String)>, &'a str);
    let attacks: Vec<Attack> = vec![
        (
            "a default compose resolves when the variable is unset",
            vec![(
                "compose.yaml",
                edit(capacity_2, "REFER_INSTANCE: \"${CAPACITY_2:-capacity}\"\n"),
            )],
            "REFER_INSTANCE is '${CAPACITY_2:-capacity}'",
        ),
        (
            "nested defaults",
            vec![(
                "compose.yaml",
                edit(capacity_2, "REFER_INSTANCE: \"${A:-${B:-capacity}}\"\n"),
            )],
            "REFER_INSTANCE is '${A:-${B:-capacity}}'",
        ),
        (
            "a YAML boolean",
            vec![("compose.yaml", edit(capacity_2, "REFER_INSTANCE: on\n"))],
            "capacity-2: REFER_INSTANCE is True",
        ),
        (
            "a number only compose's YAML reads as one",
            vec![("compose.yaml", edit(capacity_2, "REFER_INSTANCE: 0o17\n"))],
            "capacity-2: REFER_INSTANCE is '0o17'",
        ),
        (
            "two containers of one service",
            vec![(
                "compose.yaml",
                edit(capacity_2, "REFER_INSTANCE: capacity-2\n    scale: 2\n"),
            )],
            "capacity-2: scale is 2",
        ),
        (
            "swarm replicas",
            vec![(
                "compose.yaml",
                edit(capacity_2, "REFER_INSTANCE: capacity-2\n    deploy: {replicas: 2}\n"),
            )],
            "capacity-2: deploy.replicas is 2",
        ),
        (
            "an override file beside it",
            vec![
                ("compose.yaml", compose.clone()),
                ("compose.override.yml", override_file.into()),
            ],
            "compose.override.yml lies beside compose.yaml",
        ),
        (
            "files named by COMPOSE_FILE in .env",
            vec![
                ("compose.yaml", compose.clone()),
                ("more.yaml", override_file.into()),
                (".env", "COMPOSE_FILE=compose.yaml:more.yaml\n".into()),
            ],
            "COMPOSE_FILE is set",
        ),
        (
            "an included file",
            vec![
                (
                    "compose.yaml",
                    edit("name: refer\n", "name: refer\ninclude: [more.yaml]\n"),
                ),
                ("more.yaml", override_file.into()),
            ],
            "include: compose would add services",
        ),
        (
            "extends",
            vec![(
                "compose.yaml",
                edit("  capacity-2:\n", "  capacity-2:\n    extends: capacity\n"),
            )],
            "capacity-2: sets extends",
        ),
        (
            "an entrypoint that sets the name",
            vec![(
                "compose.yaml",
                edit(
                    capacity_2,
                    "REFER_INSTANCE: capacity-2\n    entrypoint: [env, REFER_INSTANCE=capacity]\n",
                ),
            )],
            "capacity-2: sets entrypoint",
        ),
        (
            "the first replica's volume, spelt with a slash",
            vec![("compose.yaml", edit(data_2, "      - capacity:/data/\n"))],
            "capacity and capacity-2 share the Docker volume capacity",
        ),
        (
            "one host folder for both",
            vec![("compose.yaml", edit(data_2, "      - ./deploy:/data\n"))],
            "capacity-2: keeps its data on [('./deploy', 'bind')]",
        ),
        (
            "the first replica's volumes",
            vec![("compose.yaml", edit(data_2, "    volumes_from: [capacity]\n"))],
            "capacity-2: sets volumes_from",
        ),
        (
            "a volume bound to another's folder",
            vec![(
                "compose.yaml",
                edit(
                    "\nvolumes:\n",
                    "\nvolumes:\n  shared:\n    driver_opts: {type: none, o: bind, device: /srv/x}\n",
                ),
            )],
            "volume shared: declares ['driver_opts']",
        ),
        (
            "the first replica's volume as an external one",
            vec![(
                "compose.yaml",
                edit(data_2, "      - refer_capacity:/data\n").replacen(
                    "\nvolumes:\n",
                    "\nvolumes:\n  refer_capacity: {external: true}\n",
                    1,
                ),
            )],
            "volume refer_capacity: declares ['external']",
        ),
        (
            "a second process in a hook",
            vec![(
                "compose.yaml",
                edit(
                    capacity_2,
                    "REFER_INSTANCE: capacity-2\n    post_start: [{command: [refer-capacity]}]\n",
                ),
            )],
            "capacity-2: sets post_start",
        ),
        (
            "a second process as a healthcheck",
            vec![(
                "compose.yaml",
                edit(
                    capacity_2,
                    "REFER_INSTANCE: capacity-2\n    healthcheck: {test: [CMD, refer-capacity]}\n",
                ),
            )],
            "capacity-2: sets healthcheck",
        ),
        (
            "the matcher serving another kind's certificate",
            vec![(
                "compose.yaml",
                edit(
                    "secrets: [nats-ca, nats-matcher, tls-matcher-cert, tls-matcher-key]",
                    "secrets: [nats-ca, nats-matcher, tls-intake-cert, tls-matcher-key]",
                )
                .replacen(
                    "REFER_TLS_CERT_FILE: /run/secrets/tls-matcher-cert",
                    "REFER_TLS_CERT_FILE: /run/secrets/tls-intake-cert",
                    1,
                ),
            )],
            "matcher: REFER_TLS_CERT_FILE must name /run/secrets/tls-matcher-cert",
        ),
        (
            "a service that starts before the streams are made",
            vec![(
                "compose.yaml",
                edit(
                    "      depends_on:\n        provision: { condition: service_completed_successfully }\n",
                    "      depends_on:\n        provision: { condition: service_started }\n",
                ),
            )],
            "capacity: must start after provision completes",
        ),
        (
            "the operator's credential on a service",
            vec![(
                "compose.yaml",
                edit(
                    "secrets: [nats-ca, nats-matcher, tls-matcher-cert, tls-matcher-key]",
                    "secrets: [nats-ca, nats-matcher, tls-matcher-cert, tls-matcher-key, nats-operator]",
                ),
            )],
            "matcher: mounts the operator's credential",
        ),
        (
            "arguments after the binary",
            vec![(
                "compose.yaml",
                edit(
                    "command: [\"refer-capacity\"]",
                    "command: [\"refer-capacity\", \"--x\"]",
                ),
            )],
            "capacity: command must be one binary",
        ),
        (
            "a Refer service named like a NATS node",
            vec![(
                "compose.yaml",
                edit("  nats-3:\n    <<: *nats\n", "  nats-3:\n    <<: *nats\n    build: .\n"),
            )],
            "nats-3: a NATS node runs the nats image",
        ),
        (
            "a data directory spelt otherwise",
            vec![(
                "compose.yaml",
                edit(
                    capacity_2,
                    "REFER_INSTANCE: capacity-2\n      REFER_DATA_DIR: /data/.\n",
                ),
            )],
            "capacity-2: REFER_DATA_DIR must be /data",
        ),
    ];
    for (attack, files, said) in attacks {
        let files: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
        let (passes, out) = check_compose_static(&files);
        // ... the check refuses it, saying why.
        assert!(!passes, "{attack}: passed: {out}");
        assert!(out.contains(said), "{attack}: expected {said:?} in {out}");
    }
}
