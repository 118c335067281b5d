//! Hot update of `tether-host run` as a process: `ctl module load`, a SIGKILL during
//! probation, and the restart that comes back on the previous component.

use ed25519_dalek::SigningKey;
use serde_json::Value;
use tether_host::component::DEFAULT_COMPONENT;
use tether_host::runtime::WORLD;
use tether_proto::bundle::Bundle;

use crate::device::{Cloud, host_config};
use crate::process::Host;

fn module_status(host: &Host) -> Value {
    let (ok, out, err) = host.ctl(&["module", "status"]);
    assert!(ok, "{out}{err}");
    serde_json::from_str(out.trim()).expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_killed_during_probation_comes_back_on_the_previous_component() {
    let cloud = Cloud::start(1).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let key = SigningKey::from_bytes(&[9; 32]);
    let mut config = host_config(&cloud, 0, dir.path());
    config.update.trusted_keys = vec![hex::encode(key.verifying_key().as_bytes())];
    config.update.probation_secs = 60;
    let mut host = Host::configured(&config, dir.path());
    host.start().await;
    let (_, online) = host.pair(&cloud).await;

    let bundle = dir.path().join("next.bundle");
    let bytes = Bundle::sign(DEFAULT_COMPONENT, "0.2.0", 1, WORLD, "0.1.0", &key).expect("signs");
    std::fs::write(&bundle, bytes).expect("written");
    let (ok, out, err) = host.ctl(&["module", "load", bundle.to_str().expect("utf-8")]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("running 0.2.0 (sequence 1)"), "{out}");
    assert!(out.contains("swap pause"), "{out}");
    let during = module_status(&host);
    assert_eq!(
        (&during["version"], &during["on_probation"]),
        (&"0.2.0".into(), &true.into())
    );

    host.kill();
    host.start().await;
    let back = host
        .status_until("online again", |s| s["state"] == "online")
        .await;
    assert_eq!(back["dev_id"], online["dev_id"]);
    let after = module_status(&host);
    assert_eq!(
        after["version"], "0.1.0",
        "the previous (built-in) component: {after}"
    );
    assert_eq!(after["slots"]["last_outcome"]["result"], "rolled_back");
    assert!(
        after["slots"]["last_outcome"]["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("host_restarted")),
        "{after}"
    );

    // A refused bundle makes `ctl module load` exit 1 with the reason.
    let (ok, _, err) = host.ctl(&["module", "load", bundle.to_str().expect("utf-8")]);
    assert!(!ok);
    assert!(err.contains("update refused (replayed)"), "{err}");
}
