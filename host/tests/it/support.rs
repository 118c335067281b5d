//! Helpers shared by the host's integration tests.

use std::time::Duration;

use tether_host::capabilities::{DeviceIdentity, HostState, Kv, Signer};
use tether_host::{Instance, LoadedComponent, Runtime, RuntimeConfig};

/// The misbehaving component built by `build.rs` from `testguest/`.
pub const MISBEHAVING: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/tether_testguest.wasm"));

/// A valid pairing token.
pub const TOKEN: &str = "EUab12CD34wxYZ";

/// A runtime with a small memory cap and a short deadline, so failures come fast.
pub fn runtime() -> Runtime {
    Runtime::new(RuntimeConfig {
        memory_cap: 8 << 20,
        call_deadline: Duration::from_millis(50),
        instance_slots: 4,
    })
    .expect("the runtime starts")
}

/// The identity test devices are given.
pub fn identity() -> DeviceIdentity {
    DeviceIdentity {
        pairing_verifier: None,
        plaintext_channel: false,
        uuid: "tether0123456789abcd".into(),
        product_key: "p0123456789abcde".into(),
        authkey: tether_proto::Secret::new("0123456789abcdef0123456789abcdef"),
        iot_dns_url: "http://127.0.0.1:9".into(),
    }
}

/// Host state with an in-memory kv and the test identity.
pub fn state(runtime: &Runtime) -> HostState {
    let signer = Signer::new(Some(identity()), None).expect("nothing to read");
    runtime.host_state(Kv::in_memory(), signer)
}

/// A started instance of `component`.
pub fn started(runtime: &Runtime, component: &LoadedComponent) -> Instance {
    let mut instance = runtime
        .instantiate(component, state(runtime))
        .expect("instantiates");
    instance
        .init(None)
        .expect("init runs")
        .expect("init accepts no snapshot");
    instance
}

/// A started instance of the built-in component.
pub fn default_device(runtime: &Runtime) -> Instance {
    let component = runtime
        .load(tether_host::component::DEFAULT_COMPONENT)
        .expect("loads");
    started(runtime, &component)
}

/// A started instance of the built-in component that accepted valid credentials.
pub fn configured_device(runtime: &Runtime) -> Instance {
    let mut device = default_device(runtime);
    let accepted = device
        .user_cfg("home", "correct horse", TOKEN)
        .expect("no trap");
    assert_eq!(accepted, Ok(()));
    device
}

/// Waits up to 30 s, probing every `every`, for `probe` to answer `Ok`; panics with
/// `what` and the last thing it saw otherwise.
pub async fn wait<T, L: std::fmt::Debug, F>(
    what: &str,
    every: Duration,
    probe: impl FnMut() -> F,
) -> T
where
    F: Future<Output = Result<T, L>>,
{
    tether_service::local::eventually(Duration::from_secs(30), every, probe)
        .await
        .unwrap_or_else(|last| panic!("never {what}: {last:?}"))
}
