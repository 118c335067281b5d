//! Accounts: argon2id password hashes, login (`POST /v1/auth/token`) issuing EdDSA access
//! tokens, and the [`AuthUser`] extractor that checks them. A login is validated before
//! anything else, limited per client address and then per account, and its Argon2 check
//! waits for one of a few permits, so a flood of logins costs bounded memory and CPU.

use anyhow::Context;
use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, SaltString};
use axum::extract::{FromRequestParts, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::routing::post;
use axum::{Json, Router};
use tether_proto::Secret;

use crate::app::AppState;
use crate::db::Db;
use crate::error::{ApiError, ApiResult};
use crate::json::ApiJson;
use crate::keys::{API_AUDIENCE, UserClaims};

/// Lifetime of an access token.
pub const ACCESS_TOKEN_SECS: u64 = 3600;
/// Shortest accepted password.
pub const MIN_PASSWORD: usize = 8;
/// Longest accepted password (characters): Argon2 hashes all of it.
pub const MAX_PASSWORD: usize = 1024;

/// A user's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Manages licenses and users.
    Admin,
    /// Pairs and controls their own devices.
    User,
}

impl Role {
    /// The role stored as `name`; anything but `admin` is a plain user.
    pub fn from_name(name: &str) -> Self {
        if name == "admin" {
            Role::Admin
        } else {
            Role::User
        }
    }

    /// The name stored in the database and in access tokens.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::User => "user",
        }
    }
}

pub use tether_proto::api::{LoginRequest, LoginResponse};

/// Why an account could not be created.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// The name breaks the rules.
    #[error("a username has 1-64 letters, digits, '.', '_' or '-'")]
    BadName,
    /// The password is too short or too long.
    #[error("a password has at least {MIN_PASSWORD} characters (and at most {MAX_PASSWORD})")]
    WeakPassword,
    /// The name is taken.
    #[error("the username {0:?} is taken")]
    Taken(String),
    /// Storage failed.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// Whether `name` is a well-formed username: 1-64 letters, digits, '.', '_' or '-'.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Creates an account.
pub async fn create(
    pool: &Db,
    name: &str,
    password: &Secret,
    role: Role,
) -> Result<i64, UserError> {
    if !valid_name(name) {
        return Err(UserError::BadName);
    }
    let chars = password.expose().chars().count();
    if !(MIN_PASSWORD..=MAX_PASSWORD).contains(&chars) {
        return Err(UserError::WeakPassword);
    }
    let hash = hash_password(password)?;
    let inserted = sqlx::query_scalar::<_, i64>(
        "INSERT INTO users (username, password_hash, role, created_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (username) DO NOTHING RETURNING id",
    )
    .bind(name)
    .bind(hash)
    .bind(role.as_str())
    .bind(crate::db_time(crate::unix_now()))
    .fetch_optional(pool)
    .await
    .context("failed to store the user")?;
    inserted.ok_or_else(|| UserError::Taken(name.to_owned()))
}

/// Whether an account exists.
pub async fn exists(pool: &Db, name: &str) -> anyhow::Result<bool> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE username = $1")
        .bind(name)
        .fetch_one(pool)
        .await?;
    Ok(n > 0)
}

fn hash_password(password: &Secret) -> anyhow::Result<String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| anyhow::anyhow!("the random source failed: {e}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    Argon2::default()
        .hash_password(password.expose().as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("failed to hash the password: {e}"))
}

/// A hash to verify against when the user does not exist, so that a missing user takes
/// as long as a wrong password.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password(&Secret::new("decoy password")).unwrap_or_default())
}

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route("/v1/auth/token", post(issue_token))
}

/// Log in: an access token for the account.
#[utoipa::path(post, path = "/v1/auth/token", tag = "users", security(()),
    request_body = LoginRequest,
    responses((status = 200, description = "logged in", body = LoginResponse), (status = 400, description = "malformed body, query or path", body = tether_proto::api_error::ApiErrorBody), (status = 401, description = "wrong username or password", body = tether_proto::api_error::ApiErrorBody), (status = 413, description = "the body is too large", body = tether_proto::api_error::ApiErrorBody), (status = 415, description = "the body is not JSON", body = tether_proto::api_error::ApiErrorBody), (status = 429, description = "too many requests; see Retry-After", body = tether_proto::api_error::ApiErrorBody)))]
pub(crate) async fn issue_token(
    State(state): State<AppState>,
    client: crate::server::ClientAddr,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<Json<LoginResponse>> {
    let user = authenticate(&state, client, &req).await?;
    let now = crate::unix_now();
    let claims = UserClaims {
        sub: user.id.to_string(),
        aud: API_AUDIENCE.into(),
        exp: now + ACCESS_TOKEN_SECS,
        iat: now,
        role: user.role.as_str().to_owned(),
    };
    Ok(Json(LoginResponse {
        access_token: Secret::new(state.keys.sign(&claims)?),
        token_type: "Bearer".into(),
        expires_in: ACCESS_TOKEN_SECS,
    }))
}

/// Checks a username and password, for the API's login and the console's: the input is
/// validated first, then the per-client and per-account limits apply, and the Argon2
/// check waits for a permit.
pub(crate) async fn authenticate(
    state: &AppState,
    client: crate::server::ClientAddr,
    req: &LoginRequest,
) -> ApiResult<AuthUser> {
    if !valid_name(&req.username) || req.password.expose().chars().count() > MAX_PASSWORD {
        return Err(ApiError::BadRequest(format!(
            "a username has 1-64 letters, digits, '.', '_' or '-', and a password at most {MAX_PASSWORD} characters"
        )));
    }
    state.limits.login_client.check(&client.to_string())?;
    state
        .limits
        .login_account
        .refuse_if_spent(&req.username)
        .await?;
    let row: Option<(i64, String, String)> =
        sqlx::query_as("SELECT id, password_hash, role FROM users WHERE username = $1")
            .bind(&req.username)
            .fetch_optional(&state.db)
            .await?;
    let (hash, found) = match &row {
        Some((_, hash, _)) => (hash.as_str(), true),
        None => (decoy_hash(), false),
    };
    let verified = state
        .password_checks
        .verify(req.password.clone(), hash.to_owned())
        .await
        .map_err(|_| ApiError::RateLimited(1))?;
    let Some((id, _, role)) = row.filter(|_| verified && found) else {
        // Only failures count against the account, and the window ends.
        let _ = state.limits.login_account.fail(&req.username).await;
        return Err(ApiError::Unauthorized("wrong username or password".into()));
    };
    Ok(AuthUser {
        id,
        role: Role::from_name(&role),
    })
}

/// The caller of a user endpoint, from a valid `Authorization: Bearer` access token.
#[derive(Debug, Clone, Copy)]
pub struct AuthUser {
    /// User id.
    pub id: i64,
    /// Role.
    pub role: Role,
}

impl AuthUser {
    /// Refuses callers without the admin role.
    pub fn require_admin(self) -> Result<Self, ApiError> {
        match self.role {
            Role::Admin => Ok(self),
            Role::User => Err(ApiError::Forbidden),
        }
    }
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let unauthorized = |m: &str| ApiError::Unauthorized(m.to_owned());
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| unauthorized("an `Authorization: Bearer` access token is required"))?;
        let token = header
            .strip_prefix("Bearer ")
            .ok_or_else(|| unauthorized("an `Authorization: Bearer` access token is required"))?;
        let claims: UserClaims = state
            .keys
            .verify(token, API_AUDIENCE)
            .ok_or_else(|| unauthorized("the access token is invalid or expired"))?;
        let id = claims
            .sub
            .parse()
            .map_err(|_| unauthorized("the access token is invalid"))?;
        Ok(Self {
            id,
            role: Role::from_name(&claims.role),
        })
    }
}

/// The caller of an admin endpoint: refused (403) from the request's head, before any
/// body is read.
#[derive(Debug, Clone, Copy)]
pub struct AdminUser(pub AuthUser);

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        AuthUser::from_request_parts(parts, state)
            .await?
            .require_admin()
            .map(Self)
    }
}
