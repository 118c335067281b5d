//! Configuration of `tether-service serve`: flags and environment variables, over an
//! optional TOML file, over defaults. Parsed once into [`ServeConfig`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use serde::Deserialize;
use tether_proto::Secret;

use crate::cluster::ClusterConfig;
use crate::tls::TlsSource;

/// Default HTTP listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default MQTT listen address.
pub const DEFAULT_MQTT_LISTEN: &str = "127.0.0.1:1883";
/// Default data dir.
pub const DEFAULT_DATA_DIR: &str = "./tether-data";
/// Default region.
pub const DEFAULT_REGION: &str = "EU";

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Pretty,
    /// One JSON object per line.
    Json,
}

/// The data dir flag, shared by every subcommand.
#[derive(Debug, Clone, Args)]
pub struct DataDirArg {
    /// Directory for the database and the signing key [default: ./tether-data]
    #[arg(long, env = "TETHER_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// A PostgreSQL server for the registry (postgres://USER[:PASSWORD]@HOST[:PORT]/DB),
    /// which several service processes can share [default: SQLite in the data dir]
    #[arg(long, env = "TETHER_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
}

impl DataDirArg {
    /// The data dir, defaulted.
    pub fn resolve(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR))
    }

    /// The PostgreSQL URL, if one was given.
    pub fn database_url(&self) -> Option<Secret> {
        self.database_url.clone().map(Secret::new)
    }
}

/// Flags of `serve`. Each overrides the TOML file, which overrides the default.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// TOML file with any of the settings below (flags and environment win over it)
    #[arg(long, env = "TETHER_CONFIG")]
    pub config: Option<PathBuf>,
    /// HTTP API listen address; port 0 picks a free port [default: 127.0.0.1:8080]
    #[arg(long, env = "TETHER_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Embedded MQTT broker listen address; port 0 picks a free port [default: 127.0.0.1:1883]
    #[arg(long, env = "TETHER_MQTT_LISTEN")]
    pub mqtt_listen: Option<SocketAddr>,
    #[command(flatten)]
    pub data: DataDirArg,
    /// Region this service answers IoT DNS for, two upper-case letters [default: EU]
    #[arg(long, env = "TETHER_REGION")]
    pub region: Option<String>,
    /// API base URL that IoT DNS gives devices [default: derived from --listen]
    #[arg(long, env = "TETHER_PUBLIC_HTTP_URL")]
    pub public_http_url: Option<String>,
    /// MQTT address (host:port) that IoT DNS and activation give devices [default: derived from --mqtt-listen]
    #[arg(long, env = "TETHER_PUBLIC_MQTT_URL")]
    pub public_mqtt_url: Option<String>,
    /// NAME:PASSWORD of an admin account to create at start if it does not exist
    /// (visible to local users on a command line: prefer --bootstrap-admin-file)
    #[arg(long, env = "TETHER_BOOTSTRAP_ADMIN", hide_env_values = true)]
    pub bootstrap_admin: Option<String>,
    /// A file whose first line is NAME:PASSWORD of the admin account to create at start
    #[arg(
        long,
        env = "TETHER_BOOTSTRAP_ADMIN_FILE",
        conflicts_with = "bootstrap_admin"
    )]
    pub bootstrap_admin_file: Option<PathBuf>,
    /// Log format [default: pretty]
    #[arg(long, env = "TETHER_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Hex ed25519 public key whose component bundles may be uploaded (repeat for more;
    /// `tether module keygen` writes one to module.pub)
    #[arg(long, env = "TETHER_MODULE_KEYS", value_delimiter = ',')]
    pub module_key: Vec<String>,
    /// How long devices may keep IoT DNS answers, in seconds [default: 3600]; online
    /// devices look up again this often, which is how a rotated CA reaches them
    #[arg(long, env = "TETHER_DNS_TTL")]
    pub dns_ttl: Option<u32>,
    /// How long the MQTT credentials a device is given stay valid, in seconds [default:
    /// 86400, at least 30]; devices renew them before they expire
    #[arg(long, env = "TETHER_MQTT_CREDENTIALS_TTL")]
    pub mqtt_credentials_ttl: Option<u32>,
    /// Serve plain HTTP and MQTT, without TLS: credentials cross the network in clear.
    /// Without this flag and without --tls-cert, the service serves TLS from a local CA
    /// kept in the data dir (tls/ca.pem, created on first start)
    #[arg(long, env = "TETHER_PLAIN", conflicts_with = "tls_cert")]
    pub plain: bool,
    /// Serve the API over HTTPS with this PEM certificate chain (server certificate first)
    #[arg(long, env = "TETHER_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert
    #[arg(long, env = "TETHER_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA certificates IoT DNS gives devices to trust (with --tls-cert; default: the
    /// chain's last certificate)
    #[arg(
        long,
        env = "TETHER_TLS_CA",
        value_delimiter = ',',
        requires = "tls_cert"
    )]
    pub tls_ca: Vec<PathBuf>,
    /// A further DNS name or IP address for the local CA's server certificate (repeat for
    /// more; the public URLs' hosts, localhost and loopback are always in it)
    #[arg(long, env = "TETHER_TLS_NAMES", value_delimiter = ',')]
    pub tls_name: Vec<String>,
    /// This node's id in a broker cluster (1 to 1024; needs --cluster-peers)
    #[arg(long, env = "TETHER_NODE_ID")]
    pub node_id: Option<u64>,
    /// Every node of the broker cluster, this one included, as ID@HOST:PORT: gRPC on
    /// PORT and Raft on PORT + 1, on a private network (needs --node-id and a shared
    /// --database-url)
    #[arg(long, env = "TETHER_CLUSTER_PEERS", value_delimiter = ',')]
    pub cluster_peers: Vec<String>,
}

/// The TOML file: the same settings as the flags, plus extra regions.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    mqtt_listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    region: Option<String>,
    public_http_url: Option<String>,
    public_mqtt_url: Option<String>,
    bootstrap_admin: Option<String>,
    log_format: Option<LogFormat>,
    /// Other regions this service answers IoT DNS for, by region code.
    #[serde(default)]
    regions: BTreeMap<String, RegionEndpoints>,
    #[serde(default)]
    module_keys: Vec<String>,
    #[serde(default)]
    plain: bool,
    dns_ttl: Option<u32>,
    mqtt_credentials_ttl: Option<u32>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    #[serde(default)]
    tls_ca: Vec<PathBuf>,
    #[serde(default)]
    tls_names: Vec<String>,
    node_id: Option<u64>,
    #[serde(default)]
    cluster_peers: Vec<String>,
}

/// The public endpoints IoT DNS gives devices of one region.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionEndpoints {
    /// API base URL.
    pub http_url: String,
    /// MQTT broker address.
    pub mqtt_url: String,
    /// Whether the broker at `mqtt_url` speaks TLS (IoT DNS then gives it as
    /// `mqttsSelfUrl`, never as plain `mqttUrl`).
    #[serde(default)]
    pub mqtt_tls: bool,
}

/// The service's settings after merging.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// HTTP listen address.
    pub listen: SocketAddr,
    /// MQTT listen address.
    pub mqtt_listen: SocketAddr,
    /// Data dir.
    pub data_dir: PathBuf,
    /// The PostgreSQL server of the registry; `None`: SQLite in the data dir.
    pub database_url: Option<Secret>,
    /// This service's own region.
    pub region: String,
    /// Public API URL, if set; otherwise derived from the bound address.
    pub public_http_url: Option<String>,
    /// Public MQTT address, if set; otherwise derived from the bound address.
    pub public_mqtt_url: Option<String>,
    /// Other regions from the file.
    pub extra_regions: BTreeMap<String, RegionEndpoints>,
    /// Admin account to create at start.
    pub bootstrap_admin: Option<(String, Secret)>,
    /// Log format.
    pub log_format: LogFormat,
    /// Hex ed25519 public keys whose component bundles `POST /v1/modules` accepts.
    pub module_keys: Vec<String>,
    /// Where the API's TLS certificate comes from.
    pub tls: TlsSource,
    /// Further names for a local CA's server certificate.
    pub tls_names: Vec<String>,
    /// The TTL of IoT DNS answers, in seconds.
    pub dns_ttl_secs: u32,
    /// How long devices' MQTT credentials stay valid, in seconds.
    pub mqtt_credentials_secs: u64,
    /// The broker cluster this node is part of; `None`: one node.
    pub cluster: Option<ClusterConfig>,
}

impl ServeConfig {
    /// Settings for tests and `tether demo`: free ports on loopback, the given data dir.
    pub fn ephemeral(data_dir: &Path) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            mqtt_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: data_dir.to_path_buf(),
            database_url: None,
            region: DEFAULT_REGION.into(),
            public_http_url: None,
            public_mqtt_url: None,
            extra_regions: BTreeMap::new(),
            bootstrap_admin: None,
            log_format: LogFormat::Pretty,
            module_keys: Vec::new(),
            tls: TlsSource::Off,
            tls_names: Vec::new(),
            dns_ttl_secs: crate::iot_dns::TTL_SECS,
            mqtt_credentials_secs: crate::activation::MQTT_CREDENTIALS_SECS,
            cluster: None,
        }
    }

    /// Merges flags over the file (if any) over defaults, and checks the result.
    pub fn from_args(args: ServeArgs) -> anyhow::Result<Self> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let default_addr = |s: &str| s.parse::<SocketAddr>().expect("valid default address");
        let region = args
            .region
            .or(file.region)
            .unwrap_or_else(|| DEFAULT_REGION.into());
        check_region(&region)?;
        for code in file.regions.keys() {
            check_region(code).with_context(|| format!("in [regions.{code}]"))?;
        }
        for key in args.module_key.iter().chain(&file.module_keys) {
            tether_proto::bundle::public_key_from_hex(key)
                .with_context(|| format!("module key {key:?}"))?;
        }
        let from_file = match &args.bootstrap_admin_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("failed to read {}", path.display()))?
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
            ),
            None => None,
        };
        let bootstrap_admin = match from_file.or(args.bootstrap_admin).or(file.bootstrap_admin) {
            Some(spec) => Some(parse_bootstrap(&spec)?),
            None => None,
        };
        let tls = match (
            args.tls_cert.or(file.tls_cert),
            args.tls_key.or(file.tls_key),
        ) {
            (Some(cert), Some(key)) => TlsSource::Files {
                cert,
                key,
                ca: if args.tls_ca.is_empty() {
                    file.tls_ca
                } else {
                    args.tls_ca
                },
            },
            (None, None) if args.plain || file.plain => TlsSource::Off,
            (None, None) => TlsSource::LocalCa,
            _ => bail!("tls_cert and tls_key go together"),
        };
        let dns_ttl_secs = args
            .dns_ttl
            .or(file.dns_ttl)
            .unwrap_or(crate::iot_dns::TTL_SECS);
        if !(1..=604_800).contains(&dns_ttl_secs) {
            bail!("dns_ttl must be 1 to 604800 seconds");
        }
        let mqtt_credentials_secs = args
            .mqtt_credentials_ttl
            .or(file.mqtt_credentials_ttl)
            .map_or(crate::activation::MQTT_CREDENTIALS_SECS, u64::from);
        if !(30..=2_592_000).contains(&mqtt_credentials_secs) {
            bail!("mqtt_credentials_ttl must be 30 to 2592000 seconds (30 days)");
        }
        let database_url = args
            .data
            .database_url
            .or(file.database_url)
            .map(Secret::new);
        let cluster_peers = if args.cluster_peers.is_empty() {
            file.cluster_peers
        } else {
            args.cluster_peers
        };
        let shared = database_url.as_ref().is_some_and(|url| {
            matches!(
                crate::db::Engine::of_url(url.expose()),
                Ok(crate::db::Engine::Postgres)
            )
        });
        let cluster =
            ClusterConfig::from_parts(args.node_id.or(file.node_id), &cluster_peers, shared)?;
        Ok(Self {
            cluster,
            dns_ttl_secs,
            mqtt_credentials_secs,
            tls,
            tls_names: if args.tls_name.is_empty() {
                file.tls_names
            } else {
                args.tls_name
            },
            listen: args
                .listen
                .or(file.listen)
                .unwrap_or_else(|| default_addr(DEFAULT_LISTEN)),
            mqtt_listen: args
                .mqtt_listen
                .or(file.mqtt_listen)
                .unwrap_or_else(|| default_addr(DEFAULT_MQTT_LISTEN)),
            data_dir: args
                .data
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| DEFAULT_DATA_DIR.into()),
            database_url,
            region,
            public_http_url: args.public_http_url.or(file.public_http_url),
            public_mqtt_url: args.public_mqtt_url.or(file.public_mqtt_url),
            extra_regions: file.regions,
            bootstrap_admin,
            log_format: args.log_format.or(file.log_format).unwrap_or_default(),
            module_keys: if args.module_key.is_empty() {
                file.module_keys
            } else {
                args.module_key
            },
        })
    }
}

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("failed to read the config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
}

fn check_region(region: &str) -> anyhow::Result<()> {
    if region.len() != 2 || !region.bytes().all(|b| b.is_ascii_uppercase()) {
        bail!("region {region:?} must be two upper-case letters, such as EU");
    }
    Ok(())
}

fn parse_bootstrap(spec: &str) -> anyhow::Result<(String, Secret)> {
    match spec.split_once(':') {
        Some((name, password)) if !name.is_empty() && !password.is_empty() => {
            Ok((name.to_owned(), Secret::new(password)))
        }
        _ => bail!("--bootstrap-admin takes NAME:PASSWORD"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> ServeArgs {
        ServeArgs {
            config: None,
            listen: None,
            mqtt_listen: None,
            data: DataDirArg {
                data_dir: None,
                database_url: None,
            },
            region: None,
            public_http_url: None,
            public_mqtt_url: None,
            bootstrap_admin: None,
            bootstrap_admin_file: None,
            log_format: None,
            module_key: Vec::new(),
            plain: false,
            dns_ttl: None,
            mqtt_credentials_ttl: None,
            tls_cert: None,
            tls_key: None,
            tls_ca: Vec::new(),
            tls_name: Vec::new(),
            node_id: None,
            cluster_peers: Vec::new(),
        }
    }

    #[test]
    fn module_keys_must_be_ed25519_public_keys() {
        let mut bad = args();
        bad.module_key = vec!["abc".into()];
        assert!(ServeConfig::from_args(bad).is_err());
        let mut good = args();
        good.module_key =
            vec!["d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a".into()];
        assert_eq!(
            ServeConfig::from_args(good)
                .expect("valid")
                .module_keys
                .len(),
            1
        );
    }

    #[test]
    fn defaults_apply_when_nothing_is_given() {
        let config = ServeConfig::from_args(args()).expect("valid");
        assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(config.mqtt_listen.to_string(), DEFAULT_MQTT_LISTEN);
        assert_eq!(config.region, "EU");
        assert_eq!(config.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert_eq!(config.tls, TlsSource::LocalCa, "TLS unless told otherwise");
    }

    #[test]
    fn the_dns_ttl_comes_from_the_flag_or_the_file_within_its_range() {
        assert_eq!(
            ServeConfig::from_args(args()).expect("valid").dns_ttl_secs,
            crate::iot_dns::TTL_SECS
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("tether.toml");
        std::fs::write(&path, "dns_ttl = 120\n").expect("written");
        let mut a = args();
        a.config = Some(path.clone());
        assert_eq!(ServeConfig::from_args(a).expect("valid").dns_ttl_secs, 120);
        let mut a = args();
        a.config = Some(path);
        a.dns_ttl = Some(30);
        assert_eq!(ServeConfig::from_args(a).expect("valid").dns_ttl_secs, 30);
        let mut a = args();
        a.mqtt_credentials_ttl = Some(60);
        assert_eq!(
            ServeConfig::from_args(a)
                .expect("valid")
                .mqtt_credentials_secs,
            60
        );
        let mut a = args();
        a.mqtt_credentials_ttl = Some(29);
        let err = ServeConfig::from_args(a).expect_err("too short");
        assert!(err.to_string().contains("mqtt_credentials_ttl"), "{err}");
        let zero = dir.path().join("zero.toml");
        std::fs::write(&zero, "dns_ttl = 0\n").expect("written");
        let mut a = args();
        a.config = Some(zero);
        let err = ServeConfig::from_args(a).expect_err("out of range");
        assert!(err.to_string().contains("dns_ttl"), "{err}");
    }

    #[test]
    fn plain_listeners_only_when_asked_by_flag_or_file() {
        let mut a = args();
        a.plain = true;
        assert_eq!(
            ServeConfig::from_args(a).expect("valid").tls,
            TlsSource::Off
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("tether.toml");
        std::fs::write(&path, "plain = true\n").expect("written");
        let mut a = args();
        a.config = Some(path);
        assert_eq!(
            ServeConfig::from_args(a).expect("valid").tls,
            TlsSource::Off
        );
    }

    #[test]
    fn flags_win_over_the_file_which_wins_over_defaults() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("tether.toml");
        std::fs::write(
            &path,
            "listen = \"0.0.0.0:9000\"\nregion = \"US\"\n[regions.AY]\nhttp_url = \"http://ay\"\nmqtt_url = \"ay:1883\"\n",
        )
        .expect("written");
        let mut a = args();
        a.config = Some(path);
        a.region = Some("CN".into());
        let config = ServeConfig::from_args(a).expect("valid");
        assert_eq!(config.listen.to_string(), "0.0.0.0:9000");
        assert_eq!(config.region, "CN");
        assert_eq!(config.extra_regions["AY"].mqtt_url, "ay:1883");
    }

    #[test]
    fn bad_settings_are_refused_with_the_reason() {
        let mut a = args();
        a.region = Some("europe".into());
        let err = ServeConfig::from_args(a).expect_err("bad region");
        assert!(err.to_string().contains("two upper-case letters"), "{err}");
        let mut a = args();
        a.bootstrap_admin = Some("admin".into());
        let err = ServeConfig::from_args(a).expect_err("no password");
        assert!(err.to_string().contains("NAME:PASSWORD"), "{err}");
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "listn = 1\n").expect("written");
        let mut a = args();
        a.config = Some(path);
        let err = ServeConfig::from_args(a).expect_err("unknown key");
        assert!(format!("{err:#}").contains("listn"), "{err:#}");
    }
}
