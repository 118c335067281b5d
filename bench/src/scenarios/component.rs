//! `component`: the pairing component in the host runtime: compile, instantiate, a call
//! into `handle`, the hand-over of a hot swap (snapshot, instantiate, restore, health),
//! and whole updates of a running device (verify, compile or load from the compile
//! cache, swap).

use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;
use tether_host::capabilities::{DeviceIdentity, HostState, Kv, Signer};
use tether_host::component::{DEFAULT_COMPONENT, NEXT_COMPONENT};
use tether_host::config::UpdateConfig;
use tether_host::daemon::Device;
use tether_host::runtime::wit::Event;
use tether_host::{Runtime, RuntimeConfig, UpdateReport};
use tether_proto::bundle::{Bundle, PAIRING_WORLD};

use crate::Options;
use crate::report::Report;
use crate::rig;
use crate::stats::{Samples, show};

/// Runs the scenario.
pub async fn run(options: &Options) -> anyhow::Result<Report> {
    let (instantiations, calls, swaps, updates) = if options.quick {
        (20, 200, 10, 2)
    } else {
        (2000, 100_000, 1000, 12)
    };
    let mut report = Report::new("component", &["measure", "n", "p50", "p99", "max"]);
    let dir = tempfile::tempdir().context("temp dir")?;

    let runtime = Runtime::new(RuntimeConfig::default())?;
    let started = Instant::now();
    let loaded = runtime.load(DEFAULT_COMPONENT)?;
    report.note(format!(
        "compile of the built-in component ({} KiB) with Cranelift: {}",
        DEFAULT_COMPONENT.len() / 1024,
        show(started.elapsed())
    ));
    let state = || -> anyhow::Result<HostState> {
        let kv = Kv::open(&dir.path().join("kv"))?;
        let signer = Signer::new(Some(identity()), Some(dir.path().join("binding.json")))?;
        Ok(runtime.host_state(kv, signer))
    };

    let mut instantiate = Samples::with_capacity(instantiations);
    let mut with_init = Samples::with_capacity(instantiations);
    for _ in 0..instantiations {
        let host = state()?;
        let t = Instant::now();
        let mut instance = runtime.instantiate(&loaded, host)?;
        instantiate.push(t.elapsed());
        instance
            .init(None)?
            .map_err(|e| anyhow::anyhow!("init refused: {e}"))?;
        with_init.push(t.elapsed());
    }
    add(
        &mut report,
        "instantiate (pre-instantiated, pooling allocator)",
        &instantiate,
    );
    add(&mut report, "instantiate + init", &with_init);

    let mut instance = runtime.instantiate(&loaded, state()?)?;
    instance
        .init(None)?
        .map_err(|e| anyhow::anyhow!("init refused: {e}"))?;
    // A pairing in progress: the component holds credentials and waits for the radio.
    instance
        .user_cfg(rig::SSID, rig::WIFI_PASSWORD, "AYabcdefghijkl")?
        .map_err(|e| anyhow::anyhow!("user-cfg refused: {e}"))?;
    instance.take_commands();
    let mut handle = Samples::with_capacity(calls);
    let mut status = Samples::with_capacity(calls);
    let stray = Event::TimerFired(u32::MAX);
    for _ in 0..calls {
        let t = Instant::now();
        instance.handle(&stray)?;
        handle.push(t.elapsed());
        let t = Instant::now();
        instance.status()?;
        status.push(t.elapsed());
    }
    add(&mut report, "handle(timer-fired) call", &handle);
    add(&mut report, "status call", &status);

    let mut pause = Samples::with_capacity(swaps);
    for _ in 0..swaps {
        let host = state()?;
        pause.push(tether_host::update::hand_over(
            &runtime,
            &mut instance,
            &loaded,
            host,
        )?);
    }
    add(
        &mut report,
        "swap hand-over: snapshot, instantiate, init, health",
        &pause,
    );
    drop(instance);

    let (cold, cached) = device_updates(dir.path(), updates).await?;
    add(
        &mut report,
        "update pause on a device (events queued)",
        &Samples::from_iter(cached.iter().map(|r| Duration::from_micros(r.pause_us))),
    );
    let totals = Samples::from_iter(cached.iter().map(|r| Duration::from_millis(r.total_ms)));
    add(
        &mut report,
        "update, compile cache hit: verify, load, swap",
        &totals,
    );
    report.note(format!(
        "update of new bytes, cold compile cache: prepare {} ms, pause {} µs, total {} ms",
        cold.prepare_ms, cold.pause_us, cold.total_ms
    ));

    report.target(
        "instantiate p50",
        "<= 50 µs",
        show(instantiate.p50()),
        instantiate.p50() <= Duration::from_micros(50),
    );
    report.target(
        "swap pause p99",
        "<= 1 ms",
        show(pause.p99()),
        pause.p99() <= Duration::from_millis(1),
    );
    report.target(
        "full update (cache hit) p50",
        "<= 20 ms",
        show(totals.p50()),
        totals.p50() <= Duration::from_millis(20),
    );
    report.data("cold_update", json!(cold));
    report.data("cached_updates", json!(cached));
    Ok(report)
}

fn add(report: &mut Report, what: &str, s: &Samples) {
    report.row(vec![
        what.into(),
        s.len().to_string(),
        show(s.p50()),
        show(s.p99()),
        show(s.max()),
    ]);
    report.data(what, s.json());
}

fn identity() -> DeviceIdentity {
    DeviceIdentity {
        pairing_verifier: None,
        plaintext_channel: false,
        uuid: "benchuuid00000000000".into(),
        product_key: crate::cloud::PRODUCT_KEY.into(),
        authkey: tether_proto::Secret::new("0123456789abcdef0123456789abcdef"),
        iot_dns_url: "http://127.0.0.1:9".into(),
    }
}

/// Updates a running device `n` times through its real update path: first with bytes its
/// compile cache has not seen, then alternating between two components it has. Each
/// update waits for the probation of the one before to end (the host ticks once a second).
async fn device_updates(
    dir: &std::path::Path,
    n: usize,
) -> anyhow::Result<(UpdateReport, Vec<UpdateReport>)> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).context("no randomness")?;
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    let (code, verifier) = tether_proto::setup_code::issue().context("setup code")?;
    let license = tether_service::licenses::License {
        uuid: identity().uuid,
        authkey: identity().authkey,
        product_key: crate::cloud::PRODUCT_KEY.into(),
        setup_code: tether_proto::Secret::new(code.to_string()),
        qr: tether_proto::Secret::new(String::new()),
        pairing_verifier: verifier.encode(),
    };
    let mut config = rig::device_config(&dir.join("device"), "http://127.0.0.1:9", &license);
    config.update = UpdateConfig {
        trusted_keys: vec![hex::encode(key.verifying_key().as_bytes())],
        probation_secs: 0,
        watch_dir: None,
    };
    let device = Device::start(config, RuntimeConfig::default()).await?;
    let mut reports = Vec::with_capacity(n + 1);
    for i in 0..=n {
        let component = if i % 2 == 0 {
            NEXT_COMPONENT
        } else {
            DEFAULT_COMPONENT
        };
        let bundle = Bundle::sign(
            component,
            &format!("0.3.{i}"),
            i as u64 + 1,
            PAIRING_WORLD,
            "0.1.0",
            &key,
        )?;
        let report = device
            .update(bundle)
            .await
            .map_err(|e| anyhow::anyhow!("update {i} refused: {e}"))?;
        reports.push(report);
        let deadline = Instant::now() + Duration::from_secs(5);
        while device.module_status().await.is_some_and(|s| s.on_probation) {
            anyhow::ensure!(Instant::now() < deadline, "update {i} stayed on probation");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    tokio::task::spawn_blocking(move || device.stop()).await?;
    let cold = reports.remove(0);
    Ok((cold, reports))
}
