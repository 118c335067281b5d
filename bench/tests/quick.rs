//! `tether-bench --quick` runs every scenario briefly and writes its results: the harness
//! must keep working, whatever the figures.

use std::process::Command;

#[test]
fn every_scenario_completes_in_quick_mode_and_writes_its_results() {
    let out = tempfile::tempdir().expect("temp dir");
    let run = Command::new(env!("CARGO_BIN_EXE_tether-bench"))
        .arg("--quick")
        .arg("--out")
        .arg(out.path())
        .output()
        .expect("tether-bench runs");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "tether-bench --quick failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    for scenario in [
        "activation",
        "sessions",
        "component",
        "pairing",
        "fleet",
        "footprint",
        "tls",
        "cluster",
    ] {
        let path = out.path().join(format!("{scenario}.json"));
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let json: serde_json::Value = serde_json::from_str(&text).expect("results are JSON");
        assert_eq!(json["scenario"], scenario);
        assert_eq!(json["run"]["quick"], true);
        assert!(
            !json["rows"].as_array().expect("rows").is_empty(),
            "{scenario} has no rows"
        );
        assert!(
            stdout.contains(&format!("== {scenario} ==")),
            "{scenario} printed no table"
        );
    }
}

#[test]
fn an_unknown_scenario_is_refused_with_usage() {
    let run = Command::new(env!("CARGO_BIN_EXE_tether-bench"))
        .arg("nonsense")
        .output()
        .expect("tether-bench runs");
    assert_eq!(run.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&run.stderr).contains("invalid value 'nonsense'"));
}
