//! The container end-to-end test: `deploy/e2e.sh` builds the static binaries and the
//! images `FROM scratch`, brings up `compose.yaml` (the cloud, three device hosts, the
//! provisioner), provisions every device over its own soft-AP network, and runs the
//! faults. It is its own test binary, so it never competes with the other end-to-end
//! tests for the two cores. Without a Docker engine the script skips, unless CI=true.

#[test]
fn containers_pair_every_device_and_ride_out_the_faults() {
    // The script's steps and timings go straight to the test's output. Without Cargo's
    // variables, so its build reuses what the cluster test's built (and the other way).
    let status = tether_e2e::deploy::bash("e2e.sh")
        .status()
        .expect("bash runs deploy/e2e.sh");
    assert!(status.success(), "deploy/e2e.sh failed: {status}");
}
