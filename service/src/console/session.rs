//! Console sessions and CSRF: logging in stores the SHA-256 of a random session id
//! (`console_sessions`) and gives the browser the id in an HttpOnly, SameSite=Strict
//! cookie (`__Host-` and Secure on HTTPS); every form carries a CSRF token, an HMAC of the
//! session id under the service's token-hash key, checked before the form is read. The
//! login form, which has no session yet, is tied to a short-lived cookie the same way.

use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::header::{CONTENT_TYPE, COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use maud::html;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use tether_proto::Secret;
use tether_proto::api::LoginRequest;

use super::page::{self, ConsoleError};
use crate::app::AppState;
use crate::db::Db;
use crate::error::ApiError;
use crate::users::{AuthUser, Role};

/// How long a console session lasts.
pub const SESSION_SECS: u64 = 8 * 3600;
/// How long a login form may wait to be sent.
const LOGIN_FORM_SECS: u64 = 3600;
/// The name of the form field that carries the CSRF token.
pub const CSRF_FIELD: &str = "_csrf";

/// The signed-in user of a console page.
#[derive(Debug, Clone)]
pub struct ConsoleUser {
    /// The account, as the API's checks take it.
    pub user: AuthUser,
    /// The account's name.
    pub name: String,
    /// The CSRF token of this session's forms.
    pub csrf: String,
    /// SHA-256 of the session id (hex), the session's key in the database.
    pub session: String,
}

impl ConsoleUser {
    /// Refuses users without the admin role.
    pub fn require_admin(&self) -> Result<AuthUser, ConsoleError> {
        Ok(self.user.require_admin()?)
    }
}

/// The cookie's name: with `__Host-`, which browsers accept only from HTTPS, for the
/// whole site and for this host alone.
fn cookie_name(secure: bool, base: &str) -> String {
    if secure {
        format!("__Host-{base}")
    } else {
        base.to_owned()
    }
}

/// Whether the console is served over HTTPS (also behind a proxy that terminates TLS,
/// as `--public-http-url` says).
pub fn secure(state: &AppState) -> bool {
    state.own_endpoints.http_url.starts_with("https://")
}

/// A cookie's value from the request's headers.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

fn set_cookie(state: &AppState, base: &str, value: &str, max_age: u64) -> HeaderValue {
    let secure = secure(state);
    let name = cookie_name(secure, base);
    let flags = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict{flags}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
}

fn random_id() -> Result<String, ApiError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("the random source failed: {e}"))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

fn hash(id: &str) -> String {
    hex::encode(Sha256::digest(id.as_bytes()))
}

/// The CSRF token for forms of the session (or login form) `id`.
fn csrf_for(state: &AppState, purpose: &str, id: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(state.keys.token_hash_key())
        .expect("HMAC takes a key of any length");
    mac.update(b"tether console csrf\0");
    mac.update(purpose.as_bytes());
    mac.update(b"\0");
    mac.update(id.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn csrf_matches(state: &AppState, purpose: &str, id: &str, sent: &str) -> bool {
    use subtle::ConstantTimeEq;
    let expected = csrf_for(state, purpose, id);
    expected.as_bytes().ct_eq(sent.as_bytes()).into()
}

/// The session of `id` (the cookie's value), if it is live.
async fn lookup(state: &AppState, id: &str) -> Result<Option<ConsoleUser>, ApiError> {
    let key = hash(id);
    let row: Option<(i64, String, String)> = sqlx::query_as(
        "SELECT u.id, u.username, u.role FROM console_sessions s JOIN users u ON u.id = s.user_id
         WHERE s.id_hash = $1 AND s.expires_at > $2",
    )
    .bind(&key)
    .bind(crate::db_time(crate::unix_now()))
    .fetch_optional(&state.db)
    .await?;
    Ok(row.map(|(user_id, name, role)| ConsoleUser {
        user: AuthUser {
            id: user_id,
            role: Role::from_name(&role),
        },
        name,
        csrf: csrf_for(state, "session", id),
        session: key,
    }))
}

/// Whether the session keyed `session` (see [`ConsoleUser::session`]) is still live.
pub async fn alive(db: &Db, session: &str) -> sqlx::Result<bool> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM console_sessions WHERE id_hash = $1 AND expires_at > $2",
    )
    .bind(session)
    .bind(crate::db_time(crate::unix_now()))
    .fetch_one(db)
    .await?;
    Ok(n > 0)
}

/// The session id the request's cookie carries.
fn session_id(headers: &HeaderMap, state: &AppState) -> Option<String> {
    cookie(headers, &cookie_name(secure(state), "tether_session"))
}

impl FromRequestParts<AppState> for ConsoleUser {
    type Rejection = ConsoleError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ConsoleError> {
        let id = session_id(&parts.headers, state).ok_or(ConsoleError::LoggedOut)?;
        lookup(state, &id).await?.ok_or(ConsoleError::LoggedOut)
    }
}

/// Refuses a form a browser says another site sent, before its CSRF token is looked at.
fn same_site(headers: &HeaderMap) -> Result<(), ConsoleError> {
    let fetch_site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if matches!(fetch_site, Some("cross-site" | "same-site")) {
        return Err(ConsoleError::Csrf);
    }
    Ok(())
}

/// A form of a signed-in user whose CSRF token matched: `T` is read from the
/// URL-encoded body only then.
#[derive(Debug)]
pub struct CsrfForm<T>(pub ConsoleUser, pub T);

/// The head and URL-encoded body of a form, refused when another site sent it.
async fn form_body(req: Request) -> Result<(Parts, axum::body::Bytes), ConsoleError> {
    let (parts, body) = req.into_parts();
    same_site(&parts.headers)?;
    let form_type = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !form_type {
        return Err(
            ApiError::UnsupportedMediaType("a console form is sent URL-encoded".into()).into(),
        );
    }
    let bytes = axum::body::to_bytes(body, crate::json::MAX_BODY_BYTES)
        .await
        .map_err(|_| ApiError::PayloadTooLarge(crate::json::MAX_BODY_BYTES))?;
    Ok((parts, bytes))
}

fn sent_csrf(body: &[u8]) -> Option<String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == CSRF_FIELD)
        .map(|(_, v)| v)
}

fn parse_form<T: DeserializeOwned>(body: &[u8]) -> Result<T, ConsoleError> {
    serde_urlencoded::from_bytes(body)
        .map_err(|e| ApiError::BadRequest(format!("the form is not complete: {e}")).into())
}

impl<T: DeserializeOwned> FromRequest<AppState> for CsrfForm<T> {
    type Rejection = ConsoleError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ConsoleError> {
        let (mut parts, body) = form_body(req).await?;
        // A missing token is an empty one, which matches nothing.
        let sent = sent_csrf(&body).unwrap_or_default();
        session_csrf(state, &parts.headers, &sent)?;
        let user = ConsoleUser::from_request_parts(&mut parts, state).await?;
        Ok(Self(user, parse_form(&body)?))
    }
}

/// Checks that `sent` is the CSRF token of the session the request's cookie names.
fn session_csrf(state: &AppState, headers: &HeaderMap, sent: &str) -> Result<(), ConsoleError> {
    let id = session_id(headers, state).ok_or(ConsoleError::LoggedOut)?;
    if csrf_matches(state, "session", &id, sent) {
        Ok(())
    } else {
        Err(ConsoleError::Csrf)
    }
}

/// Checks the CSRF token of a multipart form (its first field), and that no other site
/// sent it.
pub fn check_csrf(state: &AppState, headers: &HeaderMap, sent: &str) -> Result<(), ConsoleError> {
    same_site(headers)?;
    session_csrf(state, headers, sent)
}

/// `GET /login`: the form, tied to a new short-lived cookie.
pub async fn login_page(State(state): State<AppState>) -> Result<Response, ConsoleError> {
    login_form(&state, StatusCode::OK, "", None)
}

fn login_form(
    state: &AppState,
    status: StatusCode,
    username: &str,
    error: Option<&str>,
) -> Result<Response, ConsoleError> {
    let nonce = random_id()?;
    let csrf = csrf_for(state, "login", &nonce);
    let body = html! {
        main.narrow {
            h1 { "Sign in to Tether" }
            @if let Some(error) = error { p.error role="alert" { (error) } }
            form method="post" action="/login" {
                input type="hidden" name=(CSRF_FIELD) value=(csrf);
                label for="username" { "Username" }
                input #username name="username" autocomplete="username" required value=(username) autofocus;
                label for="password" { "Password" }
                input #password name="password" type="password" autocomplete="current-password" required;
                button type="submit" { "Sign in" }
            }
            p.hint { "The same account as for the tether CLI (tether login)." }
        }
    };
    let mut response = (status, page::page("Sign in", None, body)).into_response();
    response.headers_mut().insert(
        SET_COOKIE,
        set_cookie(state, "tether_login", &nonce, LOGIN_FORM_SECS),
    );
    Ok(response)
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    username: String,
    password: String,
}

/// `POST /login`: checks the form's tie to its cookie, then the password as the API's
/// login does (with its limits), and starts a session.
pub async fn login(
    State(state): State<AppState>,
    client: crate::server::ClientAddr,
    req: Request,
) -> Result<Response, ConsoleError> {
    let (parts, body) = form_body(req).await?;
    let nonce = cookie(&parts.headers, &cookie_name(secure(&state), "tether_login"));
    let sent = sent_csrf(&body);
    match (nonce, sent) {
        (Some(nonce), Some(sent)) if csrf_matches(&state, "login", &nonce, &sent) => {}
        _ => return Err(ConsoleError::Csrf),
    }
    let form: LoginForm = parse_form(&body)?;
    let request = LoginRequest {
        username: form.username.clone(),
        password: Secret::new(form.password),
    };
    let user = match crate::users::authenticate(&state, client, &request).await {
        Ok(user) => user,
        Err(e @ (ApiError::Unauthorized(_) | ApiError::BadRequest(_))) => {
            return login_form(&state, e.status(), &form.username, Some(&e.to_string()));
        }
        Err(e) => return Err(e.into()),
    };
    let id = random_id()?;
    let now = crate::unix_now();
    sqlx::query("DELETE FROM console_sessions WHERE expires_at <= $1")
        .bind(crate::db_time(now))
        .execute(&state.db)
        .await
        .map_err(ApiError::from)?;
    sqlx::query(
        "INSERT INTO console_sessions (id_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(hash(&id))
    .bind(user.id)
    .bind(crate::db_time(now))
    .bind(crate::db_time(now + SESSION_SECS))
    .execute(&state.db)
    .await
    .map_err(ApiError::from)?;
    tracing::info!(user = user.id, "console session started");
    let mut response = Redirect::to("/devices").into_response();
    let headers = response.headers_mut();
    headers.append(
        SET_COOKIE,
        set_cookie(&state, "tether_session", &id, SESSION_SECS),
    );
    headers.append(SET_COOKIE, set_cookie(&state, "tether_login", "", 0));
    Ok(response)
}

#[derive(Debug, Deserialize)]
pub struct Empty {}

/// `POST /logout`: ends the session in the database, so the cookie is worthless even if
/// it was copied.
pub async fn logout(
    State(state): State<AppState>,
    CsrfForm(user, Empty {}): CsrfForm<Empty>,
) -> Result<Response, ConsoleError> {
    sqlx::query("DELETE FROM console_sessions WHERE id_hash = $1")
        .bind(&user.session)
        .execute(&state.db)
        .await
        .map_err(ApiError::from)?;
    tracing::info!(user = user.user.id, "console session ended");
    let mut response = Redirect::to("/login").into_response();
    response
        .headers_mut()
        .append(SET_COOKIE, set_cookie(&state, "tether_session", "", 0));
    Ok(response)
}
