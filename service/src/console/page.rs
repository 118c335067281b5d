//! The console's page frame (head, navigation, sign-out form), its typed error pages,
//! and the small formatting helpers every page shares.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::session::{CSRF_FIELD, ConsoleUser};
use crate::error::ApiError;

/// The whole page around `body`; `user` is `None` on the sign-in page.
pub fn page(title: &str, user: Option<&ConsoleUser>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Tether" }
                link rel="stylesheet" href=(super::assets::CSS_PATH);
                script src=(super::assets::JS_PATH) defer {}
            }
            body {
                a.skip href="#content" { "Skip to content" }
                header.bar {
                    a.brand href="/" { "Tether" }
                    @if let Some(user) = user {
                        nav aria-label="Main" {
                            a href="/tokens" { "Pairing tokens" }
                            a href="/devices" { "Devices" }
                            @if user.user.role == crate::users::Role::Admin {
                                a href="/admin/licenses" { "Licences" }
                                a href="/admin/modules" { "Modules" }
                            }
                        }
                        form.signout method="post" action="/logout" {
                            (csrf(user))
                            span.who { (user.name) }
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                div #content { (body) }
            }
        }
    }
}

/// The hidden CSRF field of a form.
pub fn csrf(user: &ConsoleUser) -> Markup {
    html! { input type="hidden" name=(CSRF_FIELD) value=(user.csrf); }
}

/// Unix seconds as `2026-12-03 08:12:05 UTC` in a `<time>` element.
pub fn time(secs: u64) -> Markup {
    let Ok(at) = time::OffsetDateTime::from_unix_timestamp(i64::try_from(secs).unwrap_or(0)) else {
        return html! { "—" };
    };
    let iso = at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let text = iso.replace('T', " ").replace('Z', " UTC");
    html! { time datetime=(iso) { (text) } }
}

/// A duration in milliseconds, or a dash.
pub fn millis(ms: Option<u32>) -> Markup {
    html! {
        @match ms { Some(ms) => { (ms) " ms" }, None => "—" }
    }
}

/// A short message a page shows after a redirect, by a fixed key (the text is never
/// taken from the URL).
pub fn notice(key: Option<&str>) -> Markup {
    let text = match key {
        Some("command-delivered") => "The device acknowledged the command.",
        Some("unbound") => {
            "The device was unbound: its credentials stopped working and it was told why."
        }
        Some("revoked") => "Revoked.",
        Some("rolled-out") => "Rolled out: the devices are told now, or when they next connect.",
        Some("uploaded") => "The bundle was checked and stored.",
        _ => return html! {},
    };
    html! { p.notice role="status" { (text) } }
}

/// An error banner above a form that is shown again with what was typed.
pub fn form_error(error: Option<&ApiError>) -> Markup {
    html! {
        @if let Some(e) = error {
            p.error role="alert" { (e.to_string()) " " (advice(e)) }
        }
    }
}

/// What a page answers when it fails.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// No live session: to the sign-in page.
    #[error("not signed in")]
    LoggedOut,
    /// A form without the CSRF token of the session, or sent by another site.
    #[error("this form was not sent from a page of this console")]
    Csrf,
    /// What the API would have answered.
    #[error(transparent)]
    Api(#[from] ApiError),
}

/// What to do about an error, for people.
fn advice(e: &ApiError) -> &'static str {
    match e.code() {
        "not_found" => "It does not exist, or it belongs to another account.",
        "forbidden" => "This page is for administrators: ask one to do it, or sign in as one.",
        "bad_request" | "payload_too_large" | "unsupported_media_type" => {
            "Correct the form and send it again."
        }
        "rate_limited" => "Wait a moment and try again.",
        "device_offline" => {
            "Wait until the device is online again (its page shows it live), then send it again."
        }
        "not_delivered" => "The device did not confirm it: check it is online and send it again.",
        "bundle_untrusted_key" => {
            "Sign the bundle with a key the service trusts (serve --module-key)."
        }
        "bundle_malformed" | "bundle_bad_signature" | "bundle_corrupted" => {
            "Upload a bundle made by `tether module sign`, unchanged."
        }
        "internal" => {
            "Something failed on the service; the operator's log has the detail. Try again later."
        }
        _ => "",
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let (status, code, message, advice) = match &self {
            Self::LoggedOut => return Redirect::to("/login").into_response(),
            Self::Csrf => (
                StatusCode::FORBIDDEN,
                "csrf",
                self.to_string(),
                "Go back, reload the page and send the form again.",
            ),
            Self::Api(e) => {
                if let ApiError::Internal(inner) = e {
                    tracing::error!(error = %format!("{inner:#}"), "console page failed");
                }
                (e.status(), e.code(), e.to_string(), advice(e))
            }
        };
        error_page(status, code, &message, advice)
    }
}

/// A typed error page: the status, the stable code, the message and what to do.
pub fn error_page(status: StatusCode, code: &str, message: &str, advice: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    let body = html! {
        main.narrow {
            h1 { (title) }
            p.error role="alert" data-code=(code) { (message) }
            @if !advice.is_empty() { p { (advice) } }
            p { a href="/" { "Back to the console" } }
        }
    };
    let mut response = (status, page(title, None, body)).into_response();
    response.headers_mut().insert(
        "x-error-code",
        HeaderValue::from_str(code).unwrap_or(HeaderValue::from_static("error")),
    );
    response
}

/// A path parameter of a page; a malformed one is a typed error page.
#[derive(Debug)]
pub struct PagePath<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Send> FromRequestParts<S> for PagePath<T> {
    type Rejection = ConsoleError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ConsoleError> {
        let crate::json::ApiPath(value) =
            crate::json::ApiPath::<T>::from_request_parts(parts, state).await?;
        Ok(Self(value))
    }
}

/// A page's query; a malformed one is a typed error page.
#[derive(Debug)]
pub struct PageQuery<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequestParts<S> for PageQuery<T> {
    type Rejection = ConsoleError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ConsoleError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Self(value)),
            Err(e) => Err(ApiError::BadRequest(e.body_text()).into()),
        }
    }
}

/// Whether a request asks for a page rather than JSON.
pub fn wants_html(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"))
}

/// An inline SVG image made by this service (a QR code): the XML prolog dropped.
pub fn svg(document: &str) -> Markup {
    let start = document.find("<svg").unwrap_or(0);
    PreEscaped(document[start..].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_utc_in_a_time_element() {
        let html = time(1_796_300_000).into_string();
        assert_eq!(
            html,
            "<time datetime=\"2026-12-03T12:13:20Z\">2026-12-03 12:13:20 UTC</time>"
        );
        assert_eq!(millis(None).into_string(), "—");
        assert_eq!(millis(Some(12)).into_string(), "12 ms");
    }

    #[test]
    fn a_notice_is_chosen_by_key_and_never_taken_from_the_address() {
        assert!(notice(Some("unbound")).into_string().contains("unbound"));
        assert_eq!(notice(Some("<script>alert(1)</script>")).into_string(), "");
        assert_eq!(notice(None).into_string(), "");
    }

    #[test]
    fn error_pages_carry_status_code_and_advice_and_escape_the_message() {
        let response = ConsoleError::Api(ApiError::BadRequest("<b>x</b>".into())).into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(response.headers()["x-error-code"], "bad_request");
        let response = ConsoleError::Csrf.into_response();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        let response = ConsoleError::LoggedOut.into_response();
        assert_eq!(response.headers()[header::LOCATION], "/login");
        let banner = form_error(Some(&ApiError::BadRequest("<b>x</b>".into()))).into_string();
        assert!(
            banner.contains("&lt;b&gt;x&lt;/b&gt;") && banner.contains("Correct the form"),
            "{banner}"
        );
    }

    #[test]
    fn an_svg_document_is_inlined_without_its_prolog() {
        let inlined = svg("<?xml version=\"1.0\"?><svg width=\"1\"></svg>").into_string();
        assert_eq!(inlined, "<svg width=\"1\"></svg>");
    }
}
