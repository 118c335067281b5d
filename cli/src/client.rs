//! The cloud API as the provisioner and the demo use it: one typed method per call, over
//! the bodies in `tether_proto`, with the API's errors turned into [`Failure`]s.

use std::time::Duration;

use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tether_proto::api::{
    CommandAccepted, CommandRequest, DeviceView, LicenseView, LoginRequest, LoginResponse,
    ModuleView, RolloutCreated, RolloutRequest, TransferOffer, TransferRequest,
};
use tether_proto::api_error::ApiErrorBody;
use tether_proto::token_status::{CreateTokenRequest, CreateTokenResponse, TokenStatus};
use tether_proto::trace::TraceParent;
use tether_proto::{PublicId, Secret};

use crate::failure::Failure;

/// How long an ordinary request may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// A client for one server, with or without an access token.
#[derive(Debug, Clone)]
pub struct Api {
    base: String,
    http: reqwest::Client,
    token: Option<Secret>,
    /// The trace its requests belong to, if any (each is sent from a span of its own).
    trace: Option<TraceParent>,
}

impl Api {
    /// A client for `server`, trusting the CA in the PEM file `ca` besides the public
    /// roots.
    pub fn new(server: &str, ca: Option<&std::path::Path>) -> Result<Self, Failure> {
        let mut http = reqwest::Client::builder().connect_timeout(Duration::from_secs(5));
        if let Some(path) = ca {
            let pem = std::fs::read(path).map_err(|e| {
                Failure::Invalid(format!("cannot read the CA file {}: {e}", path.display()))
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .ok()
                .filter(|c| !c.is_empty())
                .ok_or_else(|| {
                    Failure::Invalid(format!("no certificate in the CA file {}", path.display()))
                })?;
            for cert in certs {
                http = http.add_root_certificate(cert);
            }
        }
        let http = http.build().map_err(|e| Failure::Other(e.to_string()))?;
        Ok(Self {
            base: server.trim_end_matches('/').to_owned(),
            http,
            token: None,
            trace: None,
        })
    }

    /// The same server and trust, logged out (to log in as someone else).
    pub fn logged_out(&self) -> Self {
        Self {
            token: None,
            ..self.clone()
        }
    }

    /// Sends later requests in `trace`.
    pub fn with_trace(mut self, trace: TraceParent) -> Self {
        self.trace = Some(trace);
        self
    }

    /// The trace its requests belong to.
    pub fn trace(&self) -> Option<&TraceParent> {
        self.trace.as_ref()
    }

    /// Uses `token` for later requests.
    pub fn with_token(mut self, token: Secret) -> Self {
        self.token = Some(token);
        self
    }

    /// Logs in and returns the access token.
    pub async fn login(&self, user: &str, password: &str) -> Result<Secret, Failure> {
        let body = LoginRequest {
            username: user.to_owned(),
            password: Secret::new(password),
        };
        let answer: LoginResponse = self
            .send(Method::POST, "/v1/auth/token", Some(&body), TIMEOUT)
            .await?;
        Ok(answer.access_token)
    }

    /// Creates a pairing token.
    pub async fn create_token(
        &self,
        request: &CreateTokenRequest,
    ) -> Result<CreateTokenResponse, Failure> {
        self.send(Method::POST, "/v1/pairing-tokens", Some(request), TIMEOUT)
            .await
    }

    /// A token's status; with `wait`, the server holds the answer up to that many seconds
    /// until something changes.
    pub async fn token_status(
        &self,
        token: &PublicId,
        wait: Option<u64>,
    ) -> Result<TokenStatus, Failure> {
        let query = wait.map(|w| format!("?wait={w}")).unwrap_or_default();
        let timeout = TIMEOUT + Duration::from_secs(wait.unwrap_or(0));
        let path = format!("/v1/pairing-tokens/{token}{query}");
        self.send(Method::GET, &path, None::<&()>, timeout).await
    }

    /// A page of licenses (admins): `query` is `GET /v1/licenses`'s query string, without
    /// `format`.
    pub async fn licenses(&self, query: &str) -> Result<Vec<LicenseView>, Failure> {
        let path = format!("/v1/licenses?{query}");
        self.send(Method::GET, &path, None::<&()>, TIMEOUT).await
    }

    /// The same page as CSV, a header line first.
    pub async fn licenses_csv(&self, query: &str) -> Result<String, Failure> {
        let url = format!("{}/v1/licenses?{query}&format=csv", self.base);
        let req = self.authorized(self.http.get(url)).timeout(TIMEOUT);
        self.answer_text(req).await
    }

    /// Revokes a license (admins): its device is unbound and it activates no more.
    pub async fn revoke_license(&self, uuid: &str) -> Result<(), Failure> {
        let path = format!("/v1/licenses/{uuid}/revoke");
        self.send(Method::POST, &path, None::<&()>, TIMEOUT).await
    }

    /// Revokes a token.
    pub async fn revoke_token(&self, token: &PublicId) -> Result<(), Failure> {
        let path = format!("/v1/pairing-tokens/{token}");
        self.send(Method::DELETE, &path, None::<&()>, TIMEOUT).await
    }

    /// The caller's devices.
    pub async fn devices(&self) -> Result<Vec<DeviceView>, Failure> {
        self.send(Method::GET, "/v1/devices", None::<&()>, TIMEOUT)
            .await
    }

    /// One device, with its newest rollout.
    pub async fn device(&self, dev_id: &str) -> Result<DeviceView, Failure> {
        let path = format!("/v1/devices/{dev_id}");
        self.send(Method::GET, &path, None::<&()>, TIMEOUT).await
    }

    /// Sends data points to a device.
    pub async fn send_command(
        &self,
        dev_id: &str,
        data: serde_json::Map<String, serde_json::Value>,
    ) -> Result<CommandAccepted, Failure> {
        let path = format!("/v1/devices/{dev_id}/commands");
        let body = CommandRequest { data };
        self.send(Method::POST, &path, Some(&body), TIMEOUT).await
    }

    /// Unbinds a device, and with `reset` factory-resets it too.
    pub async fn unbind(&self, dev_id: &str, reset: bool) -> Result<(), Failure> {
        let query = if reset { "?reset=true" } else { "" };
        let path = format!("/v1/devices/{dev_id}{query}");
        self.send(Method::DELETE, &path, None::<&()>, TIMEOUT).await
    }

    /// Offers one of the caller's devices to account `to`.
    pub async fn offer_transfer(&self, dev_id: &str, to: &str) -> Result<TransferOffer, Failure> {
        let path = format!("/v1/devices/{dev_id}/transfer");
        let body = TransferRequest { to: to.to_owned() };
        self.send(Method::POST, &path, Some(&body), TIMEOUT).await
    }

    /// Withdraws the caller's offer of a device.
    pub async fn cancel_transfer(&self, dev_id: &str) -> Result<(), Failure> {
        let path = format!("/v1/devices/{dev_id}/transfer");
        self.send(Method::DELETE, &path, None::<&()>, TIMEOUT).await
    }

    /// The live offers made to and by the caller.
    pub async fn transfers(&self) -> Result<Vec<TransferOffer>, Failure> {
        self.send(Method::GET, "/v1/transfers", None::<&()>, TIMEOUT)
            .await
    }

    /// Answers an offer made to the caller: `accept` or `decline`.
    pub async fn answer_transfer(&self, dev_id: &str, verb: &str) -> Result<(), Failure> {
        let path = format!("/v1/transfers/{dev_id}/{verb}");
        self.send(Method::POST, &path, None::<&()>, TIMEOUT).await
    }

    /// Uploads a signed component bundle (admins only).
    pub async fn upload_module(&self, bundle: Vec<u8>) -> Result<ModuleView, Failure> {
        let req = self
            .authorized(self.http.post(format!("{}/v1/modules", self.base)))
            .header("content-type", "application/octet-stream")
            .timeout(Duration::from_secs(120))
            .body(bundle);
        self.answer(req).await
    }

    /// Rolls a module out (admins only).
    pub async fn roll_out(
        &self,
        module_id: i64,
        targets: &RolloutRequest,
    ) -> Result<RolloutCreated, Failure> {
        let path = format!("/v1/modules/{module_id}/rollouts");
        self.send(Method::POST, &path, Some(targets), TIMEOUT).await
    }

    async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
        timeout: Duration,
    ) -> Result<T, Failure> {
        let mut req = self
            .authorized(self.http.request(method, format!("{}{path}", self.base)))
            .timeout(timeout);
        if let Some(body) = body {
            req = req.json(body);
        }
        self.answer(req).await
    }

    fn authorized(&self, mut req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        if let Some(span) = self.trace.as_ref().and_then(|t| t.child().ok()) {
            req = req.header("traceparent", span.to_string());
        }
        match &self.token {
            Some(token) => req.bearer_auth(token.expose()),
            None => req,
        }
    }

    /// The answer as `T` (an empty answer reads as `null`, which `()` takes), or the
    /// API's error.
    async fn answer<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<T, Failure> {
        let text = self.answer_text(req).await?;
        let text = if text.is_empty() { "null" } else { &text };
        serde_json::from_str(text).map_err(|e| {
            Failure::Other(format!(
                "the server's answer is not what this CLI expects ({e}): {text}"
            ))
        })
    }

    /// The answer's text on success, or the API's error.
    async fn answer_text(&self, req: reqwest::RequestBuilder) -> Result<String, Failure> {
        let resp = req.send().await.map_err(|e| {
            if e.is_timeout() {
                Failure::Timeout(format!(
                    "the server at {} did not answer in time",
                    self.base
                ))
            } else {
                Failure::Unreachable(format!("cannot reach the server at {}: {e}", self.base))
            }
        })?;
        let status = resp.status().as_u16();
        let text = resp
            .text()
            .await
            .map_err(|e| Failure::Unreachable(e.to_string()))?;
        if (200..300).contains(&status) {
            return Ok(text);
        }
        match serde_json::from_str::<ApiErrorBody>(&text) {
            Ok(body) => Err(Failure::from_api(
                status,
                &body.error.code,
                &body.error.message,
            )),
            Err(_) => Err(Failure::from_api(
                status,
                "internal",
                "the server refused the request",
            )),
        }
    }
}
