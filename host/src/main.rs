//! `tether-host`: the device runtime's command line.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use tether_host::capabilities::{Kv, Signer};
use tether_host::component::DEFAULT_COMPONENT_VERSION;
use tether_host::config::HostConfig;
use tether_host::ctl::CtlClient;
use tether_host::daemon::Device;
use tether_host::runtime::WORLD;
use tether_host::{LoadedComponent, Runtime, RuntimeConfig};
use tether_proto::ctl::{CtlAnswer, CtlReply, CtlRequest};
use tether_proto::status::{DeviceStatus, NetState};
use tether_proto::{ErrorCode, ReplyCode, Secret};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// `run`'s exit code when the config file cannot be read or is invalid (sysexits'
/// EX_CONFIG): trying again cannot help, so the systemd unit does not restart on it.
const EXIT_CONFIG: u8 = 78;

/// How many instantiations `check-component` times.
const INSTANTIATIONS: usize = 200;

/// The Tether device host: runs the pairing component.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the device (the pairing component with its Wi-Fi, HTTP, MQTT, data channel and
    /// control socket) until SIGTERM or SIGINT. Exits 78 when the config file cannot be
    /// read or is invalid, 1 on any other failure to start.
    Run {
        /// The host's TOML configuration (see tether-host.example.toml).
        #[arg(long, env = "TETHER_HOST_CONFIG")]
        config: PathBuf,
    },
    /// Talk to a running host over its control socket. Exits 1 when the request is
    /// refused, 2 when the host cannot be reached.
    Ctl {
        /// The host's TOML configuration (names the control socket).
        #[arg(long, env = "TETHER_HOST_CONFIG")]
        config: PathBuf,
        #[command(subcommand)]
        request: CtlCommand,
    },
    /// Load a pairing component (the built-in one unless PATH is given), check it against
    /// the `tether:pairing/pairing` world, instantiate it and print its world, size,
    /// compile and instantiate times. Exits 1 if any step fails.
    CheckComponent {
        /// A component file (`.wasm`) to check instead of the built-in one.
        path: Option<PathBuf>,
        /// Linear memory cap per instance, in MiB.
        #[arg(long, default_value_t = 16)]
        memory_cap_mib: usize,
        /// CPU-time budget of each call into the component, in milliseconds.
        #[arg(long, default_value_t = 100)]
        deadline_ms: u64,
    },
    /// Compile a pairing component (the built-in one unless PATH is given) ahead of time,
    /// for a host built without the compiler (`component` in its config). The memory cap
    /// must match the host's.
    #[cfg(feature = "compiler")]
    Precompile {
        /// A component file (`.wasm`) to compile instead of the built-in one.
        path: Option<PathBuf>,
        /// Target triple of the host that will run it (this host's when not given;
        /// aarch64 or x86_64 native code for the other one needs a build with the
        /// `cross` feature). 32-bit ARM gets Pulley bytecode.
        #[arg(long)]
        target: Option<String>,
        /// Compile for Wasmtime's Pulley interpreter (hosts built with `pulley`).
        #[arg(long)]
        pulley: bool,
        /// Where to write the compiled component.
        #[arg(long, short)]
        output: PathBuf,
        /// Linear memory cap per instance, in MiB.
        #[arg(long, default_value_t = 16)]
        memory_cap_mib: usize,
    },
}

#[derive(Debug, Subcommand)]
enum CtlCommand {
    /// The seed API: hand the device router credentials and a pairing token.
    UserCfg {
        /// Router network name.
        #[arg(long)]
        ssid: String,
        /// Router password (empty for an open network).
        #[arg(long, default_value = "")]
        passwd: String,
        /// Pairing token (14 characters).
        #[arg(long)]
        token: String,
    },
    /// Show state, last error, timings and dev-id.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Local factory reset.
    Reset,
    /// Hot update of the pairing component.
    #[command(subcommand)]
    Module(ModuleCommand),
    /// The data channel's pairing window (what a pairing button would open).
    #[command(subcommand)]
    Pairing(PairingCommand),
}

#[derive(Debug, Subcommand)]
enum PairingCommand {
    /// Open the window: a provisioner with the setup code may then configure this
    /// device even when it is paired (a new Wi-Fi network, say), and a channel locked by
    /// failed handshakes unlocks.
    Open {
        /// How long it stays open, in seconds (1-3600).
        #[arg(long, default_value_t = tether_proto::ctl::DEFAULT_WINDOW_SECS)]
        secs: u32,
    },
    /// Close the window now.
    Close,
}

#[derive(Debug, Subcommand)]
enum ModuleCommand {
    /// Apply a signed bundle (`tether module sign`): verify, swap, probation.
    Load {
        /// The bundle file.
        bundle: PathBuf,
    },
    /// The running component's version, the update slots and the last outcome (JSON).
    Status,
}

/// What to log: `RUST_LOG` as `LEVEL` or `TARGET=LEVEL,…` (`warn` by default). A plain
/// target filter, not `EnvFilter`: its regular expressions are a tenth of a board's budget.
fn log_filter() -> tracing_subscriber::filter::Targets {
    let fallback = || tracing_subscriber::filter::Targets::new().with_default(tracing::Level::WARN);
    match std::env::var("RUST_LOG") {
        Ok(text) => text.parse().unwrap_or_else(|e| {
            eprintln!("RUST_LOG={text:?} is not LEVEL or TARGET=LEVEL,…: {e}; logging warnings");
            fallback()
        }),
        Err(_) => fallback(),
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .with_max_level(tracing::Level::TRACE)
        .finish()
        .with(log_filter())
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { config } => match HostConfig::load(&config) {
            Ok(config) => run(config),
            Err(e) => {
                eprintln!("error: {e:#}");
                return ExitCode::from(EXIT_CONFIG);
            }
        },
        Command::Ctl { config, request } => return ctl(&config, request),
        Command::CheckComponent {
            path,
            memory_cap_mib,
            deadline_ms,
        } => {
            let config = RuntimeConfig {
                memory_cap: memory_cap_mib << 20,
                call_deadline: Duration::from_millis(deadline_ms),
                ..RuntimeConfig::default()
            };
            check_component(path, config)
        }
        #[cfg(feature = "compiler")]
        Command::Precompile {
            path,
            target,
            pulley,
            output,
            memory_cap_mib,
        } => precompile(path, target.as_deref(), pulley, &output, memory_cap_mib),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn tokio_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new().context("failed to start the async runtime")
}

fn run(config: HostConfig) -> anyhow::Result<()> {
    tokio_runtime()?.block_on(async {
        let runtime = RuntimeConfig {
            call_deadline: Duration::from_millis(config.call_budget_ms.max(1)),
            ..RuntimeConfig::default()
        };
        let device = Device::start(config, runtime).await?;
        tracing::info!(channel = %device.channel_addr(), "device running");
        // One line on stdout for whoever started the host: where the channel listens
        // (useful with port 0).
        println!("device running; data channel on {}", device.channel_addr());
        shutdown_signal().await;
        device.stop();
        Ok(())
    })
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {},
    }
}

fn ctl(config: &std::path::Path, request: CtlCommand) -> ExitCode {
    let outcome = (|| -> anyhow::Result<ExitCode> {
        let config = HostConfig::load(config)?;
        let client = CtlClient::new(&config.ctl.socket);
        let runtime = tokio_runtime()?;
        let request = match request {
            CtlCommand::Status { json } => {
                return Ok(match runtime.block_on(client.status())? {
                    CtlAnswer::Value(status) if json => print_json(&status),
                    CtlAnswer::Value(status) => {
                        print_status(&status);
                        ExitCode::SUCCESS
                    }
                    CtlAnswer::Refused(reply) => refused(&reply),
                });
            }
            CtlCommand::Module(ModuleCommand::Status) => {
                return Ok(match runtime.block_on(client.module_status())? {
                    CtlAnswer::Value(status) => print_json(&status),
                    CtlAnswer::Refused(reply) => refused(&reply),
                });
            }
            CtlCommand::UserCfg {
                ssid,
                passwd,
                token,
            } => CtlRequest::UserCfg {
                ssid,
                passwd: Secret::new(passwd),
                token: Secret::new(token),
            },
            CtlCommand::Reset => CtlRequest::Reset {},
            CtlCommand::Pairing(PairingCommand::Open { secs }) => CtlRequest::PairingOpen { secs },
            CtlCommand::Pairing(PairingCommand::Close) => CtlRequest::PairingClose {},
            CtlCommand::Module(ModuleCommand::Load { bundle }) => CtlRequest::ModuleLoad {
                path: std::path::absolute(&bundle)
                    .with_context(|| format!("bad path {}", bundle.display()))?,
            },
        };
        let reply = runtime.block_on(client.command(&request))?;
        Ok(match (reply.code, &reply.report) {
            (ReplyCode::Ok, Some(r)) => {
                println!(
                    "running {} (sequence {}): prepared in {} ms, swap pause {} µs, total {} ms; on probation for {} s",
                    r.version, r.sequence, r.prepare_ms, r.pause_us, r.total_ms, r.probation_secs
                );
                ExitCode::SUCCESS
            }
            (ReplyCode::Ok, None) => {
                println!("ok");
                ExitCode::SUCCESS
            }
            _ => refused(&reply),
        })
    })();
    outcome.unwrap_or_else(|e| {
        eprintln!("error: {e:#}");
        ExitCode::from(2)
    })
}

fn print_json(value: &impl serde::Serialize) -> ExitCode {
    match serde_json::to_string(value) {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// Prints why the host refused and gives exit code 1.
fn refused(reply: &CtlReply) -> ExitCode {
    let message = reply.message.as_deref().unwrap_or("");
    match (reply.code, &reply.reason) {
        (ReplyCode::UpdateRefused, reason) => eprintln!(
            "error: update refused ({}): {message}",
            reason.as_deref().unwrap_or("?")
        ),
        (code, _) => eprintln!("error: {code} (OPRT {}): {message}", reply.oprt),
    }
    ExitCode::from(1)
}

fn print_status(status: &DeviceStatus) {
    let text = |v: Option<&str>| v.unwrap_or("-").to_owned();
    println!("state       {}", status.state.name());
    println!(
        "last error  {}",
        text(status.last_error.map(ErrorCode::name))
    );
    println!("dev id      {}", text(status.dev_id.as_deref()));
    println!("network     {}", text(status.ssid.as_deref()));
    let t = &status.timings;
    let ms = |v: Option<u32>| v.map_or_else(|| "-".to_owned(), |n| format!("{n} ms"));
    println!(
        "timings     wifi {}, dns {}, activate {}, mqtt {}",
        ms(t.wifi_ms),
        ms(t.dns_ms),
        ms(t.activate_ms),
        ms(t.mqtt_ms)
    );
    if let Some(c) = &status.channel {
        let window = c
            .window_secs
            .map_or_else(|| "closed".to_owned(), |s| format!("open, {s} s left"));
        let lock = if c.locked { ", locked" } else { "" };
        println!(
            "pairing     window {window}; {} failed handshakes{lock}",
            c.failures
        );
    }
}

fn check_component(path: Option<PathBuf>, config: RuntimeConfig) -> anyhow::Result<()> {
    let (label, bytes) = match &path {
        Some(p) => (
            p.display().to_string(),
            std::fs::read(p).with_context(|| format!("failed to read {}", p.display()))?,
        ),
        None => (
            format!("built-in (tether-guest {DEFAULT_COMPONENT_VERSION})"),
            tether_host::component::builtin()?.to_vec(),
        ),
    };
    let runtime = Runtime::new(config).context("failed to start the runtime")?;
    let loaded = runtime
        .load(&bytes)
        .with_context(|| format!("failed to load {label}"))?;
    println!("component    {label}");
    println!("world        {WORLD}: ok");
    print_interfaces(&runtime, &loaded);
    println!(
        "size         {} bytes ({:.1} KiB)",
        loaded.size,
        loaded.size as f64 / 1024.0
    );
    println!("compile      {}", human(loaded.compile_time));

    let times = time_instantiations(&runtime, &loaded)?;
    println!(
        "instantiate  {} median, {} p99, {} first ({} instantiations)",
        human(percentile(&times, 50)),
        human(percentile(&times, 99)),
        human(times[0]),
        times.len()
    );
    println!(
        "limits       memory cap {} MiB, call deadline {} ms",
        config.memory_cap >> 20,
        config.call_deadline.as_millis()
    );

    let mut instance = runtime.instantiate(&loaded, fresh_state(&runtime))?;
    if let Err(reason) = instance.init(None)? {
        bail!("the component refused to start: {reason}");
    }
    let status = instance.status()?;
    println!(
        "status       {}, component version {}",
        NetState::from(status.state).name(),
        status.version
    );
    match instance.health()? {
        Ok(()) => println!("health       ok"),
        Err(reason) => bail!("the component reports itself unhealthy: {reason}"),
    }
    // `handle` with an event the component ignores (a timer it never set): the cost of
    // one call in and out.
    let mut times = Vec::with_capacity(1000);
    for _ in 0..1000 {
        let started = Instant::now();
        instance.handle(&tether_host::runtime::wit::Event::TimerFired(u32::MAX))?;
        times.push(started.elapsed());
    }
    println!(
        "handle       {} median, {} p99 ({} calls)",
        human(percentile(&times, 50)),
        human(percentile(&times, 99)),
        times.len()
    );
    Ok(())
}

fn print_interfaces(runtime: &Runtime, loaded: &LoadedComponent) {
    let imports = loaded.import_names(runtime);
    let (own, wasi): (Vec<_>, Vec<_>) = imports.iter().partition(|n| n.starts_with("tether:"));
    println!("exports      {}", loaded.export_names(runtime).join(", "));
    println!(
        "imports      {}",
        own.iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    if !wasi.is_empty() {
        println!(
            "wasi         {}",
            wasi.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
}

/// A state with an in-memory kv and no identity: enough to instantiate and query.
fn fresh_state(runtime: &Runtime) -> tether_host::capabilities::HostState {
    let signer = Signer::new(None, None).expect("a signer without a file reads nothing");
    runtime.host_state(Kv::in_memory(), signer)
}

fn time_instantiations(
    runtime: &Runtime,
    loaded: &LoadedComponent,
) -> anyhow::Result<Vec<Duration>> {
    let mut times = Vec::with_capacity(INSTANTIATIONS);
    for _ in 0..INSTANTIATIONS {
        let state = fresh_state(runtime);
        let started = Instant::now();
        let instance = runtime.instantiate(loaded, state)?;
        times.push(started.elapsed());
        drop(instance);
    }
    Ok(times)
}

fn percentile(times: &[Duration], pct: usize) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort();
    let idx = (sorted.len() * pct / 100).min(sorted.len() - 1);
    sorted[idx]
}

fn human(d: Duration) -> String {
    let micros = d.as_secs_f64() * 1e6;
    if micros < 1000.0 {
        format!("{micros:.0} µs")
    } else {
        format!("{:.1} ms", micros / 1000.0)
    }
}

#[cfg(feature = "compiler")]
fn precompile(
    path: Option<PathBuf>,
    target: Option<&str>,
    pulley: bool,
    output: &std::path::Path,
    memory_cap_mib: usize,
) -> anyhow::Result<()> {
    let bytes = match &path {
        Some(p) => std::fs::read(p).with_context(|| format!("failed to read {}", p.display()))?,
        None => tether_host::component::builtin()?.to_vec(),
    };
    let config = RuntimeConfig {
        memory_cap: memory_cap_mib << 20,
        ..RuntimeConfig::default()
    };
    let started = Instant::now();
    let triple = target.unwrap_or(tether_host::platform::TARGET);
    let engine = tether_host::platform::engine_for(triple, pulley);
    let wasmtime_target = tether_host::platform::wasmtime_target(triple, engine);
    let compiled =
        Runtime::precompile(config, Some(&wasmtime_target), &bytes).context("failed to compile")?;
    std::fs::write(output, &compiled)
        .with_context(|| format!("failed to write {}", output.display()))?;
    println!(
        "{} bytes for {triple} ({}) written to {} in {}",
        compiled.len(),
        engine.name(),
        output.display(),
        human(started.elapsed())
    );
    Ok(())
}
