//! `refer solve` on files: the documented example, and bad input refused
//! with the field named and nothing printed on stdout.

use std::process::Command;

fn solve(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_refer"))
        .arg("solve")
        .args(args)
        .output()
        .expect("refer runs")
}

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/examples/instance.json");

#[test]
fn the_example_is_solved_in_both_modes() {
    let batch = solve(&[EXAMPLE]);
    assert!(batch.status.success(), "{}", String::from_utf8_lossy(&batch.stderr));
    let batch: serde_json::Value = serde_json::from_slice(&batch.stdout).expect("json");
    assert_eq!(batch["metrics"]["placed"], 4);
    assert_eq!(batch["metrics"]["priority_violations"], 0);

    let greedy = solve(&[EXAMPLE, "--mode", "greedy"]);
    let greedy: serde_json::Value = serde_json::from_slice(&greedy.stdout).expect("json");
    assert_eq!(greedy["mode"], "greedy");
    assert_eq!(greedy["metrics"]["placed"], 3);
    assert_eq!(greedy["metrics"]["priority_violations"], 1);
}

#[test]
fn a_bad_instance_is_refused_with_the_field_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = std::fs::read_to_string(EXAMPLE).expect("example");
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, text.replacen("\"party_size\": 1", "\"party_size\": 0", 1)).expect("write");
    let out = solve(&[bad.to_str().expect("utf-8")]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("needs[0].spec.profile.party_size"), "{stderr}");

    std::fs::write(&bad, "{\"now\": 1, \"needs\": [], \"beds\": 3}").expect("write");
    let stderr = String::from_utf8_lossy(&solve(&[bad.to_str().expect("utf-8")]).stderr).into_owned();
    assert!(stderr.contains("unknown field `beds`"), "{stderr}");

    let stderr = String::from_utf8_lossy(&solve(&["/nonexistent.json"]).stderr).into_owned();
    assert!(stderr.contains("cannot open /nonexistent.json"), "{stderr}");
}
