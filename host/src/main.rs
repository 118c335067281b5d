//! `tether-host`: the device runtime's command line.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use tether_host::capabilities::{Kv, Signer};
use tether_host::component::{DEFAULT_COMPONENT, DEFAULT_COMPONENT_VERSION};
use tether_host::runtime::WORLD;
use tether_host::{LoadedComponent, Runtime, RuntimeConfig};

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
    /// Load a pairing component (the built-in one unless PATH is given), check it against
    /// the `tether:pairing/pairing` world, instantiate it and print its world, size,
    /// compile and instantiate times. Exits 1 if any step fails.
    CheckComponent {
        /// A component file (`.wasm`) to check instead of the built-in one.
        path: Option<PathBuf>,
        /// Linear memory cap per instance, in MiB.
        #[arg(long, default_value_t = 16)]
        memory_cap_mib: usize,
        /// Deadline of each call into the component, in milliseconds.
        #[arg(long, default_value_t = 100)]
        deadline_ms: u64,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
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
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
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
            DEFAULT_COMPONENT.to_vec(),
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
        status.state.name(),
        status.version
    );
    match instance.health()? {
        Ok(()) => println!("health       ok"),
        Err(reason) => bail!("the component reports itself unhealthy: {reason}"),
    }
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
