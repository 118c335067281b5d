//! Pairing tokens in the console: create one (its whole text and QR code are shown on
//! that answer only), list the user's recent ones, follow one live (devices arriving,
//! failures with their phase and timings), revoke it. Each action goes through the API's
//! own handler, so the checks are the API's.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use tether_proto::token_status::{CreateTokenRequest, CreateTokenResponse, TokenStatus};

use super::page::{self, ConsoleError, PagePath, csrf, form_error, millis, time};
use super::session::{ConsoleUser, CsrfForm};
use crate::app::AppState;
use crate::error::ApiError;
use crate::json::{ApiJson, ApiPath};
use crate::pairing_tokens::{DEFAULT_TTL_SECS, MAX_DEVICES};

/// Tokens the list shows.
const LISTED: i64 = 50;

/// What a phone app scans to take a token: `tether:token?v=1&region=…&token=…`.
pub fn qr_payload(region: &str, token: &str) -> String {
    format!("tether:token?v=1&region={region}&token={token}")
}

/// `GET /tokens`.
pub async fn list(
    State(state): State<AppState>,
    user: ConsoleUser,
) -> Result<Markup, ConsoleError> {
    list_page(&state, &user, None, &NewToken::default()).await
}

/// The create form's fields.
#[derive(Debug, Deserialize)]
pub struct NewToken {
    ttl_minutes: String,
    max_devices: String,
}

impl Default for NewToken {
    fn default() -> Self {
        Self {
            ttl_minutes: (DEFAULT_TTL_SECS / 60).to_string(),
            max_devices: "1".into(),
        }
    }
}

async fn list_page(
    state: &AppState,
    user: &ConsoleUser,
    error: Option<&ApiError>,
    form: &NewToken,
) -> Result<Markup, ConsoleError> {
    let rows = crate::pairing_tokens::newest_of(&state.db, user.user.id, LISTED)
        .await
        .map_err(ApiError::from)?;
    let now = crate::unix_now();
    let body = html! {
        h1 { "Pairing tokens" }
        section aria-labelledby="new-token" {
            h2 #new-token { "New token" }
            (form_error(error))
            form method="post" action="/tokens" {
                (csrf(user))
                div.row {
                    div {
                        label for="ttl_minutes" { "Valid for (minutes)" }
                        input #ttl_minutes name="ttl_minutes" type="number" min="1" max="1440" required value=(form.ttl_minutes);
                    }
                    div {
                        label for="max_devices" { "Devices it may pair" }
                        input #max_devices name="max_devices" type="number" min="1" max=(MAX_DEVICES) required value=(form.max_devices);
                    }
                    button type="submit" { "Create token" }
                }
            }
            p.hint { "The whole token is shown once, on the next page, as text and as a QR code for a phone app." }
        }
        section aria-labelledby="recent" {
            h2 #recent { "Recent tokens" }
            @if rows.is_empty() {
                p.muted { "No tokens yet." }
            } @else {
                div.table { table {
                    thead { tr { th { "Token" } th { "State" } th { "Devices" } th.hide-small { "Expires" } } }
                    tbody {
                        @for row in &rows {
                            @let state = row.state(now).name();
                            tr {
                                td { a.mono href={"/tokens/" (row.public_id)} { (row.public_id) "…" } }
                                td { span class={"badge " (state)} { (state) } }
                                td { (row.used) " of " (row.max_devices) }
                                td.hide-small { (time(crate::from_db_time(row.expires_at))) }
                            }
                        }
                    }
                } }
            }
        }
    };
    Ok(page::page("Pairing tokens", Some(user), body))
}

/// `POST /tokens`: the API's token creation; the answer shows the token once.
pub async fn create(
    State(state): State<AppState>,
    CsrfForm(user, form): CsrfForm<NewToken>,
) -> Result<Response, ConsoleError> {
    let request = match parse_new(&form) {
        Ok(request) => request,
        Err(e) => return refused(&state, &user, &form, e).await,
    };
    let created =
        crate::pairing_tokens::create_token(State(state.clone()), user.user, ApiJson(request))
            .await;
    let (_, axum::Json(created)) = match created {
        Ok(created) => created,
        Err(e @ (ApiError::BadRequest(_) | ApiError::RateLimited(_))) => {
            return refused(&state, &user, &form, e).await;
        }
        Err(e) => return Err(e.into()),
    };
    let whole = created.token.expose().to_owned();
    let public_id = tether_proto::PairingToken::parse(&whole)
        .map(|t| t.public_id().to_owned())
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("a new token does not parse: {e}")))?;
    let body = created_page(&state, &user, &created, &public_id).await?;
    // The page holds the whole token: no cache may keep it.
    Ok((
        StatusCode::CREATED,
        [(header::CACHE_CONTROL, "no-store")],
        page::page("New pairing token", Some(&user), body),
    )
        .into_response())
}

async fn refused(
    state: &AppState,
    user: &ConsoleUser,
    form: &NewToken,
    e: ApiError,
) -> Result<Response, ConsoleError> {
    let page = list_page(state, user, Some(&e), form).await?;
    Ok((e.status(), page).into_response())
}

fn parse_new(form: &NewToken) -> Result<CreateTokenRequest, ApiError> {
    let minutes: u32 = form.ttl_minutes.trim().parse().map_err(|_| {
        ApiError::BadRequest("the lifetime is a whole number of minutes, 1 to 1440".into())
    })?;
    let devices: u32 = form.max_devices.trim().parse().map_err(|_| {
        ApiError::BadRequest(format!(
            "the device count is a whole number, 1 to {MAX_DEVICES}"
        ))
    })?;
    if !(1..=1440).contains(&minutes) {
        return Err(ApiError::BadRequest(
            "the lifetime is 1 to 1440 minutes (a day)".into(),
        ));
    }
    Ok(CreateTokenRequest {
        ttl_secs: Some(minutes * 60),
        max_devices: Some(devices),
    })
}

async fn created_page(
    state: &AppState,
    user: &ConsoleUser,
    created: &CreateTokenResponse,
    public_id: &str,
) -> Result<Markup, ConsoleError> {
    let whole = created.token.expose();
    let payload = qr_payload(&created.region, whole);
    let qr = crate::labels::svg(&payload).map_err(ApiError::Internal)?;
    let status = crate::pairing_tokens::owned_status(&state.db, user.user.id, public_id).await?;
    Ok(html! {
        h1 { "New pairing token" }
        div.split {
            section.secret aria-labelledby="the-token" {
                h2 #the-token { "The token" }
                p.token.mono #token-text { (whole) }
                button type="button" data-copy="token-text" hidden { "Copy" }
                p { "Valid until " (time(created.expires_at)) " for " (created.max_devices) " device(s), region " (created.region) "." }
                p.hint { "This is the only time the whole token is shown: hand it to the phone app or to "
                    code { "tether provision --token" } " now. Later pages show only its first ten characters." }
            }
            section.qr aria-labelledby="qr" {
                h2 #qr { "QR code for a phone app" }
                figure #token-qr role="img" aria-label="QR code of the pairing token" { (page::svg(&qr)) }
                p.hint.mono { "tether:token?v=1&region=" (created.region) "&token=…" }
            }
        }
        (status_section(public_id, &status))
    })
}

/// `GET /tokens/{id}`.
pub async fn show(
    State(state): State<AppState>,
    user: ConsoleUser,
    PagePath(token): PagePath<String>,
) -> Result<Markup, ConsoleError> {
    let public_id = crate::pairing_tokens::public_id_of(&token)?;
    let status = crate::pairing_tokens::owned_status(&state.db, user.user.id, &public_id).await?;
    let body = html! {
        h1 { "Pairing token " span.mono { (public_id) "…" } }
        p.hint { "The whole token was shown once, when it was created." }
        (status_section(&public_id, &status))
        @if matches!(status.state.name(), "pending" | "complete") {
            section {
                form method="post" action={"/tokens/" (public_id) "/revoke"} data-confirm="Revoke this token? No device can pair with it after this." {
                    (csrf(&user))
                    button.danger type="submit" { "Revoke token" }
                }
            }
        }
    };
    Ok(page::page("Pairing token", Some(&user), body))
}

fn status_section(public_id: &str, status: &TokenStatus) -> Markup {
    html! {
        section aria-labelledby="arrivals" {
            h2 #arrivals { "Devices" }
            div #token-live data-live={"/tokens/" (public_id) "/live"} aria-live="polite" {
                (status_fragment(status))
            }
        }
    }
}

/// The live part of a token's page.
fn status_fragment(status: &TokenStatus) -> Markup {
    let state = status.state.name();
    html! {
        p { "State: " span class={"badge " (state)} data-state=(state) { (state) }
            " · expires " (time(status.expires_at)) }
        @if status.devices.is_empty() {
            p.muted { "No device has paired with this token yet. This list updates by itself." }
        } @else {
            div.table { table {
                thead { tr { th { "Device" } th { "Paired" } th { "Wi-Fi" } th { "DNS" } th { "Activation" } th { "MQTT" } } }
                tbody {
                    @for d in &status.devices {
                        @let t = d.timings.unwrap_or_default();
                        tr data-dev-id=(d.dev_id) {
                            td { a.mono href={"/devices/" (d.dev_id)} { (d.dev_id) } }
                            td { (time(d.activated_at)) }
                            td { (millis(t.wifi_ms)) } td { (millis(t.dns_ms)) }
                            td { (millis(t.activate_ms)) } td { (millis(t.mqtt_ms)) }
                        }
                    }
                }
            } }
        }
        @if !status.failures.is_empty() {
            h2 { "Failures reported" }
            div.table { table {
                thead { tr { th { "Device licence" } th { "Code" } th { "Phase" } th { "Message" } th { "When" } } }
                tbody {
                    @for f in &status.failures {
                        tr {
                            td.mono { (f.uuid) }
                            td { span.badge.failure { (f.code.name()) } }
                            td { @if let Some(p) = f.phase { (format!("{p:?}").to_lowercase()) } @else { "—" } }
                            td { (f.message.as_deref().unwrap_or(f.code.description())) }
                            td { (time(f.at)) }
                        }
                    }
                }
            } }
        }
    }
}

/// `GET /tokens/{id}/live`: the token's devices and failures as they change.
pub async fn live(
    State(state): State<AppState>,
    user: ConsoleUser,
    PagePath(token): PagePath<String>,
) -> Result<Response, ConsoleError> {
    let public_id = crate::pairing_tokens::public_id_of(&token)?;
    // Not the user's token: refused before any stream starts.
    crate::pairing_tokens::owned_status(&state.db, user.user.id, &public_id).await?;
    let owner = user.user.id;
    let stream = super::live::stream(state, &user, move |state| {
        let public_id = public_id.clone();
        async move {
            let status = crate::pairing_tokens::owned_status(&state.db, owner, &public_id).await?;
            Ok(status_fragment(&status))
        }
    })?;
    Ok(stream.into_response())
}

/// `POST /tokens/{id}/revoke`: the API's revocation.
pub async fn revoke(
    State(state): State<AppState>,
    PagePath(token): PagePath<String>,
    CsrfForm(user, super::session::Empty {}): CsrfForm<super::session::Empty>,
) -> Result<Redirect, ConsoleError> {
    let public_id = crate::pairing_tokens::public_id_of(&token)?;
    crate::pairing_tokens::revoke_token(State(state), user.user, ApiPath(public_id.clone()))
        .await?;
    Ok(Redirect::to(&format!("/tokens/{public_id}")))
}
