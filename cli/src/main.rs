//! `tether`: the provisioner and admin CLI. It plays the phone app's part: log in, create
//! pairing tokens, provision a device over its data channel, and control devices.

mod client;
mod demo;
mod failure;
mod module;
mod progress;
mod provision;
mod session;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};

use client::Api;
use failure::{EXIT_CODES, Failure};

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
    /// Hand a device the router's credentials and a pairing token over its data channel,
    /// and follow it until it is online or has failed.
    Provision {
        /// The device's data channel, HOST:PORT.
        #[arg(long)]
        device: String,
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
        /// A pairing token to use; by default a new single-use one is created.
        #[arg(long)]
        token: Option<String>,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 120)]
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
        /// Where to write the bundle.
        #[arg(short = 'o', long = "out")]
        out: PathBuf,
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

const TIMEOUT: Duration = Duration::from_secs(30);

async fn run(cli: &Cli) -> Result<(), Failure> {
    match &cli.command {
        Command::Demo {
            keep_running,
            update,
        } => {
            init_logs();
            demo::run(demo::Options {
                keep_running: *keep_running,
                update: *update,
                json: cli.json,
            })
            .await?;
        }
        Command::Module(ModuleCommand::Keygen { out }) => {
            let made = module::keygen(out)?;
            print(cli, &made, || {
                format!(
                    "wrote {} (secret, keep it safe) and {}\npublic key {}",
                    made["secret_key"].as_str().unwrap_or("?"),
                    made["public_key"].as_str().unwrap_or("?"),
                    made["public"].as_str().unwrap_or("?")
                )
            });
        }
        Command::Module(ModuleCommand::Sign {
            key,
            version,
            sequence,
            min_host_version,
            component,
            out,
        }) => {
            let signed = module::sign(&module::SignRequest {
                key,
                version,
                sequence: *sequence,
                min_host_version,
                component,
                out,
            })?;
            print(cli, &signed, || {
                let m = &signed["manifest"];
                format!(
                    "wrote {}: version {}, sequence {}, {} bytes, sha256 {}",
                    out.display(),
                    m["version"].as_str().unwrap_or("?"),
                    m["sequence"],
                    m["size"],
                    m["sha256"].as_str().unwrap_or("?")
                )
            });
        }
        Command::Login => {
            login(cli).await?;
            print(
                cli,
                &json!({"server": cli.server, "logged_in": true}),
                || format!("logged in to {}", cli.server),
            );
        }
        Command::Token(TokenCommand::Create { ttl, max_devices }) => {
            let api = authed(cli).await?;
            let body = json!({"ttl_secs": ttl, "max_devices": max_devices});
            let body = Value::Object(
                body.as_object()
                    .into_iter()
                    .flatten()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            );
            let token = api
                .call(Method::POST, "/v1/pairing-tokens", Some(body), TIMEOUT)
                .await?;
            print(cli, &token, || {
                format!(
                    "{}  (expires at {}, up to {} devices)",
                    token["token"].as_str().unwrap_or("?"),
                    token["expires_at"],
                    token["max_devices"]
                )
            });
        }
        Command::Token(TokenCommand::Status { token, wait }) => {
            let api = authed(cli).await?;
            let public = &token[..token.len().min(10)];
            let query = wait.map(|w| format!("?wait={w}")).unwrap_or_default();
            let timeout = TIMEOUT + Duration::from_secs(wait.unwrap_or(0));
            let status = api
                .call(
                    Method::GET,
                    &format!("/v1/pairing-tokens/{public}{query}"),
                    None,
                    timeout,
                )
                .await?;
            print(cli, &status, || {
                let devices = status["devices"].as_array().map_or(0, Vec::len);
                let failures = status["failures"].as_array().map_or(0, Vec::len);
                format!(
                    "{}  {}  {devices} device(s), {failures} failure(s)",
                    status["token"].as_str().unwrap_or("?"),
                    status["state"].as_str().unwrap_or("?")
                )
            });
        }
        Command::Token(TokenCommand::Revoke { token }) => {
            let api = authed(cli).await?;
            let public = &token[..token.len().min(10)];
            api.call(
                Method::DELETE,
                &format!("/v1/pairing-tokens/{public}"),
                None,
                TIMEOUT,
            )
            .await?;
            print(cli, &json!({"revoked": public}), || {
                format!("revoked {public}")
            });
        }
        Command::Provision {
            device,
            ssid,
            password,
            password_file,
            token,
            timeout,
        } => {
            let password = match password_file {
                Some(path) => read_secret_line(path)?,
                None => password.clone(),
            };
            let password = &password;
            let api = authed(cli).await?;
            let token = match token {
                Some(t) => t.clone(),
                None => {
                    let created = api
                        .call(Method::POST, "/v1/pairing-tokens", Some(json!({})), TIMEOUT)
                        .await?;
                    created["token"]
                        .as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| Failure::Other("no token in the answer".into()))?
                }
            };
            let progress = progress::Progress::new(progress::Style::detect(cli.json));
            let done = provision::provision(
                &api,
                device,
                ssid,
                password,
                &token,
                Duration::from_secs(*timeout),
                |phase| progress.phase(phase),
            )
            .await?;
            progress.finish();
            let out = json!({"dev_id": done.dev_id, "token": done.token, "timings": done.timings});
            print(cli, &out, || {
                let t = &done.timings;
                let ms = |v: &Value| {
                    v.as_u64()
                        .map_or_else(|| "-".to_owned(), |n| format!("{n} ms"))
                };
                format!(
                    "online as {}\ntimings: wifi {}, dns {}, activate {}, mqtt {}",
                    done.dev_id,
                    ms(&t["wifi_ms"]),
                    ms(&t["dns_ms"]),
                    ms(&t["activate_ms"]),
                    ms(&t["mqtt_ms"])
                )
            });
        }
        Command::Devices => {
            let api = authed(cli).await?;
            let devices = api.call(Method::GET, "/v1/devices", None, TIMEOUT).await?;
            print(cli, &devices, || {
                devices
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|d| {
                        format!(
                            "{}  {}  {}",
                            d["dev_id"].as_str().unwrap_or("?"),
                            if d["online"] == true {
                                "online "
                            } else {
                                "offline"
                            },
                            d["last_report"]
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        Command::Device { id } => {
            let api = authed(cli).await?;
            let device = api
                .call(Method::GET, &format!("/v1/devices/{id}"), None, TIMEOUT)
                .await?;
            print(cli, &device, || {
                serde_json::to_string_pretty(&device).unwrap_or_default()
            });
        }
        Command::Send { id, data } => {
            let data: Value = serde_json::from_str(data)
                .map_err(|e| Failure::Invalid(format!("data must be a JSON object: {e}")))?;
            if !data.is_object() {
                return Err(Failure::Invalid(
                    "data must be a JSON object such as '{\"1\":true}'".into(),
                ));
            }
            let api = authed(cli).await?;
            let sent = api
                .call(
                    Method::POST,
                    &format!("/v1/devices/{id}/commands"),
                    Some(json!({"data": data})),
                    TIMEOUT,
                )
                .await?;
            print(cli, &sent, || format!("sent to {id}"));
        }
        Command::Unbind { id, reset } => {
            let api = authed(cli).await?;
            let query = if *reset { "?reset=true" } else { "" };
            api.call(
                Method::DELETE,
                &format!("/v1/devices/{id}{query}"),
                None,
                TIMEOUT,
            )
            .await?;
            print(cli, &json!({"unbound": id, "reset": reset}), || {
                format!("unbound {id}")
            });
        }
    }
    Ok(())
}

fn print(cli: &Cli, value: &Value, human: impl FnOnce() -> String) {
    if cli.json {
        println!("{value}");
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
    let api = Api::new(&cli.server)?;
    let token = api.login(user, &password).await?;
    session::store(&cli.server, &token)
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
            Ok(Api::new(&cli.server)?.with_token(token))
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
