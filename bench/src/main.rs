//! `tether-bench`: measures the service, the broker, the component runtime and the whole
//! pairing path against the targets of docs/TARGETS.md, printing a table per scenario and
//! writing it as JSON under `target/bench/`. `--quick` runs each scenario briefly, so CI
//! can check that the harness still works; its figures mean nothing.

mod cloud;
mod load;
mod pool;
mod procs;
mod report;
mod rig;
mod scenarios;
mod serve;
mod stats;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "tether-bench",
    version,
    about = "Benchmarks of Tether against the targets of docs/TARGETS.md"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Scenarios to run (all when none is named).
    #[arg(value_enum)]
    scenarios: Vec<Scenario>,
    /// Run each scenario briefly: checks that it completes, its figures mean nothing.
    #[arg(long)]
    quick: bool,
    /// Where the JSON results go.
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
    /// Devices in the `sessions` scenario.
    #[arg(long)]
    sessions: Option<usize>,
    /// Device counts of the `fleet` scenario, in order.
    #[arg(long, value_delimiter = ',')]
    fleet: Option<Vec<usize>>,
    /// New devices per concurrency level in `activation` (each needs a license, whose
    /// setup code costs an Argon2id hash to issue) [default: 60000]
    #[arg(long)]
    activations: Option<usize>,
    /// Leave PostgreSQL out of `activation` (it runs when its binaries are installed).
    #[arg(long)]
    sqlite_only: bool,
    /// Devices in the `cluster` scenario, spread over its three nodes [default: 30000]
    #[arg(long)]
    cluster_sessions: Option<usize>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// (internal) serve a system under test until stdin closes.
    #[command(hide = true)]
    Serve {
        #[arg(value_enum)]
        what: Served,
        #[arg(long)]
        data: PathBuf,
    },
    /// (internal) hold the MQTT devices given on stdin until it closes.
    #[command(hide = true)]
    Devices,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Served {
    Hello,
    Service,
    ServiceTls,
}

/// A benchmark scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// Service activations against a bare axum "hello".
    Activation,
    /// Device sessions held by the embedded broker.
    Sessions,
    /// Instantiate, call, swap and update the pairing component.
    Component,
    /// The data channel's handshake and sealed frames against plaintext, on the device.
    Channel,
    /// `user-cfg` to MQTT online, repeated.
    Pairing,
    /// Many devices in one process paired at once.
    Fleet,
    /// Host binary size and memory.
    Footprint,
    /// The service's rate limiter against governor's.
    Limits,
    /// TLS against plain: pairing latency, connects, memory per session, host memory.
    Tls,
    /// Three nodes in one broker cluster on PostgreSQL: sessions across them, commands
    /// across nodes, a node killed.
    Cluster,
}

/// Options every scenario sees.
#[derive(Debug, Clone)]
pub struct Options {
    /// Brief runs.
    pub quick: bool,
    /// Devices in `sessions`.
    pub sessions: usize,
    /// Device counts in `fleet`.
    pub fleet: Vec<usize>,
    /// New devices per level in `activation`.
    pub activations: usize,
    /// Whether `activation` leaves PostgreSQL out.
    pub sqlite_only: bool,
    /// Devices in `cluster`.
    pub cluster_sessions: usize,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Some(Command::Serve { what, data }) => runtime.block_on(async {
            match what {
                Served::Hello => serve::hello().await,
                Served::Service => serve::service(&data, false).await,
                Served::ServiceTls => serve::service(&data, true).await,
            }
        }),
        Some(Command::Devices) => runtime.block_on(pool::serve()),
        None => {
            // The devices of the scenarios log only when asked to, on stderr.
            if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_default_env() {
                tracing_subscriber::fmt()
                    .with_env_filter(filter)
                    .with_writer(std::io::stderr)
                    .init();
            }
            runtime.block_on(bench(cli))
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

async fn bench(cli: Cli) -> anyhow::Result<()> {
    let scenarios = if cli.scenarios.is_empty() {
        Scenario::value_variants().to_vec()
    } else {
        cli.scenarios.clone()
    };
    let options = Options {
        quick: cli.quick,
        sessions: cli.sessions.unwrap_or(if cli.quick { 50 } else { 10_000 }),
        activations: cli
            .activations
            .unwrap_or(if cli.quick { 600 } else { 60_000 }),
        sqlite_only: cli.sqlite_only,
        cluster_sessions: cli
            .cluster_sessions
            .unwrap_or(if cli.quick { 30 } else { 30_000 }),
        fleet: cli.fleet.clone().unwrap_or_else(|| {
            if cli.quick {
                vec![8]
            } else {
                vec![1000, 10_000]
            }
        }),
    };
    let run = report::run_info(cli.quick);
    println!(
        "tether-bench{}: {} cores, {} GiB, {} build",
        if cli.quick {
            " --quick (figures mean nothing)"
        } else {
            ""
        },
        run["cores"],
        run["memory_gib"],
        run["profile"]
    );
    let mut failed = Vec::new();
    for scenario in scenarios {
        let name = format!("{scenario:?}").to_lowercase();
        eprintln!("\n{name}: starting");
        match scenarios::run(scenario, &options).await {
            Ok(report) => {
                report.print();
                report.write(&cli.out, &run)?;
            }
            Err(e) => {
                eprintln!("{name}: FAILED: {e:#}");
                failed.push(name);
            }
        }
    }
    println!("\nresults in {}", cli.out.display());
    anyhow::ensure!(failed.is_empty(), "scenarios failed: {}", failed.join(", "));
    Ok(())
}
