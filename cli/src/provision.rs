//! `tether provision`: proves the device's setup code over its data channel, hands it the
//! router's credentials and a pairing token in a sealed frame, then follows it until it
//! is online or has failed, showing each phase. `tether wifi` moves a paired device to
//! another router the same way, without a token. The device's own status (over the channel) shows every phase and Wi-Fi
//! failures; the token's long-poll confirms the activation in the cloud.

use std::time::{Duration, Instant};

use tether_proto::activation::PhaseTimings;
use tether_proto::channel::{ChannelReply, ChannelRequest, FEATURE_TRACE};
use tether_proto::status::NetState;
use tether_proto::token_status::TokenState;
use tether_proto::{ErrorCode, PairingToken, PublicId, ReplyCode, Secret};

use crate::channel::{DeviceChannel, Security};
use crate::client::Api;
use crate::failure::Failure;

/// How often the device's status is asked for.
const POLL: Duration = Duration::from_millis(150);
/// How long an activated device's report with its timings is waited for.
const REPORT_GRACE: Duration = Duration::from_secs(5);

/// What a successful provisioning reports.
#[derive(Debug)]
pub struct Provisioned {
    /// The device id.
    pub dev_id: String,
    /// The device's per-phase timings: from its status, or from the report it sent the
    /// cloud when it was followed there (none if that report did not come in time).
    pub timings: Option<PhaseTimings>,
    /// The public part of the token used.
    pub token: String,
}

/// Provisions the device at `device` (HOST:PORT) with the router's credentials and
/// `token` (all 14 characters), reporting phases through `progress`.
pub async fn provision(
    api: &Api,
    device: &str,
    security: &Security,
    network: (&str, &str),
    token: &str,
    deadline: Duration,
    mut progress: impl FnMut(&str),
) -> Result<Provisioned, Failure> {
    let (ssid, password) = network;
    let started = Instant::now();
    let public = PairingToken::parse(token)
        .map_err(|e| Failure::Invalid(format!("the pairing token is malformed: {e}")))?
        .public();
    // Failures reported before this attempt are not about it. A token this account
    // cannot see would be refused by the cloud at activation: say so before the device
    // leaves its soft AP for nothing.
    let earlier = match api.token_status(&public, None).await {
        Ok(status) => status.failures.len(),
        Err(Failure::NotFound(_)) => {
            return Err(Failure::Pairing {
                code: ErrorCode::TokenInvalid,
                message: "the cloud knows no such pairing token for this account".into(),
            });
        }
        Err(e) => return Err(e),
    };
    let mut channel = DeviceChannel::open(device, security).await?;
    if matches!(security, Security::SetupCode(_)) {
        progress("setup code proved; the channel is encrypted");
    }
    // The trace goes to the device only if its component reads it (older ones refuse
    // fields they do not know). Protocol 1 in clear has no such question.
    let traces = api.trace().is_some()
        && matches!(security, Security::SetupCode(_))
        && match channel.ask(&ChannelRequest::Info {}).await? {
            ChannelReply::Info(info) => info.features.iter().any(|f| f == FEATURE_TRACE),
            _ => false,
        };
    let config = ChannelRequest::Config {
        ssid: ssid.to_owned(),
        passwd: Secret::new(password),
        token: Secret::new(token),
        traceparent: api
            .trace()
            .filter(|_| traces)
            .and_then(|t| t.child().ok())
            .map(|span| span.to_string()),
    };
    match channel.ask(&config).await? {
        ChannelReply::Ack {
            code: ReplyCode::Ok,
        } => progress("credentials accepted by the device"),
        ChannelReply::Ack { code } => {
            return Err(refusal(code, "the device refused the credentials"));
        }
        ChannelReply::Error { code, .. } => {
            return Err(refusal(
                ReplyCode::Error(code),
                "the device refused the credentials",
            ));
        }
        other => return Err(unexpected(&other)),
    }
    let mut last_state = None;
    loop {
        if started.elapsed() > deadline {
            return Err(Failure::Timeout(format!(
                "the device did not come online within {} s",
                deadline.as_secs()
            )));
        }
        let status = match channel.ask(&ChannelRequest::Status {}).await {
            Ok(ChannelReply::Status(status)) => status,
            Ok(other) => return Err(unexpected(&other)),
            // The device may leave its soft AP once it joins the router: follow the token.
            Err(Failure::Unreachable(_)) => {
                let left = deadline.saturating_sub(started.elapsed());
                return follow_token(api, (&public, earlier), left, &mut progress).await;
            }
            Err(e) => return Err(e),
        };
        let state = status.state;
        if last_state != Some(state) {
            progress(state.name());
            last_state = Some(state);
        }
        // A device that was online before keeps its previous network when the new
        // settings fail, and says why.
        if state == NetState::Online
            && let Some(code) = status.last_error
        {
            return Err(refusal(
                ReplyCode::Error(code),
                "the device could not use these settings and went back to its previous network",
            ));
        }
        if state == NetState::Online
            && let Some(dev_id) = status.dev_id
        {
            confirm(api, &public, &dev_id).await?;
            return Ok(Provisioned {
                dev_id,
                timings: Some(status.timings),
                token: public.to_string(),
            });
        }
        if state == NetState::AwaitingCredentials
            && let Some(code) = status.last_error
        {
            return Err(refusal(ReplyCode::Error(code), "pairing failed"));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Moves the paired device at `device` to another router (its pairing window must be
/// open), and follows it until it is online there, or back on its old network.
pub async fn change_wifi(
    device: &str,
    security: &Security,
    network: (&str, &str),
    deadline: Duration,
    mut progress: impl FnMut(&str),
) -> Result<String, Failure> {
    let (ssid, password) = network;
    let started = Instant::now();
    let mut channel = DeviceChannel::open(device, security).await?;
    let request = ChannelRequest::Wifi {
        ssid: ssid.to_owned(),
        passwd: Secret::new(password),
    };
    match channel.ask(&request).await? {
        ChannelReply::Ack {
            code: ReplyCode::Ok,
        } => progress("the device is trying the new network"),
        ChannelReply::Ack { code } => return Err(refusal(code, "the device refused the network")),
        other => return Err(unexpected(&other)),
    }
    let mut last_state = None;
    while started.elapsed() < deadline {
        tokio::time::sleep(POLL).await;
        let status = match channel.ask(&ChannelRequest::Status {}).await? {
            ChannelReply::Status(status) => status,
            other => return Err(unexpected(&other)),
        };
        if last_state != Some(status.state) {
            progress(status.state.name());
            last_state = Some(status.state);
        }
        if status.state == NetState::Online {
            return match (status.last_error, status.ssid) {
                (Some(code), _) => Err(refusal(
                    ReplyCode::Error(code),
                    "the device could not use the new network and went back to the old one",
                )),
                (None, Some(now)) if now == ssid => Ok(now),
                (None, other) => Err(Failure::Other(format!(
                    "the device is online on {other:?}, not on {ssid:?}"
                ))),
            };
        }
    }
    Err(Failure::Timeout(format!(
        "the device was not online again within {} s",
        deadline.as_secs()
    )))
}

/// The cloud agrees: the token lists the device.
async fn confirm(api: &Api, public: &PublicId, dev_id: &str) -> Result<(), Failure> {
    let status = api.token_status(public, None).await?;
    if status.devices.iter().any(|d| d.dev_id == dev_id) {
        Ok(())
    } else {
        Err(Failure::Other(format!(
            "the device reports {dev_id} but the token does not list it"
        )))
    }
}

/// Follows the token in the cloud (its long-poll) once the device's channel is gone:
/// the device activating, or a failure it reports beyond the `earlier` ones.
async fn follow_token(
    api: &Api,
    (public, earlier): (&PublicId, usize),
    left: Duration,
    progress: &mut impl FnMut(&str),
) -> Result<Provisioned, Failure> {
    progress("following the pairing token");
    let until = Instant::now() + left;
    let wait_for = |until: Instant| {
        until
            .saturating_duration_since(Instant::now())
            .as_secs()
            .clamp(1, 30)
    };
    while Instant::now() < until {
        let status = api.token_status(public, Some(wait_for(until))).await?;
        if let Some(device) = status.devices.last() {
            let mut timings = device.timings;
            if timings.is_none() {
                // Activated; its report with the timings follows once it is online.
                progress("activated; waiting for the device's report");
                let soon = until.min(Instant::now() + REPORT_GRACE);
                let later = api.token_status(public, Some(wait_for(soon))).await?;
                timings = later
                    .devices
                    .iter()
                    .find(|d| d.dev_id == device.dev_id)
                    .and_then(|d| d.timings);
            }
            return Ok(Provisioned {
                dev_id: device.dev_id.clone(),
                timings,
                token: public.to_string(),
            });
        }
        if let Some(failure) = status.failures.get(earlier..).and_then(<[_]>::last) {
            return Err(refusal(
                ReplyCode::Error(failure.code),
                "the device reported a failure",
            ));
        }
        match status.state {
            TokenState::Expired => {
                return Err(Failure::Pairing {
                    code: ErrorCode::TokenExpired,
                    message: "the pairing token expired".into(),
                });
            }
            TokenState::Revoked => {
                return Err(Failure::Pairing {
                    code: ErrorCode::TokenInvalid,
                    message: "the pairing token was revoked".into(),
                });
            }
            TokenState::Pending | TokenState::Complete => {}
        }
    }
    Err(Failure::Timeout(
        "no device activated with the token in time".into(),
    ))
}

fn refusal(code: ReplyCode, context: &str) -> Failure {
    match code {
        ReplyCode::Error(code) => Failure::Pairing {
            code,
            message: format!("{context}: {}", code.description()),
        },
        other => Failure::Other(format!("{context}: {other}")),
    }
}

fn unexpected(reply: &ChannelReply) -> Failure {
    Failure::Other(format!("unexpected answer from the device: {reply:?}"))
}
