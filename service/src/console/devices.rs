//! Devices in the console: the user's devices with presence, last report and component
//! version (live), a device's page (live state, pairing history with phase timings from
//! the user's own tokens, a data-point form) and unbinding. Commands and unbinding go
//! through the API's handlers, with the API's ownership checks.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use tether_proto::activation::PhaseTimings;
use tether_proto::api::{CommandRequest, DeviceView};

use super::page::{
    self, ConsoleError, PagePath, PageQuery, csrf, form_error, millis, notice, time,
};
use super::session::{ConsoleUser, CsrfForm};
use crate::app::AppState;
use crate::error::ApiError;
use crate::json::{ApiJson, ApiPath};

/// Seconds a command from the console waits for the device's acknowledgement.
const COMMAND_WAIT_SECS: u64 = 10;

/// A page's `?notice=` key.
#[derive(Debug, Deserialize)]
pub struct Notice {
    pub(crate) notice: Option<String>,
}

/// `GET /devices`.
pub async fn list(
    State(state): State<AppState>,
    user: ConsoleUser,
    PageQuery(query): PageQuery<Notice>,
) -> Result<Markup, ConsoleError> {
    let devices = crate::devices::store::of_owner(&state.db, user.user.id)
        .await
        .map_err(ApiError::from)?;
    let body = html! {
        h1 { "Devices" }
        (notice(query.notice.as_deref()))
        section {
            div #devices-live data-live="/devices/live" aria-live="polite" { (list_fragment(&devices)) }
        }
        p.hint { "To add a device, create a " a href="/tokens" { "pairing token" } " and hand it to the device with the phone app or " code { "tether provision" } "." }
    };
    Ok(page::page("Devices", Some(&user), body))
}

fn presence(online: bool) -> Markup {
    let word = if online { "online" } else { "offline" };
    html! { span class={"badge " (word)} data-presence=(word) { (word) } }
}

fn report(value: Option<&serde_json::Value>) -> Markup {
    html! {
        @match value { Some(v) => code data-report { (v.to_string()) }, None => span.muted { "none yet" } }
    }
}

fn list_fragment(devices: &[DeviceView]) -> Markup {
    html! {
        @if devices.is_empty() {
            p.muted { "No devices yet. This list updates by itself when one pairs." }
        } @else {
            div.table { table {
                thead { tr { th { "Device" } th { "Presence" } th { "Last report" } th.hide-small { "Component" } th.hide-small { "Last seen" } } }
                tbody {
                    @for d in devices {
                        tr data-dev-id=(d.dev_id) {
                            td { a.mono href={"/devices/" (d.dev_id)} { (d.dev_id) } }
                            td { (presence(d.online)) }
                            td { (report(d.last_report.as_ref())) }
                            td.hide-small { (d.module_version) }
                            td.hide-small { @match d.last_seen { Some(at) => (time(crate::from_db_time(at))), None => "—" } }
                        }
                    }
                }
            } }
        }
    }
}

/// `GET /devices/live`.
pub async fn list_live(
    State(state): State<AppState>,
    user: ConsoleUser,
) -> Result<Response, ConsoleError> {
    let owner = user.user.id;
    let stream = super::live::stream(state, &user, move |state| async move {
        let devices = crate::devices::store::of_owner(&state.db, owner).await?;
        Ok(list_fragment(&devices))
    })?;
    Ok(stream.into_response())
}

/// The device's view with its rollout, through the API's handler (404 when not the
/// user's).
async fn device(
    state: &AppState,
    user: &ConsoleUser,
    dev_id: &str,
) -> Result<DeviceView, ApiError> {
    let axum::Json(device) =
        crate::devices::get_device(State(state.clone()), user.user, ApiPath(dev_id.to_owned()))
            .await?;
    Ok(device)
}

/// `GET /devices/{dev_id}`.
pub async fn show(
    State(state): State<AppState>,
    user: ConsoleUser,
    PagePath(dev_id): PagePath<String>,
    PageQuery(query): PageQuery<Notice>,
) -> Result<Markup, ConsoleError> {
    device_page(
        &state,
        &user,
        &dev_id,
        query.notice.as_deref(),
        None,
        "{\"1\": true}",
    )
    .await
}

async fn device_page(
    state: &AppState,
    user: &ConsoleUser,
    dev_id: &str,
    notice_key: Option<&str>,
    error: Option<&ApiError>,
    data: &str,
) -> Result<Markup, ConsoleError> {
    let device = device(state, user, dev_id).await?;
    let history = history(state, user, &device).await?;
    let body = html! {
        h1 { "Device " span.mono { (device.dev_id) } }
        (notice(notice_key))
        div.split {
            section aria-labelledby="now" {
                h2 #now { "Now" }
                div #device-live data-live={"/devices/" (device.dev_id) "/live"} aria-live="polite" { (device_fragment(&device)) }
            }
            section aria-labelledby="send" {
                h2 #send { "Send data points" }
                (form_error(error))
                form method="post" action={"/devices/" (device.dev_id) "/command"} {
                    (csrf(user))
                    label for="data" { "Data points (JSON object, id → value)" }
                    textarea #data name="data" rows="3" required spellcheck="false" { (data) }
                    button type="submit" { "Send" }
                }
                p.hint { "The page waits up to " (COMMAND_WAIT_SECS) " s for the device to confirm; its report then appears under Now." }
            }
        }
        section aria-labelledby="identity" {
            h2 #identity { "Identity" }
            dl {
                dt { "Licence" } dd.mono { (device.uuid) }
                dt { "Product" } dd.mono { (device.product_key) }
                dt { "Firmware" } dd { (device.sw_ver) }
                dt { "Platform" } dd { (device.platform.as_deref().unwrap_or("not reported")) }
                dt { "Activated" } dd { (time(crate::from_db_time(device.activated_at))) }
            }
        }
        section aria-labelledby="history" {
            h2 #history { "Pairing history" }
            (history)
        }
        section aria-labelledby="unbind" {
            h2 #unbind { "Unbind" }
            form method="post" action={"/devices/" (device.dev_id) "/unbind"} data-confirm="Unbind this device? Its credentials stop working at once." {
                (csrf(user))
                label { input name="reset" type="checkbox" value="true"; " Also reset it to factory settings" }
                button.danger type="submit" { "Unbind device" }
            }
        }
    };
    Ok(page::page(
        &format!("Device {}", device.dev_id),
        Some(user),
        body,
    ))
}

fn device_fragment(d: &DeviceView) -> Markup {
    html! {
        dl {
            dt { "Presence" } dd { (presence(d.online)) }
            dt { "Last seen" } dd { @match d.last_seen { Some(at) => (time(crate::from_db_time(at))), None => "—" } }
            dt { "Last report" } dd #last-report { (report(d.last_report.as_ref())) }
            dt { "Component" } dd { (d.module_version) }
            @if let Some(r) = &d.rollout {
                dt { "Rollout" } dd { (r.version) " · " span class={"badge " (r.state)} { (r.state) }
                    @if let Some(reason) = &r.reason { " " span.muted { (reason) } } }
            }
        }
    }
}

/// The activations and pairing reports of this device's licence, on the user's own
/// tokens only (another account's attempts with the same device are not shown).
async fn history(state: &AppState, user: &ConsoleUser, d: &DeviceView) -> Result<Markup, ApiError> {
    type Row = (
        String,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        String,
        i64,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT r.token_id, r.outcome, r.code, r.phase, r.message, r.timings, r.created_at
         FROM pairing_reports r JOIN pairing_tokens t ON t.public_id = r.token_id
         WHERE r.uuid = $1 AND t.owner_id = $2 ORDER BY r.id DESC LIMIT 20",
    )
    .bind(&d.uuid)
    .bind(user.user.id)
    .fetch_all(&state.db)
    .await?;
    Ok(html! {
        @if rows.is_empty() {
            p.muted { "Paired " (time(crate::from_db_time(d.activated_at))) "; the device sent no pairing report." }
        } @else {
            div.table { table {
                thead { tr { th { "When" } th { "Token" } th { "Outcome" } th { "Wi-Fi" } th { "DNS" } th { "Activation" } th { "MQTT" } } }
                tbody {
                    @for (token, outcome, code, phase, message, timings, at) in &rows {
                        @let t: PhaseTimings = serde_json::from_str(timings).unwrap_or_default();
                        tr {
                            td { (time(crate::from_db_time(*at))) }
                            td { a.mono href={"/tokens/" (token)} { (token) "…" } }
                            td { span class={"badge " (outcome)} { (outcome) }
                                @if let Some(code) = code { " " code { (code) } }
                                @if let Some(phase) = phase { " in " (phase) }
                                @if let Some(message) = message { br; span.muted { (message) } } }
                            td { (millis(t.wifi_ms)) } td { (millis(t.dns_ms)) }
                            td { (millis(t.activate_ms)) } td { (millis(t.mqtt_ms)) }
                        }
                    }
                }
            } }
        }
    })
}

/// `GET /devices/{dev_id}/live`.
pub async fn live(
    State(state): State<AppState>,
    user: ConsoleUser,
    PagePath(dev_id): PagePath<String>,
) -> Result<Response, ConsoleError> {
    device(&state, &user, &dev_id).await?;
    let owner = user.clone();
    let stream = super::live::stream(state, &user, move |state| {
        let (owner, dev_id) = (owner.clone(), dev_id.clone());
        async move { Ok(device_fragment(&device(&state, &owner, &dev_id).await?)) }
    })?;
    Ok(stream.into_response())
}

/// The command form.
#[derive(Debug, Deserialize)]
pub struct CommandForm {
    data: String,
}

/// `POST /devices/{dev_id}/command`: the API's command with `?wait`.
pub async fn command(
    State(state): State<AppState>,
    PagePath(dev_id): PagePath<String>,
    CsrfForm(user, form): CsrfForm<CommandForm>,
) -> Result<Response, ConsoleError> {
    let sent = match serde_json::from_str::<serde_json::Value>(&form.data) {
        Ok(serde_json::Value::Object(data)) => {
            let query = crate::devices::CommandQuery {
                wait: Some(COMMAND_WAIT_SECS),
            };
            crate::devices::send_command(
                State(state.clone()),
                user.user,
                ApiPath(dev_id.clone()),
                Ok(Query(query)),
                ApiJson(CommandRequest { data }),
            )
            .await
            .map(|_| ())
        }
        _ => Err(ApiError::BadRequest(
            "the data points are a JSON object, such as {\"1\": true}".into(),
        )),
    };
    match sent {
        Ok(()) => Ok(
            Redirect::to(&format!("/devices/{dev_id}?notice=command-delivered")).into_response(),
        ),
        Err(e @ ApiError::NotFound(_)) => Err(e.into()),
        Err(e) => {
            let status = e.status();
            let page = device_page(&state, &user, &dev_id, None, Some(&e), &form.data).await?;
            Ok((status, page).into_response())
        }
    }
}

/// The unbind form.
#[derive(Debug, Deserialize)]
pub struct UnbindForm {
    #[serde(default)]
    reset: Option<String>,
}

/// `POST /devices/{dev_id}/unbind`: the API's unbind.
pub async fn unbind(
    State(state): State<AppState>,
    PagePath(dev_id): PagePath<String>,
    CsrfForm(user, form): CsrfForm<UnbindForm>,
) -> Result<Redirect, ConsoleError> {
    let query = crate::devices::UnbindQuery {
        reset: form.reset.as_deref() == Some("true"),
    };
    crate::devices::unbind_device(State(state), user.user, ApiPath(dev_id), Ok(Query(query)))
        .await?;
    Ok(Redirect::to("/devices?notice=unbound"))
}
