//! What crosses the wire between device and cloud: socket proxies in front of the
//! service's HTTP and MQTT ports record every byte of a whole pairing and a command round
//! trip. Over TLS no JWT, device secret, authkey, token or data point is in the capture;
//! the same capture against a `--plain` service finds them, so the check can fail.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::json;
use tether_host::RuntimeConfig;
use tether_host::daemon::Device;
use tether_service::tls::TlsSource;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::device::{Cloud, host_config, pair_with};

/// One connection's bytes, both directions in the order they passed.
type Record = Arc<Mutex<Vec<u8>>>;

/// A TCP proxy that records what passes in both directions, connection by connection.
struct Tap {
    addr: SocketAddr,
    target: Arc<OnceLock<SocketAddr>>,
    connections: Arc<Mutex<Vec<Record>>>,
}

impl Tap {
    /// Listens on a free port; connections wait for [`Tap::forward_to`].
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let tap = Self {
            addr: listener.local_addr().expect("bound"),
            target: Arc::default(),
            connections: Arc::default(),
        };
        let (target, connections) = (tap.target.clone(), tap.connections.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Some(target) = target.get().copied() else {
                    continue;
                };
                let record = Arc::new(Mutex::new(Vec::new()));
                connections.lock().expect("lock").push(record.clone());
                tokio::spawn(relay(client, target, record));
            }
        });
        tap
    }

    fn forward_to(&self, target: SocketAddr) {
        self.target.set(target).expect("set once");
    }

    fn connections(&self) -> Vec<Vec<u8>> {
        let all = self.connections.lock().expect("lock");
        all.iter()
            .map(|c| c.lock().expect("lock").clone())
            .collect()
    }
}

async fn relay(client: TcpStream, target: SocketAddr, record: Record) {
    let Ok(server) = TcpStream::connect(target).await else {
        return;
    };
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::join!(
        pump(client_read, server_write, record.clone()),
        pump(server_read, client_write, record),
    );
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    record: Record,
) {
    let mut buf = vec![0; 16 * 1024];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 || to.write_all(&buf[..n]).await.is_err() {
            break;
        }
        record.lock().expect("lock").extend_from_slice(&buf[..n]);
    }
    let _ = to.shutdown().await;
}

/// A data point nobody would send by chance.
const MARKER: &str = "capture-marker-5b1e";

/// What a whole pairing and a command round trip put on the device's wire, through taps
/// in front of the service's API and broker: (API connections, MQTT connections, the
/// strings that must not be in clear).
async fn capture(tls: bool) -> (Vec<Vec<u8>>, Vec<Vec<u8>>, Vec<String>) {
    let (http_tap, mqtt_tap) = (Tap::start().await, Tap::start().await);
    let scheme = if tls { "https" } else { "http" };
    let public_http = format!("{scheme}://{}", http_tap.addr);
    let public_mqtt = mqtt_tap.addr.to_string();
    let cloud = Cloud::start_with(1, |c| {
        c.tls = if tls {
            TlsSource::LocalCa
        } else {
            TlsSource::Off
        };
        c.public_http_url = Some(public_http.clone());
        c.public_mqtt_url = Some(public_mqtt);
    })
    .await;
    let (http_addr, mqtt_addr) = cloud.addrs();
    http_tap.forward_to(http_addr);
    mqtt_tap.forward_to(mqtt_addr);

    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = host_config(&cloud, 0, dir.path());
    config.iot_dns_url = public_http;
    let device = Device::start(config, RuntimeConfig::default())
        .await
        .expect("the device starts");
    let token = cloud.token().await;
    let dev_id = pair_with(&device, &token).await;
    let point = json!({"7": MARKER});
    cloud.command(&dev_id, point.clone()).await;
    cloud.await_report(&dev_id, &point).await;
    device.stop();

    let secrets = vec![
        MARKER.to_owned(),
        cloud.licenses[0].authkey.expose().to_owned(),
        token,
        // The activation answer's fields: the device secret and the MQTT password.
        "dev_secret".to_owned(),
        // A JWT's header, `{"typ":"JWT",…` or `{"alg":…`, in base64url.
        "eyJ0eXAiOi".to_owned(),
        "eyJhbGciOi".to_owned(),
    ];
    (http_tap.connections(), mqtt_tap.connections(), secrets)
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_a_capture_of_pairing_and_a_command_shows_no_secret_in_clear() {
    let (http, mqtt, secrets) = capture(true).await;
    assert!(
        !http.is_empty() && !mqtt.is_empty(),
        "both taps saw traffic"
    );
    for connection in http.iter().chain(&mqtt) {
        // Every connection starts with a TLS handshake record.
        assert_eq!(connection.first(), Some(&0x16), "not TLS: {connection:?}");
        for secret in &secrets {
            assert!(!contains(connection, secret), "{secret:?} crossed in clear");
        }
        for plain in ["HTTP/1.1", "MQTT"] {
            assert!(!contains(connection, plain), "{plain:?} crossed in clear");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_capture_against_a_plain_service_finds_the_secrets() {
    let (http, mqtt, secrets) = capture(false).await;
    let all: Vec<u8> = http.into_iter().chain(mqtt).flatten().collect();
    // The data point and the pairing token (the authkey only ever signs).
    for secret in [&secrets[0], &secrets[2]] {
        assert!(
            contains(&all, secret),
            "{secret:?} not seen in a plain capture"
        );
    }
    for found in ["dev_secret", "eyJ", "HTTP/1.1", "MQTT"] {
        assert!(
            contains(&all, found),
            "{found:?} not seen in a plain capture"
        );
    }
}
