//! `refer admin hsds` against running services: the demo directory
//! onboarded from HSDS, re-imported without duplicates, updated, exported
//! without a location, carried into an empty system; bad files refused
//! with nothing written.

use refer_proto::capacity::v1 as cap;
use refer_tests::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/examples/partners.hsds.json");

/// The admin's command line against coalition `c`, its registry included.
fn refer(c: &Coalition, args: &[&str]) -> Output {
    let urls = c.urls();
    // The services run on this runtime: the wait must not hold a worker.
    tokio::task::block_in_place(|| {
        Command::new(env!("CARGO_BIN_EXE_refer"))
            .args(args)
            .env("REFER_TOKEN", ADMIN)
            .env("REFER_TOKENS_FILE", c.setup.tokens_file())
            .env("REFER_CAPACITY_URL", &urls[0])
            .env("REFER_MATCHER_URL", &urls[3])
            .env("REFER_CA_FILE", c.setup.keys.ca_file())
            .env("HOME", "/nonexistent")
            .output()
            .expect("run refer")
    })
}

fn ok(c: &Coalition, args: &[&str]) -> String {
    let out = refer(c, args);
    assert!(
        out.status.success(),
        "refer {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn refused(c: &Coalition, args: &[&str]) -> String {
    let out = refer(c, args);
    assert!(!out.status.success(), "refer {args:?} should be refused");
    String::from_utf8(out.stderr).unwrap()
}

async fn sites(c: &Coalition) -> Vec<cap::Provider> {
    let mut client = c.capacity.clone();
    client
        .list_providers(refer_client::authed(
            ADMIN,
            cap::ListProvidersRequest {
                page_size: 500,
                page_token: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .providers
}

/// The export, checked against the project's HSDS schema.
fn export(c: &Coalition) -> Value {
    let exported: Value = serde_json::from_str(&ok(c, &["admin", "hsds", "export"])).expect("the export is JSON");
    let schema: Value = serde_json::from_str(include_str!("../../hsds/schema/hsds-3.1.json")).unwrap();
    let validator = jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("the schema compiles");
    let errors: Vec<String> = validator.iter_errors(&exported).map(|e| e.to_string()).collect();
    assert_eq!(errors, Vec::<String>::new(), "the export is HSDS 3.1");
    exported
}

/// An export without its `updated` times (an import's "as of" is its own).
fn without_times(mut v: Value) -> Value {
    for s in v["contents"].as_array_mut().unwrap() {
        for c in s["capacities"].as_array_mut().unwrap() {
            c.as_object_mut().unwrap().remove("updated");
        }
    }
    v
}

/// The new partners an import wrote out: one JSON object a line.
fn token_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_comes_in_from_hsds_goes_out_without_locations_and_moves_to_an_empty_system() {
    let a = Coalition::start(0, 0).await;
    let dir = tempfile::tempdir().unwrap();
    let tokens_out = dir.path().join("partner-tokens.json");
    let tokens_out = tokens_out.to_str().unwrap();

    // Onboarding: nine sites, nine organisations with their tokens.
    let table = ok(
        &a,
        &["admin", "hsds", "import", EXAMPLE, "--tokens-out", tokens_out, "--json"],
    );
    let rows: Vec<Value> = serde_json::from_str(&table).unwrap();
    assert_eq!(rows.len(), 9);
    assert!(
        rows.iter()
            .all(|r| r["change"].as_str().unwrap().starts_with("registered")),
        "{table}"
    );
    let partners = token_lines(Path::new(tokens_out));
    assert_eq!(partners.len(), 9);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(tokens_out).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the tokens file is the owner's only");
    }
    let listed = sites(&a).await;
    assert_eq!(listed.len(), 9);
    let harbor = listed
        .iter()
        .find(|s| s.spec.as_ref().unwrap().name == "Harbor House")
        .unwrap();
    assert_eq!(harbor.capacity[0].free, 3);

    // A re-import changes nothing and adds nobody.
    let registry = std::fs::read_to_string(a.setup.tokens_file()).unwrap();
    let table = ok(&a, &["admin", "hsds", "import", EXAMPLE, "--json"]);
    let rows: Vec<Value> = serde_json::from_str(&table).unwrap();
    assert!(rows.iter().all(|r| r["change"] == "unchanged"), "{table}");
    assert_eq!(sites(&a).await.len(), 9);
    assert_eq!(std::fs::read_to_string(a.setup.tokens_file()).unwrap(), registry);

    // A re-import with news updates the site in place.
    let mut file: Value = serde_json::from_str(&std::fs::read_to_string(EXAMPLE).unwrap()).unwrap();
    let harbor_record = file["contents"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|s| s["name"] == "Harbor House")
        .unwrap();
    harbor_record["name"] = "Harbor House North".into();
    harbor_record["capacities"][0]["available"] = 5.into();
    // Later than the import's "as of" (the services' clock is at NIGHT).
    harbor_record["capacities"][0]["updated"] = "2026-11-27T00:00:00Z".into();
    harbor_record["capacities"][1]["available"] = 9.into(); // older than Refer's count: kept
    let news = write(dir.path(), "news.json", &serde_json::to_vec(&file).unwrap());
    let table = ok(&a, &["admin", "hsds", "import", news.to_str().unwrap(), "--json"]);
    let rows: Vec<Value> = serde_json::from_str(&table).unwrap();
    let changed: Vec<&Value> = rows.iter().filter(|r| r["change"] != "unchanged").collect();
    assert_eq!(changed.len(), 1, "{table}");
    assert_eq!(changed[0]["change"], "profile, bed free: 5");
    let listed = sites(&a).await;
    assert_eq!(listed.len(), 9, "updated, not duplicated");
    let harbor = listed.iter().find(|s| s.provider_id == harbor.provider_id).unwrap();
    assert_eq!(harbor.spec.as_ref().unwrap().name, "Harbor House North");
    assert_eq!(harbor.capacity[0].free, 5);
    assert_eq!(harbor.capacity[1].free, 2, "an older count never replaces a newer one");

    // The export: nine services, names from the registry, no location.
    let exported = export(&a);
    let text = exported.to_string();
    for word in ["latitude", "longitude", "location", "address", "33.8", "-118.2"] {
        assert!(!text.contains(word), "the export mentions {word}");
    }
    assert_eq!(exported["contents"].as_array().unwrap().len(), 9);
    assert!(text.contains("Harbor House (partner organisation)"));

    // Into an empty system: the export alone cannot place a site...
    let b = Coalition::start(0, 0).await;
    let bare = write(dir.path(), "export.json", text.as_bytes());
    let b_tokens = dir.path().join("b-tokens.json");
    let b_tokens = b_tokens.to_str().unwrap();
    let said = refused(
        &b,
        &[
            "admin",
            "hsds",
            "import",
            bare.to_str().unwrap(),
            "--tokens-out",
            b_tokens,
        ],
    );
    assert!(said.contains("9 record(s) cannot be imported"), "{said}");
    assert!(
        said.contains("service_at_locations: a site new to Refer needs its location"),
        "{said}"
    );
    assert!(said.contains("nothing was imported"), "{said}");
    assert!(sites(&b).await.is_empty());
    assert!(!Path::new(b_tokens).exists());
    // ... with the coalition's own records of where its sites are, it does.
    let mut located = exported.clone();
    let example: Value = serde_json::from_str(&std::fs::read_to_string(EXAMPLE).unwrap()).unwrap();
    for service in located["contents"].as_array_mut().unwrap() {
        let record = example["contents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == service["id"])
            .unwrap();
        service["service_at_locations"] = record["service_at_locations"].clone();
    }
    let located = write(dir.path(), "located.json", located.to_string().as_bytes());
    ok(
        &b,
        &[
            "admin",
            "hsds",
            "import",
            located.to_str().unwrap(),
            "--tokens-out",
            b_tokens,
        ],
    );
    assert_eq!(without_times(export(&b)), without_times(exported), "the same directory");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_an_admin_imports_or_exports_the_directory() {
    let c = Coalition::start(1, 0).await;
    let urls = c.urls();
    let dir = tempfile::tempdir().unwrap();
    let registry = std::fs::read_to_string(c.setup.tokens_file()).unwrap();
    let tokens_out = dir.path().join("tokens.json");
    for args in [
        vec![
            "admin",
            "hsds",
            "import",
            EXAMPLE,
            "--tokens-out",
            tokens_out.to_str().unwrap(),
        ],
        vec!["admin", "hsds", "export"],
    ] {
        // A provider's token in REFER_TOKEN: its sites would all be its own.
        let done = tokio::task::block_in_place(|| {
            Command::new(env!("CARGO_BIN_EXE_refer"))
                .args(&args)
                .env("REFER_TOKEN", provider_token(0))
                .env("REFER_TOKENS_FILE", c.setup.tokens_file())
                .env("REFER_CAPACITY_URL", &urls[0])
                .env("REFER_MATCHER_URL", &urls[3])
                .env("REFER_CA_FILE", c.setup.keys.ca_file())
                .env("HOME", "/nonexistent")
                .output()
                .unwrap()
        });
        let said = String::from_utf8_lossy(&done.stderr);
        assert!(!done.status.success(), "{args:?}: {said}");
        assert!(said.contains("takes an admin token"), "{args:?}: {said}");
        assert!(done.stdout.is_empty(), "{args:?}: nothing exported");
    }
    assert!(sites(&c).await.is_empty(), "a site was written");
    assert_eq!(std::fs::read_to_string(c.setup.tokens_file()).unwrap(), registry);
    assert!(!tokens_out.exists(), "tokens were written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_import_files_are_refused_with_their_reasons_and_nothing_written() {
    let c = Coalition::start(0, 0).await;
    let dir = tempfile::tempdir().unwrap();
    let registry = std::fs::read_to_string(c.setup.tokens_file()).unwrap();
    let tokens_out = dir.path().join("tokens.json");
    let example: Value = serde_json::from_str(&std::fs::read_to_string(EXAMPLE).unwrap()).unwrap();
    let with = |change: &dyn Fn(&mut Value)| {
        let mut file = example.clone();
        change(&mut file);
        serde_json::to_vec(&file).unwrap()
    };
    let mut huge = b"{\"contents\": [".to_vec();
    huge.resize(50 * 1024 * 1024, b' ');
    let mut latin1 = std::fs::read(EXAMPLE).unwrap();
    let at = latin1.windows(12).position(|w| w == b"Harbor House").unwrap();
    latin1[at + 3] = 0xE9;
    let not_utf8 = format!("is not UTF-8 text (byte {} is not)", at + 3);
    let cases: Vec<(&str, Vec<u8>, Vec<&str>)> = vec![
        ("50 MB", huge, vec!["an import takes at most 16777216 bytes"]),
        ("not UTF-8", latin1, vec![&not_utf8]),
        (
            "wrong types",
            with(&|f| {
                f["contents"][0]["capacities"][0]["available"] = "3".into();
                f["contents"][4]["status"] = 1.into();
            }),
            vec![
                "2 record(s) cannot be imported",
                "contents[0] (service ",
                "capacities[0].available: must be a number, not a string",
                "contents[4] (service ",
                "status: must be a string, not a number",
            ],
        ),
        (
            "missing ids",
            with(&|f| {
                f["contents"][1].as_object_mut().unwrap().remove("id");
                f["contents"][2]["organization"].as_object_mut().unwrap().remove("id");
            }),
            vec!["contents[1]: id: is missing", "organization.id: is missing"],
        ),
    ];
    for (what, bytes, expected) in cases {
        let file = write(dir.path(), "bad.json", &bytes);
        let said = refused(
            &c,
            &[
                "admin",
                "hsds",
                "import",
                file.to_str().unwrap(),
                "--tokens-out",
                tokens_out.to_str().unwrap(),
            ],
        );
        for e in expected {
            assert!(said.contains(e), "{what}: {e:?} not in {said}");
        }
        assert!(said.contains("nothing was imported"), "{what}: {said}");
        assert!(sites(&c).await.is_empty(), "{what}: a site was written");
        assert_eq!(
            std::fs::read_to_string(c.setup.tokens_file()).unwrap(),
            registry,
            "{what}: a partner was added"
        );
        assert!(!tokens_out.exists(), "{what}: tokens were written");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_problem_is_listed_at_once_and_two_imports_at_once_give_one_token_each() {
    let c = Coalition::start(0, 0).await;
    let dir = tempfile::tempdir().unwrap();
    let example: Value = serde_json::from_str(&std::fs::read_to_string(EXAMPLE).unwrap()).unwrap();

    // A record the file itself shows wrong, and one only the system can:
    // a new site without its location. Both are said in one run.
    let mut file = example.clone();
    file["contents"][0]
        .as_object_mut()
        .unwrap()
        .remove("service_at_locations");
    file["contents"][1]["capacities"][0]["available"] = (-1).into();
    let bad = write(dir.path(), "bad.json", &serde_json::to_vec(&file).unwrap());
    let out = dir.path().join("never.json");
    let said = refused(
        &c,
        &[
            "admin",
            "hsds",
            "import",
            bad.to_str().unwrap(),
            "--tokens-out",
            out.to_str().unwrap(),
        ],
    );
    assert!(said.contains("2 record(s) cannot be imported"), "{said}");
    assert!(
        said.contains("contents[0]") && said.contains("service_at_locations: a site new to Refer"),
        "{said}"
    );
    assert!(
        said.contains("contents[1]") && said.contains("available: -1 is not a whole number"),
        "{said}"
    );
    assert!(sites(&c).await.is_empty());

    // Two imports of one directory at once: one token per organisation.
    let registry = c.setup.tokens_file().to_path_buf();
    let runs: Vec<_> = (0..2)
        .map(|i| {
            let out = dir.path().join(format!("tokens-{i}.json"));
            let urls = c.urls();
            let ca = c.setup.keys.ca_file();
            let registry = registry.clone();
            std::thread::spawn(move || {
                let done = Command::new(env!("CARGO_BIN_EXE_refer"))
                    .args([
                        "admin",
                        "hsds",
                        "import",
                        EXAMPLE,
                        "--tokens-out",
                        out.to_str().unwrap(),
                    ])
                    .env("REFER_TOKEN", ADMIN)
                    .env("REFER_TOKENS_FILE", &registry)
                    .env("REFER_CAPACITY_URL", &urls[0])
                    .env("REFER_MATCHER_URL", &urls[3])
                    .env("REFER_CA_FILE", ca)
                    .env("HOME", "/nonexistent")
                    .output()
                    .unwrap();
                (done, out)
            })
        })
        .collect();
    let mut issued = 0;
    for run in runs {
        let (done, out) = tokio::task::block_in_place(|| run.join().unwrap());
        assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
        if out.exists() {
            issued += token_lines(&out).len();
        }
    }
    assert_eq!(issued, 9, "each organisation got one token");
    let partners = refer_client::tokens::partners(&registry).unwrap();
    assert_eq!(
        partners
            .iter()
            .filter(|p| p.role == refer_client::Role::Provider)
            .count(),
        9
    );
    assert_eq!(sites(&c).await.len(), 9);

    // A known site claimed by another organisation and moved: both said.
    let mut file = example.clone();
    file["contents"][0]["organization"]["id"] = "0d1e2f30-4152-4637-8495-a6b7c8d9e0f1".into();
    file["contents"][0]["organization_id"] = "0d1e2f30-4152-4637-8495-a6b7c8d9e0f1".into();
    for a in file["contents"][0]["attributes"].as_array_mut().unwrap() {
        if a["link_type"] == "refer_region" {
            a["value"] = "US-06-059".into();
        }
    }
    let claimed = write(dir.path(), "claimed.json", &serde_json::to_vec(&file).unwrap());
    let said = refused(&c, &["admin", "hsds", "import", claimed.to_str().unwrap()]);
    assert!(
        said.contains("organization.id: the site belongs to another organisation"),
        "{said}"
    );
    assert!(said.contains("a site keeps its region"), "{said}");
}

const TABULAR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/examples/partners-tabular");

/// The same directory as CSV tables (HSDS's tabular form) onboards the
/// same sites as its JSON; a bad table is refused by file and line with
/// nothing written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tabular_form_onboards_the_same_directory_and_bad_rows_are_named_by_line() {
    let dir = tempfile::tempdir().unwrap();
    let from_json = Coalition::start(0, 0).await;
    let out = dir.path().join("json-tokens.json");
    ok(
        &from_json,
        &[
            "admin",
            "hsds",
            "import",
            EXAMPLE,
            "--tokens-out",
            out.to_str().unwrap(),
        ],
    );
    let from_tables = Coalition::start(0, 0).await;

    // A bad cell: the whole directory refused, nothing written.
    let bad = dir.path().join("bad");
    std::fs::create_dir(&bad).unwrap();
    for entry in std::fs::read_dir(TABULAR).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), bad.join(entry.file_name())).unwrap();
    }
    let capacity = std::fs::read_to_string(bad.join("service_capacity.csv")).unwrap();
    std::fs::write(
        bad.join("service_capacity.csv"),
        capacity.replacen(",3,2026-11-01", ",-1,2026-11-01", 1),
    )
    .unwrap();
    let tokens = dir.path().join("tables-tokens.json");
    let tokens = tokens.to_str().unwrap();
    let said = refused(
        &from_tables,
        &["admin", "hsds", "import", bad.to_str().unwrap(), "--tokens-out", tokens],
    );
    assert!(
        said.contains("services.csv line 2 (service ")
            && said.contains("service_capacity.csv line 2, available: -1 is not a whole number"),
        "{said}"
    );
    assert!(said.contains("nothing was imported"), "{said}");
    assert!(sites(&from_tables).await.is_empty());
    assert!(!Path::new(tokens).exists());

    let table = ok(
        &from_tables,
        &["admin", "hsds", "import", TABULAR, "--tokens-out", tokens, "--json"],
    );
    let rows: Vec<Value> = serde_json::from_str(&table).unwrap();
    assert_eq!(rows.len(), 9, "{table}");
    assert_eq!(token_lines(Path::new(tokens)).len(), 9);
    assert_eq!(
        without_times(export(&from_tables)),
        without_times(export(&from_json)),
        "the same directory"
    );
    // Again: nothing changes.
    let table = ok(&from_tables, &["admin", "hsds", "import", TABULAR, "--json"]);
    let rows: Vec<Value> = serde_json::from_str(&table).unwrap();
    assert!(rows.iter().all(|r| r["change"] == "unchanged"), "{table}");
}
