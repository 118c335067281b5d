//! The container end-to-end test: `deploy/e2e.sh` builds the static binaries and the
//! images `FROM scratch`, brings up `compose.yaml` (the cloud, three device hosts, the
//! provisioner), provisions every device over its own soft-AP network, and runs the
//! faults. It is its own test binary, so it never competes with the other end-to-end
//! tests for the two cores. Without a Docker engine the script skips, unless CI=true.

use std::path::Path;
use std::process::Command;

#[test]
fn containers_pair_every_device_and_ride_out_the_faults() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate sits in the workspace");
    // The script's steps and timings go straight to the test's output.
    let status = Command::new("bash")
        .arg(root.join("deploy/e2e.sh"))
        .current_dir(root)
        .status()
        .expect("bash runs deploy/e2e.sh");
    assert!(status.success(), "deploy/e2e.sh failed: {status}");
}
