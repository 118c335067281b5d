//! `tether demo`: the whole system on one machine, on embedded defaults. It starts the
//! cloud service (temporary SQLite data dir, free ports, embedded MQTT broker) and a
//! device host with a simulated radio, then provisions the device over its data channel
//! as a user would, sends it a command, waits for its report, and prints each step with
//! its time.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tether::channel::Security;
use tether_host::config::{HostConfig, IdentityConfig, SimAp, UpdateConfig};
use tether_host::daemon::Device;
use tether_host::{RuntimeConfig, UpdateReport};
use tether_proto::PairingToken;
use tether_proto::activation::PhaseTimings;
use tether_proto::api::DeviceView;
use tether_proto::setup_code::SetupCode;
use tether_proto::token_status::CreateTokenRequest;
use tether_service::ServeConfig;
use tether_service::local::{self, Account, LocalCloud};
use tether_service::tls::TlsSource;
use tether_service::users::Role;

mod update;

use crate::client::Api;
use crate::failure::Failure;
use crate::provision;

const USER: &str = "demo";
/// The admin account that uploads and rolls out the update.
const OPERATOR: &str = "operator";
const PRODUCT_KEY: &str = "pdemo0000000000a";
const SSID: &str = "tether-demo";
const WIFI_PASSWORD: &str = "demo-router-pw";
/// Data points the demo sends; the device reports them back.
const COMMAND: &str = r#"{"1":true,"2":42}"#;

/// Options of `tether demo`.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Leave everything up until Ctrl-C.
    pub keep_running: bool,
    /// Also show a live update of the pairing component through the cloud.
    pub update: bool,
    /// Print one JSON summary on stdout (steps go to stderr).
    pub json: bool,
}

/// Prints each step with the time since the demo started.
struct Steps {
    started: Instant,
    json: bool,
}

impl Steps {
    fn say(&self, what: impl std::fmt::Display) {
        let line = format!("[{:>6.2} s] {what}", self.started.elapsed().as_secs_f64());
        self.raw(&line);
    }

    /// A detail line under the last step.
    fn detail(&self, what: impl std::fmt::Display) {
        self.raw(&format!("             {what}"));
    }

    fn raw(&self, line: &str) {
        if self.json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }
}

fn internal(context: &str) -> impl FnOnce(anyhow::Error) -> Failure + '_ {
    move |e| Failure::Other(format!("{context}: {e:#}"))
}

/// Runs the demo.
pub async fn run(options: Options) -> Result<(), Failure> {
    let steps = Steps {
        started: Instant::now(),
        json: options.json,
    };
    steps.raw(
        "Tether demo: a local cloud and one simulated device, paired the way a user pairs one.\n",
    );
    let dir = tempfile::Builder::new()
        .prefix("tether-demo-")
        .tempdir()
        .map_err(|e| Failure::Other(format!("cannot create a temporary dir: {e}")))?;
    let cloud_dir = dir.path().join("cloud");
    let password = tether_proto::random::string(b"abcdefghijkmnpqrstuvwxyz23456789", 16)
        .map_err(|e| Failure::Other(format!("no randomness: {e}")))?;
    let license = seed_cloud(&cloud_dir, &password).await?;
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| Failure::Other(format!("no randomness: {e}")))?;
    let module_key = ed25519_dalek::SigningKey::from_bytes(&seed);
    let module_public = hex::encode(module_key.verifying_key().as_bytes());

    let mut serve = ServeConfig::ephemeral(&cloud_dir);
    serve.module_keys = vec![module_public.clone()];
    serve.tls = TlsSource::LocalCa;
    let mut cloud = LocalCloud::start(serve)
        .await
        .map_err(internal("the cloud service did not start"))?;
    let api_url = cloud.api_url();
    let mqtt_addr = cloud.mqtt_addr();
    steps.say(format_args!(
        "cloud service up: API {api_url}, MQTT mqtts://{mqtt_addr}, SQLite in {}",
        cloud_dir.display()
    ));
    let ca = cloud
        .local_ca()
        .ok_or_else(|| Failure::Other("the cloud made no local CA".into()))?;
    steps.detail(format_args!(
        "accounts {USER:?} and {OPERATOR:?} (admin), one device license (product {PRODUCT_KEY}), a module signing key"
    ));
    steps.detail(format_args!(
        "HTTPS and MQTTS with a local CA ({}); the device's config names it, as a factory would",
        ca.display()
    ));

    let device_dir = dir.path().join("device");
    let mut config = device_config(&device_dir, &api_url, &license, module_public);
    config.cloud_ca = Some(ca.clone());
    let ctl_socket = config.ctl.socket.clone();
    let device = Device::start(config, RuntimeConfig::default())
        .await
        .map_err(internal("the device host did not start"))?;
    let channel = device.channel_addr().to_string();
    let version = device.status().await.map(|s| s.version).unwrap_or_default();
    steps.say(format_args!(
        "device host up: pairing component {version}, simulated router {SSID:?}, data channel {channel}"
    ));

    let setup_code = SetupCode::parse(license.setup_code.expose())
        .map_err(|e| Failure::Other(format!("the cloud made a malformed setup code: {e}")))?;
    steps.detail(
        "its label carries a setup code (10 digits, and as a QR code); the device keeps only the code's verifier",
    );
    let api = Api::new(&api_url, Some(&ca))?;
    let mut outcome = pair_and_command(&steps, api, &password, &channel, &setup_code).await;
    if options.update
        && let Ok(summary) = &mut outcome
    {
        print_phases(&steps, summary);
        let target = update::Target {
            admin: (OPERATOR, &password),
            key: &module_key,
            device: &device,
            channel: &channel,
            setup_code: &setup_code,
            dev_id: &summary.dev_id,
            user: &summary.api,
        };
        match update::live_update(&steps, &target).await {
            Ok(swap) => summary.update = Some(swap),
            Err(e) => outcome = Err(e),
        }
    }
    let result = match outcome {
        Ok(mut summary) if options.keep_running => {
            print_summary(&steps, options, &mut summary);
            keep_running(
                &steps,
                (&api_url, &ca),
                mqtt_addr,
                &channel,
                &ctl_socket,
                &password,
            )
            .await;
            Ok(())
        }
        Ok(mut summary) => {
            print_summary(&steps, options, &mut summary);
            Ok(())
        }
        Err(e) => Err(e),
    };

    tokio::task::spawn_blocking(move || device.stop())
        .await
        .map_err(|e| Failure::Other(format!("the device did not stop: {e}")))?;
    cloud
        .stop()
        .await
        .map_err(internal("the cloud service failed"))?;
    if result.is_ok() {
        steps.say("stopped the device and the cloud; temporary data removed");
    }
    result
}

/// Creates the demo accounts and one license in a fresh database.
async fn seed_cloud(
    cloud_dir: &Path,
    password: &str,
) -> Result<tether_service::licenses::License, Failure> {
    let accounts = [
        Account {
            name: USER,
            password,
            role: Role::User,
        },
        Account {
            name: OPERATOR,
            password,
            role: Role::Admin,
        },
    ];
    local::seed(cloud_dir, None, &accounts, PRODUCT_KEY, 1)
        .await
        .map_err(internal("cannot prepare the cloud's database"))?
        .licenses
        .pop()
        .ok_or_else(|| Failure::Other("no license issued".into()))
}

fn device_config(
    dir: &Path,
    api_url: &str,
    license: &tether_service::licenses::License,
    module_key: String,
) -> HostConfig {
    let identity = IdentityConfig {
        uuid: license.uuid.clone(),
        authkey: license.authkey.clone(),
        product_key: PRODUCT_KEY.into(),
        pairing_verifier: Some(license.pairing_verifier.clone()),
    };
    HostConfig {
        update: UpdateConfig {
            trusted_keys: vec![module_key],
            probation_secs: 2,
            watch_dir: None,
        },
        ..HostConfig::simulated(dir, api_url, identity, SimAp::instant(SSID, WIFI_PASSWORD))
    }
}

/// What the demo saw.
struct Summary {
    api: Api,
    dev_id: String,
    timings: PhaseTimings,
    report: Option<Value>,
    round_trip: Duration,
    online_in_cloud: bool,
    phases_shown: bool,
    update: Option<UpdateReport>,
}

/// The user's part: log in, create a token, provision over the channel, send a command
/// and wait for the report.
async fn pair_and_command(
    steps: &Steps,
    api: Api,
    password: &str,
    channel: &str,
    setup_code: &SetupCode,
) -> Result<Summary, Failure> {
    let access = api.login(USER, password).await?;
    let api = api.with_token(access);
    let created = api.create_token(&CreateTokenRequest::default()).await?;
    let token = PairingToken::parse(created.token.expose())
        .map_err(|e| Failure::Other(format!("the cloud made a malformed token: {e}")))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let ttl = created.expires_at.saturating_sub(now);
    steps.say(format_args!(
        "logged in as {USER}; pairing token {}… created (one device, valid for {} min)",
        token.public(),
        ttl.div_ceil(60)
    ));

    steps.say(format_args!(
        "provisioning: setup code proved over the data channel (SPAKE2+), then SSID {SSID:?}, password and token sent encrypted"
    ));
    let done = provision::provision(
        &api,
        channel,
        &Security::SetupCode(setup_code.clone()),
        (SSID, WIFI_PASSWORD),
        token.expose(),
        Duration::from_secs(60),
        |phase| steps.detail(format_args!("· {phase}")),
    )
    .await?;
    steps.say(format_args!("device {} is online", done.dev_id));

    let data: serde_json::Map<String, Value> = serde_json::from_str(COMMAND)
        .map_err(|e| Failure::Other(format!("bad demo command: {e}")))?;
    let sent_at = Instant::now();
    api.send_command(&done.dev_id, data.clone()).await?;
    let data = Value::Object(data);
    steps.say(format_args!("sent {COMMAND} to the device over MQTT"));
    let (device, round_trip) = wait_for_report(&api, &done.dev_id, &data, sent_at).await?;
    steps.say(format_args!(
        "report received: {} (command to report in {} ms)",
        device.last_report.clone().unwrap_or_default(),
        round_trip.as_millis()
    ));
    Ok(Summary {
        api,
        phases_shown: false,
        update: None,
        dev_id: done.dev_id,
        timings: done.timings.unwrap_or_default(),
        report: device.last_report,
        round_trip,
        online_in_cloud: device.online,
    })
}

async fn wait_for_report(
    api: &Api,
    dev_id: &str,
    data: &Value,
    sent_at: Instant,
) -> Result<(DeviceView, Duration), Failure> {
    let within = Duration::from_secs(15);
    let every = Duration::from_millis(20);
    let reported = |d: &DeviceView| d.last_report.as_ref() == Some(data);
    match watch_device(api, dev_id, within, every, reported).await? {
        Ok(device) => Ok((device, sent_at.elapsed())),
        Err(last) => Err(Failure::Timeout(format!(
            "the device did not report {COMMAND} back within 15 s (last report {})",
            last.last_report.unwrap_or_default()
        ))),
    }
}

/// Reads the cloud's view of a device every `every` until `done` holds (`Ok`), or until
/// `within` has passed (`Err` with the last view).
async fn watch_device(
    api: &Api,
    dev_id: &str,
    within: Duration,
    every: Duration,
    done: impl Fn(&DeviceView) -> bool,
) -> Result<Result<DeviceView, DeviceView>, Failure> {
    // A failed request ends the wait at once; a view that is not there yet waits.
    let seen = local::eventually(within, every, || async {
        match api.device(dev_id).await {
            Ok(view) if done(&view) => Ok(Ok(view)),
            Ok(view) => Err(view),
            Err(e) => Ok(Err(e)),
        }
    })
    .await;
    match seen {
        Ok(Ok(view)) => Ok(Ok(view)),
        Ok(Err(e)) => Err(e),
        Err(last) => Ok(Err(last)),
    }
}

fn print_summary(steps: &Steps, options: Options, s: &mut Summary) {
    let total = print_phases(steps, s);
    if options.json {
        let out = json!({
            "dev_id": s.dev_id,
            "timings": s.timings,
            "online_ms": total,
            "report": s.report,
            "round_trip_ms": u64::try_from(s.round_trip.as_millis()).unwrap_or(u64::MAX),
            "update": s.update,
            "elapsed_ms": u64::try_from(steps.started.elapsed().as_millis()).unwrap_or(u64::MAX),
        });
        println!("{out}");
    }
}

/// Prints the device's phases once; returns the credentials-to-online total in ms.
fn print_phases(steps: &Steps, s: &mut Summary) -> u64 {
    let t = &s.timings;
    let phases = [
        ("wifi", "joined the router (simulated radio, no air time)"),
        (
            "dns",
            "IoT DNS answered with the HTTPS and MQTTS endpoints and their CA",
        ),
        (
            "activate",
            "activated with the token; the authkey signed the request",
        ),
        ("mqtt", "MQTT session up with the device's JWT"),
    ];
    let ms = |name: &str| match name {
        "wifi" => t.wifi_ms,
        "dns" => t.dns_ms,
        "activate" => t.activate_ms,
        _ => t.mqtt_ms,
    };
    let total: u64 = phases
        .iter()
        .filter_map(|(name, _)| ms(name).map(u64::from))
        .sum();
    if s.phases_shown {
        return total;
    }
    s.phases_shown = true;
    steps.say("what happened on the device, phase by phase:");
    for (name, what) in phases {
        let ms = ms(name).map_or_else(|| "-".to_owned(), |v| v.to_string());
        steps.detail(format_args!("{name:<9}{ms:>5} ms  {what}"));
    }
    steps.detail(format_args!(
        "{:<9}{total:>5} ms  credentials received to MQTT online",
        "total"
    ));
    steps.say(format_args!(
        "the cloud shows {} {}",
        s.dev_id,
        if s.online_in_cloud {
            "online"
        } else {
            "offline"
        }
    ));
    total
}

async fn keep_running(
    steps: &Steps,
    (api_url, ca): (&str, &Path),
    mqtt: std::net::SocketAddr,
    channel: &str,
    ctl_socket: &Path,
    password: &str,
) {
    steps.raw(&format!(
        "\nEverything stays up until Ctrl-C:\n  API      {api_url}\n  console  {api_url}/ (sign in as {USER}, password {password}; the browser must trust the CA below)\n  docs     {api_url}/docs\n  MQTT     mqtts://{mqtt}\n  CA       {}\n  device   data channel {channel}, control socket {}\n  try      TETHER_SERVER={api_url} TETHER_CA={} TETHER_USER={USER} TETHER_PASSWORD={password} tether devices\n",
        ca.display(),
        ctl_socket.display(),
        ca.display()
    ));
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
    steps.say("stopping");
}
