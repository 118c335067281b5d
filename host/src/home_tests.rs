//! Hot update on a real runtime: the replay floor holds when two updates race, and an
//! unreadable update state refuses updates instead of forgetting the floor.

use ed25519_dalek::SigningKey;
use tether_proto::Secret;
use tether_proto::bundle::{Bundle, PAIRING_WORLD};

use super::*;
use crate::config::{IdentityConfig, SimAp, SimBehaviour};

fn key() -> SigningKey {
    SigningKey::from_bytes(&[9; 32])
}

fn config(dir: &Path) -> HostConfig {
    let mut config = HostConfig::simulated(
        dir,
        "http://127.0.0.1:9",
        IdentityConfig {
            uuid: "u".repeat(20),
            authkey: Secret::new("k".repeat(32)),
            product_key: "p0123456789abcde".into(),
            pairing_verifier: None,
        },
        SimAp {
            ssid: "home".into(),
            passwd: Secret::new("12345678"),
            behaviour: SimBehaviour::Normal,
            delay_ms: 0,
            rssi: -40,
        },
    );
    config.update.trusted_keys = vec![hex::encode(key().verifying_key().to_bytes())];
    config.update.probation_secs = 0;
    config
}

fn bundle(version: &str, sequence: u64) -> Vec<u8> {
    let component = crate::component::DEFAULT_COMPONENT;
    Bundle::sign(component, version, sequence, PAIRING_WORLD, "0.1.0", &key()).expect("signs")
}

/// Checks and compiles `bytes` as the daemon does, off the instance thread.
fn prepare(home: &mut Home, bytes: Vec<u8>) -> Prepared {
    let started = Instant::now();
    let (bundle, runtime) = home.check(&bytes).expect("passes the checks");
    let loaded = runtime.load(&bundle.component).expect("compiles");
    Prepared {
        bundle,
        bytes,
        loaded,
        started,
        prepare: started.elapsed(),
    }
}

#[test]
fn an_update_checked_before_a_higher_one_was_swapped_in_is_refused_at_swap_time() {
    let dir = tempfile::tempdir().expect("dir");
    let mut home = Home::boot(
        config(dir.path()),
        RuntimeSource::Own(RuntimeConfig::default()),
    )
    .expect("boots");
    let mut instance = home.fresh().expect("starts");
    // Both pass their checks before either is swapped in (two sources at once).
    let newer = prepare(&mut home, bundle("0.2.0", 5));
    let older = prepare(&mut home, bundle("0.2.0", 3));
    home.swap(&mut instance, newer).expect("swapped");
    home.tick(&mut instance).expect("committed");
    let refusal = home.swap(&mut instance, older).expect_err("a replay");
    assert!(
        matches!(refusal, Refusal::Replayed { new: 3, last: 5 }),
        "{refusal}"
    );
    assert_eq!(
        Slots::load(&dir.path().join("modules"))
            .expect("state")
            .last_sequence,
        5
    );
}

#[test]
fn an_unreadable_update_state_refuses_updates_and_is_left_alone() {
    let dir = tempfile::tempdir().expect("dir");
    let modules = dir.path().join("modules");
    std::fs::create_dir_all(&modules).expect("dir");
    std::fs::write(modules.join("state.json"), b"{\"last_sequence\": 9, trunc").expect("written");
    let mut home = Home::boot(
        config(dir.path()),
        RuntimeSource::Own(RuntimeConfig::default()),
    )
    .expect("boots on the built-in component");
    match home.check(&bundle("0.2.0", 1)) {
        Err(Refusal::Storage(why)) => assert!(why.contains("unreadable"), "{why}"),
        Err(other) => panic!("refused for another reason: {other}"),
        Ok(_) => panic!("an update was accepted over an unreadable state"),
    }
    assert_eq!(
        std::fs::read(modules.join("state.json")).expect("still there"),
        b"{\"last_sequence\": 9, trunc"
    );
}
