//! `activation`: the service activating new devices (signed requests, a durable SQLite
//! file) against a bare axum "hello", driven by the same load generator in the same run;
//! then the same service on PostgreSQL (a private durable server), when its binaries are
//! installed.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tether_proto::Secret;

use crate::Options;
use crate::cloud::{self, ACTIVATE, Seeded};
use crate::load::{self, MakeRequest, Outcome};
use crate::procs::{Kind, Server};
use crate::report::Report;
use crate::stats::{ms, show};

const LEVELS: [usize; 2] = [16, 128];

/// Runs the scenario.
pub async fn run(options: &Options) -> anyhow::Result<Report> {
    let (warmup, duration) = if options.quick {
        (Duration::from_millis(100), Duration::from_millis(300))
    } else {
        (Duration::from_secs(1), Duration::from_secs(5))
    };
    let per_level = options.activations.max(10);
    let mut report = Report::new(
        "activation",
        &["server", "concurrency", "req/s", "p50", "p99", "errors"],
    );

    eprintln!("activation: the bare axum hello");
    let hello = Server::start(Kind::Hello, std::env::temp_dir().as_path())?;
    let url = hello.url();
    let make: MakeRequest = Arc::new(move |client, _| Some(client.get(&url)));
    load::run(16, warmup, make.clone()).await?;
    let mut hello_rates = Vec::new();
    for concurrency in LEVELS {
        let outcome = load::run(concurrency, duration, make.clone()).await?;
        row(&mut report, "axum hello", concurrency, &outcome)?;
        hello_rates.push(outcome.rate());
    }
    drop(hello);

    let sqlite = service(
        &mut report,
        "tether activation",
        None,
        per_level,
        warmup,
        duration,
    )
    .await?;
    let ratios: Vec<f64> = sqlite
        .rates
        .iter()
        .zip(&hello_rates)
        .map(|(rate, hello)| rate / hello.max(1e-9))
        .collect();
    let p99_at_128 = sqlite.p99_at_128;
    let memory = sqlite.memory;

    // The same on PostgreSQL, fsync on every commit as SQLite's synchronous = FULL.
    let started = if options.sqlite_only {
        Err(anyhow::anyhow!("--sqlite-only"))
    } else {
        tether_testpg::Server::start_durable()
    };
    let postgres = match started {
        Ok(server) => {
            let url = Secret::new(server.create_database().await?);
            let pg = service(
                &mut report,
                "tether activation (PostgreSQL)",
                Some(url),
                per_level,
                warmup,
                duration,
            )
            .await?;
            drop(server);
            Some(pg)
        }
        Err(e) => {
            report.note(format!("PostgreSQL side left out: {e:#}"));
            None
        }
    };
    if let Some(pg) = &postgres {
        for ((concurrency, pg_rate), sqlite_rate) in LEVELS.iter().zip(&pg.rates).zip(&sqlite.rates)
        {
            report.note(format!(
                "PostgreSQL/SQLite activations at concurrency {concurrency}: {:.2} ({pg_rate:.0}/s against {sqlite_rate:.0}/s)",
                pg_rate / sqlite_rate.max(1e-9)
            ));
        }
        report.note("PostgreSQL 15 (Debian's), fsync and synchronous_commit on, a private server on loopback in a temp dir");
        report.data("postgres_rates", json!(pg.rates));
    }

    for (concurrency, ratio) in LEVELS.iter().zip(&ratios) {
        report.note(format!(
            "activation/hello throughput at concurrency {concurrency}: {ratio:.3}"
        ));
    }
    report.note(
        "SQLite: WAL journal, synchronous = FULL (fsync on every commit), one file in a temp dir",
    );
    report.note(format!(
        "service RSS after the run: {:.1} MiB (peak {:.1} MiB)",
        memory.rss_mib(),
        memory.peak_kib as f64 / 1024.0
    ));
    let ratio = ratios.last().copied().unwrap_or(0.0);
    report.target(
        "activation/hello at 128",
        ">= 0.15",
        format!("{ratio:.3}"),
        ratio >= 0.15,
    );
    report.target(
        "activation p99 at 128",
        "< 10 ms",
        show(p99_at_128),
        p99_at_128 < Duration::from_millis(10),
    );
    report.data("ratios", json!(ratios));
    report.data("hello_rates", json!(hello_rates));
    report.data("synchronous", json!("FULL"));
    report.data("journal_mode", json!("WAL"));
    Ok(report)
}

/// What one service run measured.
struct Measured {
    /// Activations per second at each level.
    rates: Vec<f64>,
    p99_at_128: Duration,
    memory: crate::procs::Memory,
}

/// Seeds licenses and tokens on SQLite (or the PostgreSQL `database`), starts the service
/// and activates new devices at each level, a row each.
async fn service(
    report: &mut Report,
    label: &str,
    database: Option<Secret>,
    per_level: usize,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<Measured> {
    let warm = per_level / 10;
    let total = warm + per_level * LEVELS.len();
    eprintln!("{label}: seeding {total} licenses");
    let seeded = Seeded::new_on(total, database).await?;
    eprintln!("{label}: signing {total} requests");
    let mut requests = Vec::with_capacity(total);
    for (i, license) in seeded.licenses.iter().enumerate() {
        requests.push(cloud::activation(license, seeded.token(i))?);
    }
    let requests = Arc::new(requests);
    let service = seeded.serve()?;
    let activate_url = format!("{}{ACTIVATE}", service.url());
    let slice = |from: usize, count: usize| -> MakeRequest {
        let requests = requests.clone();
        let url = activate_url.clone();
        Arc::new(move |client, i| {
            (i < count).then(|| {
                let (body, header) = &requests[from + i];
                client
                    .post(&url)
                    .header("authorization", header)
                    .header("content-type", "application/json")
                    .body(body.clone())
            })
        })
    };
    eprintln!("{label}: the service");
    load::run(16, warmup, slice(0, warm)).await?;
    let mut rates = Vec::new();
    let mut p99_at_128 = Duration::ZERO;
    for (n, concurrency) in LEVELS.into_iter().enumerate() {
        let outcome = load::run(
            concurrency,
            duration,
            slice(warm + n * per_level, per_level),
        )
        .await?;
        row(report, label, concurrency, &outcome)?;
        rates.push(outcome.rate());
        if concurrency == 128 {
            p99_at_128 = outcome.latencies.p99();
        }
    }
    Ok(Measured {
        rates,
        p99_at_128,
        memory: service.memory(),
    })
}

fn row(report: &mut Report, server: &str, concurrency: usize, o: &Outcome) -> anyhow::Result<()> {
    report.row(vec![
        server.into(),
        concurrency.to_string(),
        format!("{:.0}", o.rate()),
        show(o.latencies.p50()),
        show(o.latencies.p99()),
        o.errors.to_string(),
    ]);
    report.data(
        &format!("{}_{concurrency}", server.replace(' ', "_")),
        json!({"rate": o.rate(), "ok": o.ok, "errors": o.errors, "elapsed_ms": ms(o.elapsed), "latency": o.latencies.json()}),
    );
    anyhow::ensure!(
        o.errors == 0,
        "{server} at concurrency {concurrency}: {} failed requests, the first: {}",
        o.errors,
        o.first_error.as_deref().unwrap_or("-")
    );
    anyhow::ensure!(
        o.ok > 0,
        "{server} at concurrency {concurrency}: no request succeeded"
    );
    Ok(())
}
