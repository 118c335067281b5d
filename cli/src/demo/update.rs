//! `tether demo --update`: a live update of the pairing component through the cloud. The
//! demonstration component (0.2.0, which adds its version to every data-channel reply) is
//! signed with the demo's key, uploaded by an admin, and rolled out to the device, which
//! gets the protocol 15 notice over MQTT, downloads the bundle, swaps it in while online,
//! and commits it after its probation.

use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use tether_host::component::NEXT_COMPONENT;
use tether_host::daemon::Device;
use tether_host::runtime::WORLD;
use tether_host::update::HOST_VERSION;
use tether_proto::api::{DeviceTargets, DeviceView, RolloutRequest};
use tether_proto::bundle::Bundle;
use tether_proto::channel::{ChannelReply, ChannelRequest};
use tether_proto::module::{UpdateReport, UpdateResult};
use tether_proto::setup_code::SetupCode;

use super::Steps;
use crate::client::Api;
use crate::failure::Failure;
use tether::channel::{DeviceChannel, Security};

/// The version of the demonstration update.
const NEXT_VERSION: &str = "0.2.0";

/// What the demo needs to update its device.
pub(super) struct Target<'a> {
    pub admin: (&'a str, &'a str),
    pub key: &'a SigningKey,
    pub device: &'a Device,
    pub channel: &'a str,
    pub setup_code: &'a SetupCode,
    pub dev_id: &'a str,
    pub user: &'a Api,
}

/// Runs the update and returns its measures.
pub(super) async fn live_update(steps: &Steps, t: &Target<'_>) -> Result<UpdateReport, Failure> {
    let before = info(t).await?;
    steps.say(format_args!(
        "before the update, the channel's info reply: {before}"
    ));
    steps.detail(
        "(the device is paired: its channel answers only after its pairing window is opened locally, as its button would)",
    );

    let bundle = Bundle::sign(NEXT_COMPONENT, NEXT_VERSION, 1, WORLD, HOST_VERSION, t.key)
        .map_err(|e| Failure::Other(format!("cannot sign the update: {e}")))?;
    let api = t.user.logged_out();
    let access = api.login(t.admin.0, t.admin.1).await?;
    let admin = api.with_token(access);
    let module = admin.upload_module(bundle).await?;
    let id = module.id;
    steps.say(format_args!(
        "component {NEXT_VERSION} signed ({} bytes) and uploaded by an admin as module {id}",
        module.size
    ));

    let started = Instant::now();
    let targets = RolloutRequest::Devices(DeviceTargets {
        devices: vec![t.dev_id.to_owned()],
    });
    let rollout = admin.roll_out(id, &targets).await?;
    steps.say(format_args!(
        "rolled out: {} device notified over MQTT (protocol 15)",
        rollout.notified
    ));
    let swap = wait_for_swap(t.device).await?;
    steps.say(format_args!(
        "the device runs {NEXT_VERSION}: swap pause {} µs (events queued meanwhile), verify and compile {} ms, {} ms from the notice",
        swap.pause_us, swap.prepare_ms, swap.total_ms
    ));
    let status = t
        .device
        .status()
        .await
        .ok_or_else(|| Failure::Other("the device gave no status".into()))?;
    steps.detail(format_args!(
        "still {} as {}; rollout to running in {} ms",
        status.state.name(),
        status.dev_id.as_deref().unwrap_or("?"),
        started.elapsed().as_millis()
    ));
    let after = info(t).await?;
    steps.say(format_args!(
        "after the update, the channel's info reply:  {after}"
    ));

    let view = wait_for_commit(t.user, t.dev_id).await?;
    steps.say(format_args!(
        "probation passed: the cloud shows {} running {} (rollout {})",
        t.dev_id,
        view.module_version,
        view.rollout.as_ref().map_or("?", |r| r.state.as_str())
    ));
    Ok(swap)
}

/// The channel's `info` reply, over a session with the setup code in a pairing window
/// opened for the purpose and closed right after.
async fn info(t: &Target<'_>) -> Result<String, Failure> {
    if !t.device.pairing_window(Some(30)).await {
        return Err(Failure::Other(
            "the device did not open its pairing window".into(),
        ));
    }
    let security = Security::SetupCode(t.setup_code.clone());
    let asked = async {
        DeviceChannel::open(t.channel, &security)
            .await?
            .ask(&ChannelRequest::Info {})
            .await
    }
    .await;
    t.device.pairing_window(None).await;
    match asked? {
        ChannelReply::Info(info) => Ok(format!(
            "uuid {}, component {}, protocol {}",
            info.uuid, info.module_version, info.protocol
        )),
        other => Err(Failure::Other(format!(
            "unexpected answer to info: {other:?}"
        ))),
    }
}

async fn wait_for_swap(device: &Device) -> Result<UpdateReport, Failure> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = device.module_status().await;
        if let Some(swap) = status
            .as_ref()
            .filter(|s| s.version == NEXT_VERSION)
            .and_then(|s| s.last_swap.clone())
        {
            return Ok(swap);
        }
        if Instant::now() > deadline {
            let why = status.and_then(|s| s.slots.last_outcome);
            return Err(Failure::Timeout(format!(
                "the device did not take the update within 30 s: {why:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn wait_for_commit(user: &Api, dev_id: &str) -> Result<DeviceView, Failure> {
    let within = Duration::from_secs(30);
    let every = Duration::from_millis(100);
    let applied = UpdateResult::Applied.name();
    super::watch_device(user, dev_id, within, every, |d| {
        d.rollout.as_ref().is_some_and(|r| r.state == applied)
    })
    .await?
    .map_err(|last| {
        Failure::Timeout(format!(
            "the update was not committed within 30 s: {:?}",
            last.rollout
        ))
    })
}
