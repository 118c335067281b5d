//! The cloud API as the provisioner uses it, with its errors turned into [`Failure`]s.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::failure::Failure;

/// A client for one server, with or without an access token.
#[derive(Debug, Clone)]
pub struct Api {
    base: String,
    http: reqwest::Client,
    token: Option<String>,
}

impl Api {
    /// A client for `server`.
    pub fn new(server: &str) -> Result<Self, Failure> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| Failure::Other(e.to_string()))?;
        Ok(Self {
            base: server.trim_end_matches('/').to_owned(),
            http,
            token: None,
        })
    }

    /// Uses `token` for later requests.
    pub fn with_token(mut self, token: String) -> Self {
        self.token = Some(token);
        self
    }

    /// Posts raw bytes (`application/octet-stream`) and returns the JSON answer.
    pub async fn upload(&self, path: &str, bytes: Vec<u8>) -> Result<Value, Failure> {
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/octet-stream")
            .timeout(Duration::from_secs(120))
            .body(bytes);
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        self.answer(req).await
    }

    /// Sends a request and returns the JSON answer (null for an empty one).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        timeout: Duration,
    ) -> Result<Value, Failure> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .timeout(timeout);
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        self.answer(req).await
    }

    async fn answer(&self, req: reqwest::RequestBuilder) -> Result<Value, Failure> {
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
        let value: Value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if (200..300).contains(&status) {
            return Ok(value);
        }
        let code = value["error"]["code"].as_str().unwrap_or("internal");
        let message = value["error"]["message"]
            .as_str()
            .unwrap_or("the server refused the request");
        Err(Failure::from_api(status, code, message))
    }

    /// Logs in and returns the access token.
    pub async fn login(&self, user: &str, password: &str) -> Result<String, Failure> {
        let answer = self
            .call(
                Method::POST,
                "/v1/auth/token",
                Some(json!({"username": user, "password": password})),
                Duration::from_secs(30),
            )
            .await?;
        answer["access_token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| Failure::Other("the login answer has no token".into()))
    }
}
