//! The host's TOML configuration (see `host/tether-host.example.toml`): data dir,
//! factory identity, IoT DNS URL, Wi-Fi backend, data channel and control socket.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use tether_proto::Secret;

use crate::capabilities::DeviceIdentity;

/// The whole file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostConfig {
    /// Where kv records, the binding and component state live.
    pub data_dir: PathBuf,
    /// The factory-set IoT DNS base URL.
    pub iot_dns_url: String,
    /// The factory CA (PEM) that verifies the cloud's TLS: required with an `https://`
    /// IoT DNS URL, where it pins the device to it and to the CAs IoT DNS delivers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_ca: Option<PathBuf>,
    /// Factory identity.
    pub identity: IdentityConfig,
    /// Wi-Fi backend.
    pub wifi: WifiConfig,
    /// The custom data channel.
    #[serde(default)]
    pub channel: ChannelConfig,
    /// The local control socket.
    pub ctl: CtlConfig,
    /// Hot update of the pairing component.
    #[serde(default)]
    pub update: UpdateConfig,
    /// A component file to run instead of the built-in one; on a host built without the
    /// compiler, one precompiled for it (`tether-host precompile`).
    #[serde(default)]
    pub component: Option<PathBuf>,
    /// CPU time each call into the component may use, in milliseconds (1000 by
    /// default). Time spent waiting for a core does not count; raise it only for a CPU
    /// far slower than a 1 GHz ARM core (or an emulated one).
    #[serde(default = "default_call_budget_ms")]
    pub call_budget_ms: u64,
}

fn default_call_budget_ms() -> u64 {
    1000
}

/// `[update]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateConfig {
    /// Hex ed25519 public keys whose bundles this device accepts (`tether module keygen`
    /// writes one to module.pub). With none, every update is refused.
    #[serde(default)]
    pub trusted_keys: Vec<String>,
    /// How long a new component runs on probation before it is committed, in seconds.
    #[serde(default = "default_probation_secs")]
    pub probation_secs: u64,
    /// A directory watched for `*.bundle` files to apply (each is renamed to
    /// `.applied` or `.refused` afterwards).
    #[serde(default)]
    pub watch_dir: Option<PathBuf>,
}

fn default_probation_secs() -> u64 {
    30
}

impl Default for UpdateConfig {
    fn default() -> Self {
        Self {
            trusted_keys: Vec::new(),
            probation_secs: default_probation_secs(),
            watch_dir: None,
        }
    }
}

impl UpdateConfig {
    /// The trusted keys, parsed.
    pub fn keys(&self) -> anyhow::Result<Vec<ed25519_dalek::VerifyingKey>> {
        self.trusted_keys
            .iter()
            .map(|k| {
                tether_proto::bundle::public_key_from_hex(k)
                    .with_context(|| format!("update.trusted_keys: {k:?}"))
            })
            .collect()
    }
}

/// `[identity]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    /// License uuid.
    pub uuid: String,
    /// License authkey.
    pub authkey: Secret,
    /// Product key.
    pub product_key: String,
    /// The verifier of the setup code printed on the device's label (`spake2p1:…`, as
    /// `tether-service license issue` prints it). The device keeps no setup code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pairing_verifier: Option<String>,
}

/// `[wifi]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WifiConfig {
    /// `sim` or `wpa_supplicant`.
    pub backend: WifiBackendKind,
    /// Access points of the simulated radio.
    #[serde(default)]
    pub sim: SimConfig,
    /// The wpa_supplicant control interface.
    #[serde(default)]
    pub wpa_supplicant: WpaConfig,
}

/// `[wifi.wpa_supplicant]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WpaConfig {
    /// wpa_supplicant's control socket for the station interface.
    pub ctrl_socket: PathBuf,
}

impl Default for WpaConfig {
    fn default() -> Self {
        Self {
            ctrl_socket: PathBuf::from("/var/run/wpa_supplicant/wlan0"),
        }
    }
}

/// Wi-Fi backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WifiBackendKind {
    /// Simulated radio, access points from this file.
    Sim,
    /// A real radio through wpa_supplicant's control socket.
    WpaSupplicant,
}

/// `[wifi.sim]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimConfig {
    /// The simulated access points.
    #[serde(default)]
    pub ap: Vec<SimAp>,
}

/// One simulated access point.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimAp {
    /// Network name.
    pub ssid: String,
    /// Password (empty: open network).
    #[serde(default)]
    pub passwd: Secret,
    /// How it behaves when joined.
    #[serde(default)]
    pub behaviour: SimBehaviour,
    /// Extra time association takes, in milliseconds.
    #[serde(default)]
    pub delay_ms: u64,
    /// Signal strength reported by scans.
    #[serde(default = "default_rssi")]
    pub rssi: i16,
}

fn default_rssi() -> i16 {
    -50
}

/// What a simulated access point does when joined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SimBehaviour {
    /// Joins when the password matches.
    #[default]
    Normal,
    /// Associates but DHCP never gives an address.
    DhcpFailure,
    /// Refuses every association.
    Refuse,
}

/// `[channel]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelConfig {
    /// TCP address the data channel listens on (the soft-AP address on a board).
    pub listen: SocketAddr,
    /// Development only: also serve plaintext protocol 1, which sends the Wi-Fi
    /// password and the token in clear. The host warns at start when it is on.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub plaintext: bool,
}

impl Default for ChannelConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([192, 168, 4, 1], 6668)),
            plaintext: false,
        }
    }
}

/// `[ctl]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CtlConfig {
    /// Unix socket path of the local control interface.
    pub socket: PathBuf,
}

impl SimAp {
    /// A router that lets a station with `passwd` join at once.
    pub fn instant(ssid: &str, passwd: &str) -> Self {
        Self {
            ssid: ssid.into(),
            passwd: Secret::new(passwd),
            behaviour: SimBehaviour::Normal,
            delay_ms: 0,
            rssi: default_rssi(),
        }
    }
}

impl HostConfig {
    /// A device on the simulated radio that sees `ap`, with its data channel on a free
    /// loopback port, its control socket in `data_dir`, and no update keys: what `tether
    /// demo` and the benchmarks run.
    pub fn simulated(
        data_dir: &Path,
        iot_dns_url: &str,
        identity: IdentityConfig,
        ap: SimAp,
    ) -> Self {
        Self {
            data_dir: data_dir.to_path_buf(),
            iot_dns_url: iot_dns_url.to_owned(),
            cloud_ca: None,
            identity,
            wifi: WifiConfig {
                backend: WifiBackendKind::Sim,
                sim: SimConfig { ap: vec![ap] },
                wpa_supplicant: WpaConfig::default(),
            },
            channel: ChannelConfig {
                listen: SocketAddr::from(([127, 0, 0, 1], 0)),
                plaintext: false,
            },
            ctl: CtlConfig {
                socket: data_dir.join("ctl.sock"),
            },
            update: UpdateConfig::default(),
            component: None,
            call_budget_ms: default_call_budget_ms(),
        }
    }

    /// The configuration as TOML text that [`HostConfig::parse`] reads back (for writing
    /// a device's file, as the process tests and the container images do).
    pub fn to_toml(&self) -> anyhow::Result<String> {
        toml::to_string(self).context("the configuration cannot be written as TOML")
    }

    /// Reads and checks the file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("failed to read the config file {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("invalid config file {}", path.display()))
    }

    /// Parses and checks TOML text.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let config: Self = toml::from_str(text)?;
        anyhow::ensure!(
            config.iot_dns_url.starts_with("http://") || config.iot_dns_url.starts_with("https://"),
            "iot_dns_url must be an http:// or https:// URL"
        );
        let tls = config.iot_dns_url.starts_with("https://");
        anyhow::ensure!(
            !tls || config.cloud_ca.is_some(),
            "cloud_ca is missing: an https:// iot_dns_url needs the factory CA that verifies it"
        );
        anyhow::ensure!(
            tls || config.cloud_ca.is_none(),
            "cloud_ca is set but iot_dns_url is plain http://: a device that pins a CA talks \
             to the cloud over https:// only"
        );
        anyhow::ensure!(!config.identity.uuid.is_empty(), "identity.uuid is empty");
        match &config.identity.pairing_verifier {
            Some(text) => {
                text.parse::<tether_proto::setup_code::PairingVerifier>()
                    .context("identity.pairing_verifier")?;
            }
            None => anyhow::ensure!(
                config.channel.plaintext,
                "identity.pairing_verifier is missing: write the one `tether-service license \
                 issue` printed for this device (or, for development only, set \
                 channel.plaintext = true)"
            ),
        }
        config.update.keys()?;
        Ok(config)
    }

    /// The identity the capabilities expose.
    pub fn device_identity(&self) -> DeviceIdentity {
        DeviceIdentity {
            uuid: self.identity.uuid.clone(),
            product_key: self.identity.product_key.clone(),
            authkey: self.identity.authkey.clone(),
            iot_dns_url: self.iot_dns_url.clone(),
            pairing_verifier: self.identity.pairing_verifier.clone(),
            plaintext_channel: self.channel.plaintext,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_file_parses() {
        let text = include_str!("../tether-host.example.toml");
        let config = HostConfig::parse(text).expect("the example is valid");
        assert_eq!(config.wifi.backend, WifiBackendKind::Sim);
        assert!(!config.wifi.sim.ap.is_empty());
        assert!(
            !format!("{config:?}").contains(config.identity.authkey.expose()),
            "Debug hides the authkey"
        );
        // The example's verifier is the one its comment names.
        let code = tether_proto::setup_code::SetupCode::parse("12345-67890").expect("parses");
        let expected =
            tether_proto::setup_code::verifier_for(&code, *b"tether-example-s").expect("derives");
        assert_eq!(config.identity.pairing_verifier, Some(expected.encode()));
    }

    #[test]
    fn a_simulated_config_round_trips_through_toml() {
        let identity = IdentityConfig {
            uuid: "tether0123456789abcd".into(),
            authkey: Secret::new("0123456789abcdef0123456789abcdef"),
            product_key: "p0123456789abcde".into(),
            pairing_verifier: Some(
                tether_proto::setup_code::issue()
                    .expect("issues")
                    .1
                    .encode(),
            ),
        };
        let mut config = HostConfig::simulated(
            Path::new("/tmp/device"),
            "http://127.0.0.1:8080",
            identity,
            SimAp::instant("home", "correct horse"),
        );
        config.wifi.sim.ap.push(SimAp {
            behaviour: SimBehaviour::DhcpFailure,
            delay_ms: 5,
            ..SimAp::instant("broken-dhcp", "12345678")
        });
        let text = config.to_toml().expect("writes");
        let back = HostConfig::parse(&text).expect("reads back");
        assert_eq!(back.to_toml().expect("writes"), text);
        assert_eq!(back.wifi.sim.ap[1].behaviour, SimBehaviour::DhcpFailure);
        assert_eq!(
            back.identity.authkey.expose(),
            "0123456789abcdef0123456789abcdef"
        );
    }

    #[test]
    fn mistakes_are_named() {
        let text = include_str!("../tether-host.example.toml").replace("data_dir", "datadir");
        let err = HostConfig::parse(&text).expect_err("unknown key");
        assert!(format!("{err:#}").contains("datadir"), "{err:#}");
        let text = include_str!("../tether-host.example.toml")
            .replace("http://127.0.0.1:8080", "cloud:8080");
        assert!(HostConfig::parse(&text).is_err());
        // A verifier that does not parse, or none without the development switch.
        let text = include_str!("../tether-host.example.toml").replace("zPVvNU\"", "zPV\"");
        let err = HostConfig::parse(&text).expect_err("a bad verifier");
        assert!(format!("{err:#}").contains("pairing_verifier"), "{err:#}");
        let example = include_str!("../tether-host.example.toml");
        let without: String = example
            .lines()
            .filter(|l| !l.starts_with("pairing_verifier"))
            .map(|l| format!("{l}\n"))
            .collect();
        let err = HostConfig::parse(&without).expect_err("no verifier");
        assert!(format!("{err:#}").contains("license issue"), "{err:#}");
        let dev = without.replace("plaintext = false", "plaintext = true");
        assert!(
            HostConfig::parse(&dev).is_ok(),
            "the development switch allows none"
        );
    }
}
