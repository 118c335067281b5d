//! Harness of the end-to-end tests: it finds the built `tether-service`, `tether-host`
//! and `tether` binaries and runs each as a separate process, on free ports and in its
//! own temporary directory, the way a user runs them.
//!
//! `cargo test --workspace` builds the three binaries before it runs these tests (Cargo
//! builds a package's binaries for its integration tests). Run alone, build them first:
//! `cargo build --bins && cargo test -p tether-e2e`.

pub mod browser;
mod cloud;
pub mod deploy;
mod host;
mod process;
mod user;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

pub use cloud::{Cloud, License};
pub use host::DeviceHost;
pub use process::Output;
pub use user::User;

/// Posts an activation of `request`, signed with the licence `uuid`/`authkey` as a device
/// signs it, to the service at `base` (`https://host:port`, or `http://` with `--plain`).
pub async fn post_activation(
    http: &reqwest::Client,
    base: &str,
    (uuid, authkey): (&str, &str),
    request: &impl serde::Serialize,
) -> reqwest::Response {
    let (body, header) =
        tether_service::local::signed_activation(uuid, authkey, request).expect("signed");
    http.post(format!("{base}/v1/devices/activate"))
        .header("authorization", header)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("the service answers")
}

/// An MQTT transport over TLS that trusts the CA certificates in `ca_pem` alone.
pub fn mqtt_tls(ca_pem: &[u8]) -> rumqttc::Transport {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(cert.expect("PEM")).expect("a CA certificate");
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    rumqttc::Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(std::sync::Arc::new(
        config,
    )))
}

/// The product key of every test device.
pub const PRODUCT_KEY: &str = "pe2e00000000000a";
/// The simulated router every test device sees.
pub const SSID: &str = "home";
/// Its password.
pub const WIFI_PASSWORD: &str = "correct horse";
/// How long any one wait may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(60);

/// The path of the built binary `name` (`tether-service`, `tether-host` or `tether`):
/// next to this test executable (`target/<profile>/`), or in `TETHER_E2E_BIN_DIR`.
pub fn bin(name: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| match std::env::var_os("TETHER_E2E_BIN_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => std::env::current_exe()
            .ok()
            .and_then(|exe| Some(exe.parent()?.parent()?.to_path_buf()))
            .expect("the test executable lives in target/<profile>/deps"),
    });
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: the end-to-end tests run the real binaries. `cargo test --workspace` \
         builds them; alone, run `cargo build --bins` first (or set TETHER_E2E_BIN_DIR)",
        path.display()
    );
    path
}

/// Calls `probe` every 50 ms until it gives a value; fails the test after [`WAIT`] with
/// `what` and the last `context`. The waiting is `tether_service::local::eventually`'s,
/// on a runtime of its own, since these tests and their probes are blocking: call it
/// from a plain thread, `spawn_blocking` or `block_in_place`, never on a runtime's
/// thread.
pub fn eventually<T>(
    what: &str,
    mut probe: impl FnMut() -> Option<T>,
    context: impl Fn() -> String,
) -> T {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime for waiting");
    let every = Duration::from_millis(50);
    let found = runtime.block_on(tether_service::local::eventually(WAIT, every, || {
        let seen = probe().ok_or(());
        async move { seen }
    }));
    found.unwrap_or_else(|()| {
        panic!(
            "{what} did not happen within {} s\n{}",
            WAIT.as_secs(),
            context()
        )
    })
}

/// Reads a log file as text (empty if it does not exist yet).
pub fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// An API client, as the tests use one: trusting only the PEM CA `ca` when given (a
/// service's local CA), or the public roots otherwise.
pub fn api_client(ca: Option<&Path>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder().use_rustls_tls();
    if let Some(ca) = ca {
        let pem = std::fs::read(ca).expect("the CA is readable");
        builder = builder
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("a PEM certificate"));
    }
    builder.build().expect("an HTTP client")
}
