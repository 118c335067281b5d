//! `activation`: the service activating new devices (signed requests, a durable SQLite
//! file) against a bare axum "hello", driven by the same load generator in the same run.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::Options;
use crate::cloud::{self, ACTIVATE, Seeded};
use crate::load::{self, MakeRequest, Outcome};
use crate::procs::{Kind, Server};
use crate::report::Report;
use crate::stats::{ms, show};

const LEVELS: [usize; 2] = [16, 128];

/// Runs the scenario.
pub async fn run(options: &Options) -> anyhow::Result<Report> {
    let (warmup, duration, per_level) = if options.quick {
        (Duration::from_millis(100), Duration::from_millis(300), 600)
    } else {
        (Duration::from_secs(1), Duration::from_secs(5), 60_000)
    };
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

    let warm = per_level / 10;
    let total = warm + per_level * LEVELS.len();
    eprintln!("activation: seeding {total} licenses");
    let seeded = Seeded::new(total).await?;
    eprintln!("activation: signing {total} requests");
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
    eprintln!("activation: the service");
    load::run(16, warmup, slice(0, warm)).await?;
    let mut ratios = Vec::new();
    let mut p99_at_128 = Duration::ZERO;
    for (n, concurrency) in LEVELS.into_iter().enumerate() {
        let outcome = load::run(
            concurrency,
            duration,
            slice(warm + n * per_level, per_level),
        )
        .await?;
        row(&mut report, "tether activation", concurrency, &outcome)?;
        ratios.push(outcome.rate() / hello_rates[n].max(1e-9));
        if concurrency == 128 {
            p99_at_128 = outcome.latencies.p99();
        }
    }
    let memory = service.memory();
    drop(service);

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
