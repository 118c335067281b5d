//! The user's and the devices' side of the cluster test through the balancer: the API as
//! the account "ann" (tokens, commands, presence), signed activations as the devices make
//! them, and the load that runs across a fault, with what it counted.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::fleet::Device;

/// A licence as `tether-service license issue` prints it.
pub struct Licence {
    uuid: String,
    authkey: String,
}

impl Licence {
    /// One JSON line of `license issue`.
    pub fn parse(line: &str) -> Self {
        let v: Value = serde_json::from_str(line).expect("a licence as JSON");
        let field = |k: &str| v[k].as_str().expect("licence field").to_owned();
        Self {
            uuid: field("uuid"),
            authkey: field("authkey"),
        }
    }
}

/// What an activation gave the device.
pub struct Activated {
    pub dev_id: String,
    pub password: String,
}

/// The API through the balancer, logged in.
pub struct Api {
    http: reqwest::Client,
    base: String,
    bearer: String,
}

impl Api {
    /// Logs `user` in at `https://localhost:port`, trusting only `ca`.
    pub async fn new(port: u16, ca: &[u8], user: &str, password: &str) -> Self {
        let http = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(ca).expect("the CA"))
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client");
        let mut api = Self {
            http,
            base: format!("https://localhost:{port}"),
            bearer: String::new(),
        };
        let (status, body) = api
            .call(
                "POST",
                "/v1/auth/token",
                Some(json!({"username": user, "password": password})),
            )
            .await
            .expect("the API answers");
        assert_eq!(status, StatusCode::OK, "{body}");
        api.bearer = body["access_token"].as_str().expect("a token").to_owned();
        api
    }

    /// A request with the bearer; `Err` when no answer came (a connection cut).
    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<(StatusCode, Value), String> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if !self.bearer.is_empty() {
            request = request.bearer_auth(&self.bearer);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|e| e.to_string())?;
        let status = response.status();
        let body = response.json().await.unwrap_or(Value::Null);
        Ok((status, body))
    }

    /// A pairing token for `limit` devices.
    pub async fn token(&self, limit: usize) -> String {
        let (status, body) = self
            .call(
                "POST",
                "/v1/pairing-tokens",
                Some(json!({"max_devices": limit, "ttl_secs": 3600})),
            )
            .await
            .expect("the API answers");
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["token"].as_str().expect("a token").to_owned()
    }

    /// Activates `licence` with `token`: the answer, or the status and error code (or
    /// the transport error) of a refusal.
    pub async fn activate(&self, licence: &Licence, token: &str) -> Result<Activated, String> {
        let request = tether_proto::activation::ActivateRequest {
            uuid: licence.uuid.clone(),
            product_key: tether_e2e::PRODUCT_KEY.into(),
            token: tether_proto::Secret::new(token),
            sw_ver: "1.0.0".into(),
            module_version: "0.1.0".into(),
            reset: false,
            timings: None,
        };
        let (body, header) =
            tether_service::local::signed_activation(&licence.uuid, &licence.authkey, &request)
                .expect("signed");
        let response = self
            .http
            .post(format!("{}/v1/devices/activate", self.base))
            .header("authorization", header)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| format!("no answer: {e}"))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status != StatusCode::OK {
            return Err(format!("{} {}", status.as_u16(), error_code(&body)));
        }
        Ok(Activated {
            dev_id: body["dev_id"].as_str().expect("dev_id").to_owned(),
            password: body["mqtt"]["password"]
                .as_str()
                .expect("password")
                .to_owned(),
        })
    }

    /// Posts command `seq` to `dev_id`, waiting up to 5 s for the device to acknowledge
    /// it: the status (200 delivered, or a refusal), or the transport error.
    pub async fn command(&self, dev_id: &str, seq: u64) -> Answer {
        self.call(
            "POST",
            &format!("/v1/devices/{dev_id}/commands?wait=5"),
            Some(json!({"data": {"1": seq}})),
        )
        .await
    }

    /// Waits until every device holds a session and the API shows it online; how long
    /// that took. Fails after `limit`.
    pub async fn until_online(&self, devices: &[Device], limit: Duration) -> Duration {
        let since = Instant::now();
        loop {
            let connected = devices.iter().all(Device::connected);
            let online = match self.call("GET", "/v1/devices", None).await {
                Ok((StatusCode::OK, Value::Array(list))) => devices.iter().all(|d| {
                    list.iter()
                        .any(|v| v["dev_id"] == d.dev_id.as_str() && v["online"] == true)
                }),
                _ => false,
            };
            if connected && online {
                return since.elapsed();
            }
            assert!(
                since.elapsed() < limit,
                "devices not back online within {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// One command to every device, numbered from `first`; what became of them.
    pub async fn command_round(&self, devices: &[Device], first: u64) -> Value {
        let mut commands = Commands::default();
        for (i, device) in devices.iter().enumerate() {
            let seq = first + i as u64;
            commands
                .sent
                .push((seq, i, self.command(&device.dev_id, seq).await));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        commands.verdict(devices)
    }
}

/// The code of an error body (`{"error": {"code", "message"}}`).
fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("(no error code)")
}

/// An API answer, or the transport error when none came.
type Answer = Result<(StatusCode, Value), String>;

/// Commands sent: (seq, device index, answer).
#[derive(Default)]
pub struct Commands {
    sent: Vec<(u64, usize, Answer)>,
}

impl Commands {
    /// Confirmed ones (200: the device acknowledged) that the device has, or lost;
    /// refusals by status and code; requests whose answer never came.
    pub fn verdict(&self, devices: &[Device]) -> Value {
        let mut refused: BTreeMap<String, u32> = BTreeMap::new();
        let (mut accepted, mut delivered, mut cut) = (0, 0, 0);
        let mut lost = Vec::new();
        for (seq, i, answer) in &self.sent {
            match answer {
                Ok((StatusCode::OK, _)) => {
                    accepted += 1;
                    if devices[*i].got(*seq) {
                        delivered += 1;
                    } else {
                        lost.push(*seq);
                    }
                }
                Ok((status, body)) => {
                    let code = format!("{} {}", status.as_u16(), error_code(body));
                    *refused.entry(code).or_default() += 1;
                }
                Err(_) => cut += 1,
            }
        }
        json!({
            "sent": self.sent.len(),
            "confirmed": accepted,
            "delivered": delivered,
            "lost": lost.len(),
            "lost_seqs": lost,
            "refused": refused,
            "requests_cut": cut,
        })
    }
}

/// Activations made: (token index, answer).
#[derive(Default)]
pub struct Activations {
    made: Vec<(usize, Result<Activated, String>)>,
}

impl Activations {
    /// Acknowledged ones found or lost, devices bound past a token's limit, refusals.
    pub async fn verdict(&self, api: &Api, tokens: &[String], limit: usize) -> Value {
        let mut refused: BTreeMap<String, u32> = BTreeMap::new();
        let mut per_token = vec![0usize; tokens.len()];
        let (mut acknowledged, mut lost) = (0, 0);
        for (token, answer) in &self.made {
            match answer {
                Ok(activated) => {
                    acknowledged += 1;
                    per_token[*token] += 1;
                    let path = format!("/v1/devices/{}", activated.dev_id);
                    if !matches!(api.call("GET", &path, None).await, Ok((StatusCode::OK, _))) {
                        lost += 1;
                    }
                }
                Err(why) => *refused.entry(why.clone()).or_default() += 1,
            }
        }
        // What the cloud itself counts per token, beside what the devices were told.
        let mut over_used = per_token.iter().filter(|&&n| n > limit).count();
        for token in tokens {
            let public = tether_proto::token::PairingToken::parse(token)
                .expect("a pairing token")
                .public()
                .to_string();
            let (_, status) = api
                .call("GET", &format!("/v1/pairing-tokens/{public}"), None)
                .await
                .expect("the API answers");
            if status["devices"].as_array().map_or(0, Vec::len) > limit {
                over_used += 1;
            }
        }
        json!({
            "made": self.made.len(),
            "acknowledged": acknowledged,
            "lost": lost,
            "over_used": over_used,
            "refused": refused,
        })
    }
}

/// What the load did.
pub struct Outcome {
    pub commands: Commands,
    pub activations: Activations,
}

/// For `length`: a command every 20 ms to the next device in turn, and the activation
/// of `licences` one by one, spread over the tokens in turn.
pub async fn run(
    api: &Api,
    devices: &[Device],
    (licences, tokens): (&[Licence], &[String]),
    length: Duration,
) -> Outcome {
    let started = Instant::now();
    let commands = async {
        let mut commands = Commands::default();
        let mut seq = 0u64;
        while started.elapsed() < length {
            let i = seq as usize % devices.len();
            commands
                .sent
                .push((seq, i, api.command(&devices[i].dev_id, seq).await));
            seq += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        commands
    };
    let activations = async {
        let mut activations = Activations::default();
        let pause = length / (licences.len() as u32 + 1);
        for (i, licence) in licences.iter().enumerate() {
            let token = i % tokens.len();
            activations
                .made
                .push((token, api.activate(licence, &tokens[token]).await));
            tokio::time::sleep(pause).await;
        }
        activations
    };
    let (commands, activations) = tokio::join!(commands, activations);
    Outcome {
        commands,
        activations,
    }
}
