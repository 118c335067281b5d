//! The web console, served by the service itself at `/`: server-rendered pages (maud
//! templates, checked at compile time and escaped by default), one small hand-written
//! script for live regions (Server-Sent Events) and a stylesheet, both embedded. Signing
//! in uses the API's accounts and limits; every action calls the API's own handler, so
//! ownership and role checks are the API's. See `session.rs` for cookies and CSRF.

mod admin;
mod assets;
mod devices;
pub mod live;
mod page;
mod session;
mod tokens;

pub use live::Console;
pub use session::SESSION_SECS;
pub use tokens::qr_payload;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::app::AppState;
use crate::error::ApiError;

/// What pages may load: only this service's own script, style and images; no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The console's routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/devices") }))
        .route("/login", get(session::login_page).post(session::login))
        .route("/logout", post(session::logout))
        .route("/tokens", get(tokens::list).post(tokens::create))
        .route("/tokens/{token}", get(tokens::show))
        .route("/tokens/{token}/live", get(tokens::live))
        .route("/tokens/{token}/revoke", post(tokens::revoke))
        .route("/devices", get(devices::list))
        .route("/devices/live", get(devices::list_live))
        .route("/devices/{dev_id}", get(devices::show))
        .route("/devices/{dev_id}/live", get(devices::live))
        .route("/devices/{dev_id}/command", post(devices::command))
        .route("/devices/{dev_id}/unbind", post(devices::unbind))
        .route("/admin/licenses", get(admin::licenses).post(admin::issue))
        .route("/admin/licenses.csv", get(admin::licenses_csv))
        .route("/admin/licenses/{uuid}/revoke", post(admin::revoke))
        .route(
            "/admin/modules",
            get(admin::modules)
                .post(admin::upload)
                .layer(DefaultBodyLimit::max(
                    crate::modules::MAX_BUNDLE_BYTES + 8192,
                )),
        )
        .route("/admin/modules/{id}", get(admin::module))
        .route("/admin/modules/{id}/live", get(admin::module_live))
        .route("/admin/modules/{id}/rollout", post(admin::rollout))
        .route("/assets/{name}", get(assets::serve))
        .route_layer(axum::middleware::from_fn(headers))
}

/// The headers of every console answer: a strict content policy, no framing, no
/// sniffing, no referrer; pages are not cached (they show private data).
async fn headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// The answer to a path nothing serves: a page for a browser, the API's JSON otherwise.
pub async fn not_found(request: Request) -> Response {
    if page::wants_html(request.headers()) {
        let mut response = page::error_page(
            axum::http::StatusCode::NOT_FOUND,
            "not_found",
            "There is no page at this address.",
            "Check the address, or go back to the console.",
        );
        response.headers_mut().insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
        return response;
    }
    ApiError::NotFound("endpoint").into_response()
}
