//! `tether`: the provisioner and admin CLI. It plays the phone app's part: log in, create
//! pairing tokens, provision a device over its data channel, and control devices.

mod client;
mod demo;
mod license;
mod module;
mod progress;
mod provision;
mod session;
mod show;
mod transfer;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use serde_json::{Value, json};
use tether_proto::api::{DeviceTargets, ProductTarget, RolloutRequest};
use tether_proto::channel::{ChannelReply, ChannelRequest};
use tether_proto::setup_code::{QrPayload, SetupCode};
use tether_proto::token_status::CreateTokenRequest;
use tether_proto::{PairingToken, PublicId, Secret};

use client::Api;
use tether::channel;
use tether::failure::{self, EXIT_CODES, Failure};

/// Tether provisioner: pair devices and control them.
#[derive(Debug, Parser)]
#[command(version, about, after_help = EXIT_CODES)]
struct Cli {
    /// Cloud API base URL.
    #[arg(
        long,
        env = "TETHER_SERVER",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    server: String,
    /// A PEM file of the CA that signed the server's certificate, for a cloud with a
    /// private CA (such as the local CA that `tether-service tls ca` prints)
    #[arg(long, env = "TETHER_CA", global = true)]
    ca: Option<PathBuf>,
    /// Account name; the password comes from TETHER_PASSWORD or a prompt.
    #[arg(long, env = "TETHER_USER", global = true)]
    user: Option<String>,
    /// Print machine-readable JSON.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole system on this machine: a local cloud service and a device with a
    /// simulated radio, paired over the data channel, sent a command, and its report
    /// shown, with timings.
    Demo {
        /// Leave the service and the device running and print their URLs.
        #[arg(long)]
        keep_running: bool,
        /// Also update the device's pairing component live, through the cloud.
        #[arg(long)]
        update: bool,
    },
    /// Log in and keep the access token in the user's config dir.
    Login,
    /// Signing keys and signed bundles of pairing components (hot update).
    #[command(subcommand)]
    Module(ModuleCommand),
    /// Pairing tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Device licenses (admins): list them with their state, export, revoke.
    #[command(subcommand)]
    License(LicenseCommand),
    /// Hand a device the router's credentials and a pairing token over its data channel
    /// (encrypted with the setup code on its label), and follow it until it is online or
    /// has failed.
    Provision {
        #[command(flatten)]
        target: DeviceArgs,
        #[command(flatten)]
        network: NetworkArgs,
        /// A pairing token to use; by default a new single-use one is created.
        #[arg(long)]
        token: Option<String>,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
    },
    /// List the Wi-Fi networks a device sees (over its encrypted data channel).
    Scan {
        #[command(flatten)]
        target: DeviceArgs,
    },
    /// Move a paired device to another router without pairing it again: open its
    /// pairing window first (`tether-host ctl pairing open`, or its button). It keeps the
    /// old network until it is online on the new one.
    Wifi {
        #[command(flatten)]
        target: DeviceArgs,
        #[command(flatten)]
        network: NetworkArgs,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 90)]
        timeout: u64,
    },
    /// List your devices.
    Devices,
    /// Show one device.
    Device {
        /// Device id.
        id: String,
    },
    /// Send data points to a device, such as '{"1":true}'.
    Send {
        /// Device id.
        id: String,
        /// Data points as a JSON object.
        data: String,
    },
    /// Hand a device to another account without resetting it, when both agree.
    #[command(subcommand)]
    Transfer(transfer::TransferCommand),
    /// Unbind a device (it returns to awaiting credentials).
    Unbind {
        /// Device id.
        id: String,
        /// Also factory-reset it.
        #[arg(long)]
        reset: bool,
    },
}

#[derive(Debug, Subcommand)]
enum ModuleCommand {
    /// Create an ed25519 signing key pair: DIR/module.key (secret, mode 0600) and
    /// DIR/module.pub (the public key devices trust).
    Keygen {
        /// Directory for the two files.
        #[arg(long)]
        out: PathBuf,
    },
    /// Check a pairing component and write a signed bundle of it.
    Sign {
        /// The secret key file from `keygen`.
        #[arg(long)]
        key: PathBuf,
        /// The component's version, MAJOR.MINOR.PATCH.
        #[arg(long)]
        version: String,
        /// Sequence number; by default one more than the last this key signed.
        #[arg(long)]
        sequence: Option<u64>,
        /// The oldest tether-host that may run it.
        #[arg(long, default_value = env!("CARGO_PKG_VERSION"))]
        min_host_version: String,
        /// The component (.wasm).
        component: PathBuf,
        /// Where to write the bundle (the portable one; each precompiled one goes next
        /// to it as NAME.TARGET.ENGINE.EXT).
        #[arg(short = 'o', long = "out")]
        out: PathBuf,
        /// Also precompile for this target triple, for hosts built without the
        /// compiler (repeatable; x86_64, aarch64, and 32-bit ARM on Pulley).
        #[arg(long = "target", value_name = "TRIPLE")]
        targets: Vec<String>,
        /// Precompile for Wasmtime's Pulley interpreter rather than native code.
        #[arg(long, requires = "targets")]
        pulley: bool,
    },
    /// Upload signed bundles to the cloud (admins): one module, or its bundles for
    /// several platforms (the files `sign --target` wrote).
    Upload {
        /// Bundle files.
        #[arg(required = true)]
        bundles: Vec<PathBuf>,
    },
    /// Roll a module out to every device of a product or to listed devices (admins).
    /// Each device gets the bundle for its platform.
    Rollout {
        /// The module id `upload` printed.
        module_id: i64,
        /// Every device of this product, including ones activated later.
        #[arg(long, conflicts_with = "devices", required_unless_present = "devices")]
        product: Option<String>,
        /// These devices (repeatable).
        #[arg(long = "device", value_name = "DEV_ID")]
        devices: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
enum LicenseCommand {
    /// List licenses with their state (unused, active, revoked) and bound device.
    List {
        #[command(flatten)]
        filter: license::Filter,
        /// Print CSV (for a spreadsheet) instead of a table.
        #[arg(long)]
        csv: bool,
    },
    /// Revoke a license: its device is unbound now and it activates no device again.
    Revoke {
        /// The license's uuid.
        uuid: String,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Create a pairing token.
    Create {
        /// Lifetime in seconds.
        #[arg(long)]
        ttl: Option<u32>,
        /// How many devices it may activate (1-50).
        #[arg(long)]
        max_devices: Option<u32>,
    },
    /// Show a token's state, devices and failures.
    Status {
        /// The token (all 14 characters, or the first 10).
        token: String,
        /// Wait up to this many seconds (≤ 60) for a change.
        #[arg(long)]
        wait: Option<u64>,
    },
    /// Revoke a token.
    Revoke {
        /// The token.
        token: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: failed to start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("error: {failure}");
            failure.exit_code()
        }
    }
}

async fn run(cli: &Cli) -> Result<(), Failure> {
    match &cli.command {
        Command::Demo {
            keep_running,
            update,
        } => demo(cli, *keep_running, *update).await,
        Command::Module(ModuleCommand::Keygen { out }) => module_keygen(cli, out),
        Command::Module(ModuleCommand::Upload { bundles }) => module_upload(cli, bundles).await,
        Command::Module(ModuleCommand::Rollout {
            module_id,
            product,
            devices,
        }) => module_rollout(cli, *module_id, product.as_deref(), devices).await,
        Command::Module(ModuleCommand::Sign {
            key,
            version,
            sequence,
            min_host_version,
            component,
            out,
            targets,
            pulley,
        }) => module_sign(
            cli,
            &module::SignRequest {
                key,
                version,
                sequence: *sequence,
                min_host_version,
                component,
                out,
                targets,
                pulley: *pulley,
            },
        ),
        Command::Login => {
            login(cli).await?;
            print(
                cli,
                &json!({"server": cli.server, "logged_in": true}),
                || format!("logged in to {}", cli.server),
            );
            Ok(())
        }
        Command::Token(TokenCommand::Create { ttl, max_devices }) => {
            token_create(cli, *ttl, *max_devices).await
        }
        Command::Token(TokenCommand::Status { token, wait }) => {
            token_status(cli, token, *wait).await
        }
        Command::Token(TokenCommand::Revoke { token }) => token_revoke(cli, token).await,
        Command::License(LicenseCommand::List { filter, csv: true }) => {
            let text = license::csv(&authed(cli).await?, filter).await?;
            print!("{text}");
            Ok(())
        }
        Command::License(LicenseCommand::List { filter, csv: false }) => {
            let all = license::all(&authed(cli).await?, filter).await?;
            print(cli, &all, || license::table(&all));
            Ok(())
        }
        Command::License(LicenseCommand::Revoke { uuid }) => {
            authed(cli).await?.revoke_license(uuid).await?;
            print(cli, &json!({"revoked": uuid}), || format!("revoked {uuid}"));
            Ok(())
        }
        Command::Scan { target } => scan(cli, &target.device, &target.security.resolve()?).await,
        Command::Wifi {
            target,
            network,
            timeout,
        } => {
            let password = network.password()?;
            let progress = progress::Progress::new(progress::Style::detect(cli.json));
            let now = provision::change_wifi(
                &target.device,
                &target.security.resolve()?,
                (&network.ssid, &password),
                Duration::from_secs(*timeout),
                |phase| progress.phase(phase),
            )
            .await?;
            progress.finish();
            print(cli, &json!({"ssid": now}), || format!("online on {now:?}"));
            Ok(())
        }
        Command::Provision {
            target,
            network,
            token,
            timeout,
        } => {
            let password = network.password()?;
            let target = ProvisionTarget {
                device: &target.device,
                security: target.security.resolve()?,
                ssid: &network.ssid,
                password: &password,
                token: token.as_deref(),
                timeout: Duration::from_secs(*timeout),
            };
            provision(cli, &target).await
        }
        Command::Devices => devices(cli).await,
        Command::Device { id } => {
            let device = authed(cli).await?.device(id).await?;
            print(cli, &device, || {
                serde_json::to_string_pretty(&device).unwrap_or_default()
            });
            Ok(())
        }
        Command::Send { id, data } => send(cli, id, data).await,
        Command::Transfer(command) => {
            let (value, text) = transfer::run(&authed(cli).await?, command).await?;
            print(cli, &value, || text);
            Ok(())
        }
        Command::Unbind { id, reset } => {
            authed(cli).await?.unbind(id, *reset).await?;
            print(cli, &json!({"unbound": id, "reset": reset}), || {
                format!("unbound {id}")
            });
            Ok(())
        }
    }
}

async fn demo(cli: &Cli, keep_running: bool, update: bool) -> Result<(), Failure> {
    init_logs();
    demo::run(demo::Options {
        keep_running,
        update,
        json: cli.json,
    })
    .await
}

fn module_keygen(cli: &Cli, out: &std::path::Path) -> Result<(), Failure> {
    let made = module::keygen(out)?;
    print(cli, &made, || {
        format!(
            "wrote {} (secret, keep it safe) and {}\npublic key {}",
            made["secret_key"].as_str().unwrap_or("?"),
            made["public_key"].as_str().unwrap_or("?"),
            made["public"].as_str().unwrap_or("?")
        )
    });
    Ok(())
}

async fn module_upload(cli: &Cli, bundles: &[PathBuf]) -> Result<(), Failure> {
    let api = authed(cli).await?;
    for path in bundles {
        let bytes = std::fs::read(path)
            .map_err(|e| Failure::Invalid(format!("cannot read {}: {e}", path.display())))?;
        let module = api.upload_module(bytes).await?;
        print(cli, &module, || {
            format!(
                "uploaded {}: module {} version {} (sequence {}), bundles: {}",
                path.display(),
                module.id,
                module.version,
                module.sequence,
                module.variants.join(", ")
            )
        });
    }
    Ok(())
}

async fn module_rollout(
    cli: &Cli,
    module_id: i64,
    product: Option<&str>,
    devices: &[String],
) -> Result<(), Failure> {
    let targets = match product {
        Some(product_key) => RolloutRequest::Product(ProductTarget {
            product_key: product_key.to_owned(),
        }),
        None => RolloutRequest::Devices(DeviceTargets {
            devices: devices.to_vec(),
        }),
    };
    let rollout = authed(cli).await?.roll_out(module_id, &targets).await?;
    print(cli, &rollout, || {
        format!(
            "rollout {} of module {} (version {}): {} devices targeted, {} notified now",
            rollout.rollout_id,
            rollout.module_id,
            rollout.version,
            rollout.targeted,
            rollout.notified
        )
    });
    Ok(())
}

fn module_sign(cli: &Cli, request: &module::SignRequest<'_>) -> Result<(), Failure> {
    let signed = module::sign(request)?;
    print(cli, &signed, || {
        let m = &signed["manifest"];
        let mut text = format!(
            "wrote {}: version {}, sequence {}, {} bytes, sha256 {}",
            request.out.display(),
            m["version"].as_str().unwrap_or("?"),
            m["sequence"],
            m["size"],
            m["sha256"].as_str().unwrap_or("?")
        );
        for variant in signed["precompiled"].as_array().into_iter().flatten() {
            let code = &variant["precompiled"];
            text.push_str(&format!(
                "\nwrote {}: precompiled for {} ({}), {} bytes",
                variant["bundle"].as_str().unwrap_or("?"),
                code["target"].as_str().unwrap_or("?"),
                code["engine"].as_str().unwrap_or("?"),
                variant["size"]
            ));
        }
        text
    });
    Ok(())
}

async fn token_create(
    cli: &Cli,
    ttl_secs: Option<u32>,
    max_devices: Option<u32>,
) -> Result<(), Failure> {
    let request = CreateTokenRequest {
        ttl_secs,
        max_devices,
    };
    let token = authed(cli).await?.create_token(&request).await?;
    print(cli, &token, || {
        format!(
            "{}  (expires at {}, up to {} devices)",
            token.token.expose(),
            token.expires_at,
            token.max_devices
        )
    });
    Ok(())
}

async fn token_status(cli: &Cli, token: &str, wait: Option<u64>) -> Result<(), Failure> {
    let public = public_id(token)?;
    let status = authed(cli).await?.token_status(&public, wait).await?;
    print(cli, &status, || show::token_status(&status));
    Ok(())
}

async fn token_revoke(cli: &Cli, token: &str) -> Result<(), Failure> {
    let public = public_id(token)?;
    authed(cli).await?.revoke_token(&public).await?;
    print(cli, &json!({"revoked": public}), || {
        format!("revoked {public}")
    });
    Ok(())
}

/// The public id of a token given whole (14 characters) or by its first ten.
fn public_id(token: &str) -> Result<PublicId, Failure> {
    let parsed = match PairingToken::parse(token) {
        Ok(whole) => Ok(whole.public()),
        Err(_) => PublicId::parse(token),
    };
    parsed.map_err(|e| Failure::Invalid(format!("not a pairing token: {e}")))
}

/// What `tether provision` was asked to do.
struct ProvisionTarget<'a> {
    device: &'a str,
    security: channel::Security,
    ssid: &'a str,
    password: &'a str,
    token: Option<&'a str>,
    timeout: Duration,
}

async fn provision(cli: &Cli, target: &ProvisionTarget<'_>) -> Result<(), Failure> {
    // One trace for the whole pairing: this command's API calls, the device's cloud
    // requests (when its component reads it) and the service's log lines.
    let trace = tether_proto::trace::TraceParent::generate()
        .map_err(|e| Failure::Other(format!("no random source: {e}")))?;
    let trace_id = trace.trace_id_hex();
    let api = authed(cli).await?.with_trace(trace);
    let token = match target.token {
        Some(t) => Secret::new(t),
        None => {
            api.create_token(&CreateTokenRequest::default())
                .await?
                .token
        }
    };
    let progress = progress::Progress::new(progress::Style::detect(cli.json));
    progress.phase(&format!("trace {trace_id}"));
    let done = provision::provision(
        &api,
        target.device,
        &target.security,
        (target.ssid, target.password),
        token.expose(),
        target.timeout,
        |phase| progress.phase(phase),
    )
    .await?;
    progress.finish();
    let out = json!({"dev_id": done.dev_id, "token": done.token, "timings": done.timings, "trace_id": trace_id});
    print(cli, &out, || {
        format!(
            "online as {}\ntimings: {}\ntrace: {trace_id}",
            done.dev_id,
            show::timings(&done.timings.unwrap_or_default())
        )
    });
    Ok(())
}

/// Which device, and how to prove the right to talk to it.
#[derive(Debug, clap::Args)]
struct DeviceArgs {
    /// The device's data channel, HOST:PORT.
    #[arg(long)]
    device: String,
    #[command(flatten)]
    security: SecurityArgs,
}

/// The router a device should join.
#[derive(Debug, clap::Args)]
struct NetworkArgs {
    /// Router network name.
    #[arg(long)]
    ssid: String,
    /// Router password (empty for an open network). Command lines are visible to other
    /// local users: prefer --password-file.
    #[arg(long, default_value = "")]
    password: String,
    /// Read the router password from the first line of this file ('-' for standard
    /// input) instead of the command line.
    #[arg(long, conflicts_with = "password")]
    password_file: Option<PathBuf>,
}

impl NetworkArgs {
    fn password(&self) -> Result<String, Failure> {
        match &self.password_file {
            Some(path) => read_secret_line(path),
            None => Ok(self.password.clone()),
        }
    }
}

/// How the CLI proves itself to a device.
#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
struct SecurityArgs {
    /// The setup code on the device's label (10 digits; spaces and dashes are fine).
    #[arg(long, env = "TETHER_SETUP_CODE", hide_env_values = true)]
    setup_code: Option<String>,
    /// The payload of the device's QR code (`tether:pair?…`), which holds the setup code.
    #[arg(long)]
    qr: Option<String>,
    /// Development only: talk protocol 1 in clear to a device whose `channel.plaintext`
    /// switch is on. The Wi-Fi password and the token cross the air readable.
    #[arg(long)]
    plaintext: bool,
}

impl SecurityArgs {
    fn resolve(&self) -> Result<channel::Security, Failure> {
        let invalid = |e: tether_proto::setup_code::SetupCodeError| Failure::Invalid(e.to_string());
        match (&self.setup_code, &self.qr) {
            (Some(code), _) => Ok(channel::Security::SetupCode(
                SetupCode::parse(code).map_err(invalid)?,
            )),
            (None, Some(qr)) => Ok(channel::Security::SetupCode(
                qr.parse::<QrPayload>().map_err(invalid)?.code,
            )),
            (None, None) => {
                eprintln!(
                    "warning: protocol 1 in clear: anyone nearby can read the Wi-Fi password and the token"
                );
                Ok(channel::Security::Plaintext)
            }
        }
    }
}

async fn scan(cli: &Cli, device: &str, security: &channel::Security) -> Result<(), Failure> {
    let mut channel = channel::DeviceChannel::open(device, security).await?;
    let aps = match channel.ask(&ChannelRequest::Scan {}).await? {
        ChannelReply::Scan { aps } => aps,
        ChannelReply::Error { code, message } => {
            return Err(Failure::Pairing { code, message });
        }
        other => return Err(Failure::Other(format!("unexpected answer: {other:?}"))),
    };
    print(cli, &aps, || {
        aps.iter()
            .map(|ap| {
                format!(
                    "{:<32}  {:>4} dBm  ch {:>2}  {}",
                    ap.ssid, ap.rssi, ap.channel, ap.security
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(())
}

async fn devices(cli: &Cli) -> Result<(), Failure> {
    let devices = authed(cli).await?.devices().await?;
    print(cli, &devices, || {
        devices
            .iter()
            .map(|d| {
                let report = d.last_report.clone().unwrap_or_default();
                let online = if d.online { "online " } else { "offline" };
                format!("{}  {online}  {report}", d.dev_id)
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(())
}

async fn send(cli: &Cli, id: &str, data: &str) -> Result<(), Failure> {
    let data: Value = serde_json::from_str(data)
        .map_err(|e| Failure::Invalid(format!("data must be a JSON object: {e}")))?;
    let Value::Object(data) = data else {
        return Err(Failure::Invalid(
            "data must be a JSON object such as '{\"1\":true}'".into(),
        ));
    };
    let sent = authed(cli).await?.send_command(id, data).await?;
    print(cli, &sent, || format!("sent to {id}"));
    Ok(())
}

fn print(cli: &Cli, value: &impl serde::Serialize, human: impl FnOnce() -> String) {
    if cli.json {
        println!("{}", serde_json::to_string(value).unwrap_or_default());
    } else {
        println!("{}", human());
    }
}

/// The first line of `path` ('-' for standard input), without its line end.
fn read_secret_line(path: &std::path::Path) -> Result<String, Failure> {
    use std::io::BufRead;
    let mut line = String::new();
    let read = if path == std::path::Path::new("-") {
        std::io::stdin().lock().read_line(&mut line)
    } else {
        std::fs::File::open(path).and_then(|f| std::io::BufReader::new(f).read_line(&mut line))
    };
    read.map_err(|e| Failure::Invalid(format!("cannot read {}: {e}", path.display())))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// Logs in with the user and password and stores the access token.
async fn login(cli: &Cli) -> Result<Api, Failure> {
    let user = cli
        .user
        .as_deref()
        .ok_or_else(|| Failure::Auth("name the account with --user or TETHER_USER".into()))?;
    let password = match std::env::var("TETHER_PASSWORD") {
        Ok(p) if !p.is_empty() => p,
        _ if std::io::stdin().is_terminal() => {
            rpassword::prompt_password(format!("password for {user}: "))
                .map_err(|e| Failure::Auth(format!("cannot read the password: {e}")))?
        }
        _ => {
            return Err(Failure::Auth(
                "set TETHER_PASSWORD or run on a terminal to be asked".into(),
            ));
        }
    };
    let api = Api::new(&cli.server, cli.ca.as_deref())?;
    let token = api.login(user, &password).await?;
    session::store(&cli.server, token.expose())
        .map_err(|e| Failure::Other(format!("cannot store the session: {e:#}")))?;
    Ok(api.with_token(token))
}

/// A client with an access token: the stored one while it is valid, else a fresh login
/// when an account is named.
async fn authed(cli: &Cli) -> Result<Api, Failure> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    match session::load(&cli.server) {
        Some(token) if !session::expires_soon(&token, now) => {
            Ok(Api::new(&cli.server, cli.ca.as_deref())?.with_token(Secret::new(token)))
        }
        _ if cli.user.is_some() => login(cli).await,
        Some(_) => Err(Failure::Auth(format!(
            "the session with {} has expired: run `tether login --user NAME`",
            cli.server
        ))),
        None => Err(Failure::Auth(format!(
            "not logged in to {}: run `tether login --user NAME`",
            cli.server
        ))),
    }
}

/// Logs of the embedded service and device (demo only): warnings, or `RUST_LOG`.
fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .try_init();
}
