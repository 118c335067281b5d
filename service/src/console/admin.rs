//! The console's admin pages: licences (issue, with the secrets shown once; list and
//! filter; revoke; download as CSV) and modules (upload a signed bundle, roll it out to a
//! product or to devices, follow each device's outcome live). Every action is the API's
//! own handler, which refuses a user without the admin role.

use axum::extract::{Multipart, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use tether_proto::api::{DeviceTargets, ProductTarget, RolloutRequest};

use super::page::{self, ConsoleError, PagePath, PageQuery, csrf, form_error, notice, time};
use super::session::{CSRF_FIELD, ConsoleUser, CsrfForm};
use crate::app::AppState;
use crate::error::ApiError;
use crate::json::{ApiJson, ApiPath};
use crate::licenses::admin::ListQuery;
use crate::users::AdminUser;

/// Licences one page lists.
const PAGE: u32 = 200;

/// The filter of the licence list.
#[derive(Debug, Default, Deserialize)]
pub struct LicenseFilter {
    #[serde(default)]
    product_key: String,
    #[serde(default)]
    state: String,
    notice: Option<String>,
}

impl LicenseFilter {
    fn query(&self, format: Option<&str>) -> ListQuery {
        let some = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        ListQuery {
            product_key: some(&self.product_key),
            state: some(&self.state),
            limit: Some(PAGE),
            format: format.map(str::to_owned),
            ..ListQuery::default()
        }
    }
}

/// `GET /admin/licenses`.
pub async fn licenses(
    State(state): State<AppState>,
    user: ConsoleUser,
    PageQuery(filter): PageQuery<LicenseFilter>,
) -> Result<Markup, ConsoleError> {
    user.require_admin()?;
    licenses_page(&state, &user, &filter, None, &IssueForm::default()).await
}

async fn licenses_page(
    state: &AppState,
    user: &ConsoleUser,
    filter: &LicenseFilter,
    error: Option<&ApiError>,
    form: &IssueForm,
) -> Result<Markup, ConsoleError> {
    let rows = crate::licenses::admin::query_licenses(&state.db, &filter.query(None)).await?;
    let query = serde_urlencoded::to_string([
        ("product_key", filter.product_key.as_str()),
        ("state", filter.state.as_str()),
    ])
    .unwrap_or_default();
    let csv = format!("/admin/licenses.csv?{query}");
    let body = html! {
        h1 { "Licences" }
        (notice(filter.notice.as_deref()))
        section aria-labelledby="issue" {
            h2 #issue { "Issue licences" }
            (form_error(error))
            form method="post" action="/admin/licenses" {
                (csrf(user))
                div.row {
                    div {
                        label for="product_key" { "Product key (16 letters or digits)" }
                        input #product_key name="product_key" required minlength="16" maxlength="16" pattern="[A-Za-z0-9]{16}" value=(form.product_key);
                    }
                    div {
                        label for="count" { "How many" }
                        input #count name="count" type="number" min="1" max=(crate::licenses::MAX_COUNT) required value=(form.count);
                    }
                    button type="submit" { "Issue" }
                }
            }
        }
        section aria-labelledby="list" {
            h2 #list { "All licences" }
            form.row method="get" action="/admin/licenses" {
                div {
                    label for="f-product" { "Product" }
                    input #f-product name="product_key" value=(filter.product_key);
                }
                div {
                    label for="f-state" { "State" }
                    select #f-state name="state" {
                        @for s in ["", "unused", "active", "revoked"] {
                            option value=(s) selected[filter.state == s] { @if s.is_empty() { "any" } @else { (s) } }
                        }
                    }
                }
                button type="submit" { "Filter" }
            }
            p { a #csv href=(csv) download="licenses.csv" { "Download as CSV" } " (no authkeys or setup codes: those are shown once, at issue)" }
            div.table { table {
                thead { tr { th { "Licence" } th { "Product" } th { "State" } th { "Device" } th.hide-small { "Owner" } th.hide-small { "Issued" } th {} } }
                tbody {
                    @for l in &rows {
                        tr data-uuid=(l.uuid) {
                            td.mono { (l.uuid) }
                            td.mono { (l.product_key) }
                            td { span class={"badge " (l.state.name())} { (l.state.name()) } }
                            td.mono { (l.dev_id.as_deref().unwrap_or("—")) }
                            td.hide-small { (l.owner.as_deref().unwrap_or("—")) }
                            td.hide-small { (time(l.created_at)) }
                            td { @if l.revoked_at.is_none() {
                                form.inline method="post" action={"/admin/licenses/" (l.uuid) "/revoke"} data-confirm="Revoke this licence? Its device is unbound now and it never activates again." {
                                    (csrf(user))
                                    button.danger type="submit" aria-label={"Revoke " (l.uuid)} { "Revoke" }
                                }
                            } }
                        }
                    }
                }
            } }
            @if rows.len() as u32 == PAGE { p.hint { "The first " (PAGE) " are shown: filter, or download the CSV from the API for all of them." } }
        }
    };
    Ok(page::page("Licences", Some(user), body))
}

/// The issue form.
#[derive(Debug, Deserialize)]
pub struct IssueForm {
    product_key: String,
    count: String,
}

impl Default for IssueForm {
    fn default() -> Self {
        Self {
            product_key: String::new(),
            count: "1".into(),
        }
    }
}

/// `POST /admin/licenses`: the API's issue; the answer shows the secrets once.
pub async fn issue(
    State(state): State<AppState>,
    CsrfForm(user, form): CsrfForm<IssueForm>,
) -> Result<Response, ConsoleError> {
    let admin = user.require_admin()?;
    let issued = match form.count.trim().parse::<u32>() {
        Ok(count) => {
            let request = crate::licenses::IssueRequest {
                product_key: form.product_key.trim().to_owned(),
                count,
            };
            crate::licenses::issue_licenses(State(state.clone()), admin, ApiJson(request)).await
        }
        Err(_) => Err(ApiError::BadRequest(format!(
            "the count is a whole number, 1 to {}",
            crate::licenses::MAX_COUNT
        ))),
    };
    let licenses = match issued {
        Ok((_, axum::Json(licenses))) => licenses,
        Err(e @ ApiError::BadRequest(_)) => {
            let page =
                licenses_page(&state, &user, &LicenseFilter::default(), Some(&e), &form).await?;
            return Ok((e.status(), page).into_response());
        }
        Err(e) => return Err(e.into()),
    };
    let rows: Vec<Vec<String>> = licenses
        .iter()
        .map(|l| {
            vec![
                l.uuid.clone(),
                l.authkey.expose().to_owned(),
                l.setup_code.expose().to_owned(),
                l.pairing_verifier.clone(),
                l.qr.expose().to_owned(),
            ]
        })
        .collect();
    let sheet = crate::licenses::admin::csv("uuid,authkey,setup_code,pairing_verifier,qr", &rows);
    let body = html! {
        h1 { "Licences issued" }
        section.secret {
            p { strong { (licenses.len()) " licence(s) for product " span.mono { (form.product_key.trim()) } "." }
                " This is the only time their authkeys and setup codes are shown: copy them into the factory's records now." }
            label for="issued" { "For the factory (CSV)" }
            textarea #issued readonly rows=(licenses.len().clamp(2, 12) + 1) spellcheck="false" { (sheet) }
            button type="button" data-copy="issued" hidden { "Copy" }
        }
        p { a href="/admin/licenses" { "Back to the licences" } }
    };
    Ok((
        StatusCode::CREATED,
        [(header::CACHE_CONTROL, "no-store")],
        page::page("Licences issued", Some(&user), body),
    )
        .into_response())
}

/// `GET /admin/licenses.csv`: the API's CSV, as a download.
pub async fn licenses_csv(
    State(state): State<AppState>,
    user: ConsoleUser,
    PageQuery(filter): PageQuery<LicenseFilter>,
) -> Result<Response, ConsoleError> {
    let admin = user.require_admin()?;
    let mut response = crate::licenses::admin::list_licenses(
        State(state),
        admin,
        Ok(Query(filter.query(Some("csv")))),
    )
    .await?;
    response.headers_mut().insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"licenses.csv\""),
    );
    Ok(response)
}

/// `POST /admin/licenses/{uuid}/revoke`.
pub async fn revoke(
    State(state): State<AppState>,
    PagePath(uuid): PagePath<String>,
    CsrfForm(user, super::session::Empty {}): CsrfForm<super::session::Empty>,
) -> Result<Redirect, ConsoleError> {
    let admin = user.require_admin()?;
    crate::licenses::admin::revoke_license(State(state), admin, ApiPath(uuid)).await?;
    Ok(Redirect::to("/admin/licenses?notice=revoked"))
}

/// `GET /admin/modules`.
pub async fn modules(
    State(state): State<AppState>,
    user: ConsoleUser,
    PageQuery(query): PageQuery<super::devices::Notice>,
) -> Result<Response, ConsoleError> {
    let admin = user.require_admin()?;
    let page = modules_page(&state, &user, admin, query.notice.as_deref(), None).await?;
    Ok(page.into_response())
}

async fn modules_page(
    state: &AppState,
    user: &ConsoleUser,
    admin: crate::users::AuthUser,
    notice_key: Option<&str>,
    error: Option<&ApiError>,
) -> Result<Markup, ConsoleError> {
    let axum::Json(modules) = crate::modules::list(State(state.clone()), admin).await?;
    let body = html! {
        h1 { "Modules" }
        (notice(notice_key))
        section aria-labelledby="upload" {
            h2 #upload { "Upload a bundle" }
            (form_error(error))
            form method="post" action="/admin/modules" enctype="multipart/form-data" {
                (csrf(user))
                label for="bundle" { "Signed bundle (from tether module sign)" }
                input #bundle name="bundle" type="file" required;
                button type="submit" { "Upload" }
            }
        }
        section aria-labelledby="stored" {
            h2 #stored { "Stored modules" }
            @if modules.is_empty() { p.muted { "None yet." } } @else {
                div.table { table {
                    thead { tr { th { "Module" } th { "Version" } th { "Sequence" } th.hide-small { "Variants" } th.hide-small { "Stored" } } }
                    tbody {
                        @for m in &modules {
                            tr {
                                td { a href={"/admin/modules/" (m.id)} { "#" (m.id) } }
                                td { (m.version) } td { (m.sequence) }
                                td.hide-small { (m.variants.join(", ")) }
                                td.hide-small { (time(crate::from_db_time(m.created_at))) }
                            }
                        }
                    }
                } }
            }
        }
    };
    Ok(page::page("Modules", Some(user), body))
}

/// `POST /admin/modules`: a multipart form whose first field is the CSRF token, checked
/// before the bundle is read; then the API's upload.
pub async fn upload(
    State(state): State<AppState>,
    headers: HeaderMap,
    user: ConsoleUser,
    form: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<Response, ConsoleError> {
    let admin = user.require_admin()?;
    let mut form = form.map_err(|e| {
        ConsoleError::from(ApiError::UnsupportedMediaType(format!(
            "a bundle is uploaded as a multipart form: {}",
            e.body_text()
        )))
    })?;
    let malformed = |e: axum::extract::multipart::MultipartError| {
        ConsoleError::from(ApiError::BadRequest(format!(
            "the upload is not a complete form: {e}"
        )))
    };
    let first = form.next_field().await.map_err(malformed)?;
    let token = match first {
        Some(field) if field.name() == Some(CSRF_FIELD) => field.text().await.map_err(malformed)?,
        _ => return Err(ConsoleError::Csrf),
    };
    super::session::check_csrf(&state, &headers, &token)?;
    let mut bundle = None;
    while let Some(field) = form.next_field().await.map_err(malformed)? {
        if field.name() == Some("bundle") {
            bundle = Some(field.bytes().await.map_err(malformed)?);
        }
    }
    let Some(bundle) = bundle.filter(|b| !b.is_empty()) else {
        let e = ApiError::BadRequest("choose a bundle file to upload".into());
        let page = modules_page(&state, &user, admin, None, Some(&e)).await?;
        return Ok((e.status(), page).into_response());
    };
    match crate::modules::upload(State(state.clone()), AdminUser(admin), bundle).await {
        Ok((_, axum::Json(module))) => Ok(Redirect::to(&format!(
            "/admin/modules/{}?notice=uploaded",
            module.id
        ))
        .into_response()),
        Err(e @ ApiError::Internal(_)) => Err(e.into()),
        Err(e) => {
            let page = modules_page(&state, &user, admin, None, Some(&e)).await?;
            Ok((e.status(), page).into_response())
        }
    }
}

/// `GET /admin/modules/{id}`.
pub async fn module(
    State(state): State<AppState>,
    user: ConsoleUser,
    PagePath(id): PagePath<i64>,
    PageQuery(query): PageQuery<super::devices::Notice>,
) -> Result<Response, ConsoleError> {
    user.require_admin()?;
    let page = module_page(
        &state,
        &user,
        id,
        query.notice.as_deref(),
        None,
        &RolloutForm::default(),
    )
    .await?;
    Ok(page.into_response())
}

async fn module_page(
    state: &AppState,
    user: &ConsoleUser,
    id: i64,
    notice_key: Option<&str>,
    error: Option<&ApiError>,
    form: &RolloutForm,
) -> Result<Markup, ConsoleError> {
    let module = crate::modules::module(&state.db, id).await?;
    let outcomes = outcomes_fragment(state, id).await?;
    let body = html! {
        h1 { "Module #" (module.id) ", version " (module.version) }
        (notice(notice_key))
        section {
            dl {
                dt { "Sequence" } dd { (module.sequence) }
                dt { "SHA-256" } dd.mono { (module.sha256) }
                dt { "Size" } dd { (module.size) " bytes" }
                dt { "Variants" } dd { (module.variants.join(", ")) }
            }
        }
        section aria-labelledby="roll" {
            h2 #roll { "Roll out" }
            (form_error(error))
            form method="post" action={"/admin/modules/" (module.id) "/rollout"} {
                (csrf(user))
                div.row {
                    div {
                        label for="product_key" { "Every device of product" }
                        input #product_key name="product_key" value=(form.product_key) placeholder="16 letters or digits";
                    }
                    div {
                        label for="devices" { "or these devices (one id per line)" }
                        textarea #devices name="devices" rows="2" spellcheck="false" { (form.devices) }
                    }
                    button type="submit" { "Roll out" }
                }
            }
        }
        section aria-labelledby="outcomes" {
            h2 #outcomes { "Outcomes per device" }
            div #rollout-live data-live={"/admin/modules/" (module.id) "/live"} aria-live="polite" { (outcomes) }
        }
    };
    Ok(page::page("Module", Some(user), body))
}

/// Each targeted device's state in this module's rollouts, newest rollout first.
async fn outcomes_fragment(state: &AppState, module: i64) -> Result<Markup, ApiError> {
    let rows: Vec<(i64, String, String, Option<String>, i64)> = sqlx::query_as(
        "SELECT r.id, rd.dev_id, rd.state, rd.reason, rd.updated_at
         FROM rollout_devices rd JOIN rollouts r ON r.id = rd.rollout_id
         WHERE r.module_id = $1 ORDER BY r.id DESC, rd.dev_id LIMIT 500",
    )
    .bind(module)
    .fetch_all(&state.db)
    .await?;
    Ok(html! {
        @if rows.is_empty() { p.muted { "Not rolled out yet." } } @else {
            div.table { table {
                thead { tr { th { "Rollout" } th { "Device" } th { "State" } th { "Reason" } th.hide-small { "Updated" } } }
                tbody {
                    @for (rollout, dev_id, state, reason, at) in &rows {
                        tr data-dev-id=(dev_id) {
                            td { (rollout) }
                            td.mono { (dev_id) }
                            td { span class={"badge " (state)} data-state=(state) { (state) } }
                            td { (reason.as_deref().unwrap_or("—")) }
                            td.hide-small { (time(crate::from_db_time(*at))) }
                        }
                    }
                }
            } }
        }
    })
}

/// `GET /admin/modules/{id}/live`.
pub async fn module_live(
    State(state): State<AppState>,
    user: ConsoleUser,
    PagePath(id): PagePath<i64>,
) -> Result<Response, ConsoleError> {
    user.require_admin()?;
    crate::modules::module(&state.db, id).await?;
    let stream = super::live::stream(state, &user, move |state| async move {
        outcomes_fragment(&state, id).await
    })?;
    Ok(stream.into_response())
}

/// The rollout form: a product, or device ids.
#[derive(Debug, Default, Deserialize)]
pub struct RolloutForm {
    #[serde(default)]
    product_key: String,
    #[serde(default)]
    devices: String,
}

/// `POST /admin/modules/{id}/rollout`: the API's rollout.
pub async fn rollout(
    State(state): State<AppState>,
    PagePath(id): PagePath<i64>,
    CsrfForm(user, form): CsrfForm<RolloutForm>,
) -> Result<Response, ConsoleError> {
    let admin = user.require_admin()?;
    let devices: Vec<String> = form.devices.split_whitespace().map(str::to_owned).collect();
    let product = form.product_key.trim();
    let request = match (product.is_empty(), devices.is_empty()) {
        (false, true) => Ok(RolloutRequest::Product(ProductTarget {
            product_key: product.to_owned(),
        })),
        (true, false) => Ok(RolloutRequest::Devices(DeviceTargets { devices })),
        _ => Err(ApiError::BadRequest(
            "give either a product key or device ids, not both".into(),
        )),
    };
    let done = match request {
        Ok(request) => crate::modules::create_rollout(
            State(state.clone()),
            admin,
            ApiPath(id),
            ApiJson(request),
        )
        .await
        .map(|_| ()),
        Err(e) => Err(e),
    };
    match done {
        Ok(()) => {
            Ok(Redirect::to(&format!("/admin/modules/{id}?notice=rolled-out")).into_response())
        }
        Err(e @ (ApiError::BadRequest(_) | ApiError::NotFound("device"))) => {
            let page = module_page(&state, &user, id, None, Some(&e), &form).await?;
            Ok((e.status(), page).into_response())
        }
        Err(e) => Err(e.into()),
    }
}
