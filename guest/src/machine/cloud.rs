//! The HTTP phases: IoT DNS, activation and MQTT credential refresh, and how their
//! failures are retried. Transient failures (no answer, 5xx, 429) retry with jittered
//! backoff while the pairing window lasts; definitive answers end the pairing at once.

use tether_proto::activation::{
    ActivateRequest, ActivateResponse, CredentialsResponse, PhaseTimings,
};
use tether_proto::api_error::ApiErrorBody;
use tether_proto::iot_dns::{EndpointKey, UrlConfigItem, UrlConfigRequest, UrlConfigResponse};
use tether_proto::{ErrorCode, Secret};

use super::{
    Action, Activation, Clock, Endpoints, HttpRequest, Level, Machine, NetState, Purpose, SignWith,
    Timer, keys, log, to_json,
};

/// How long a pairing keeps retrying transient failures: a token's default lifetime.
pub const PAIRING_WINDOW_SECS: u64 = 600;
/// Deadline of one cloud request.
const REQUEST_TIMEOUT_MS: u32 = 10_000;
/// Earliest credential refresh, in seconds from now.
const MIN_REFRESH_SECS: u64 = 10;

/// A wall clock that moved more than this while a request was in flight was set by the
/// cloud's answer (requests time out after 10 s; signatures allow 300 s of skew).
const CLOCK_JUMP_SECS: u64 = 120;

/// The answers that end a pairing at once.
const DEFINITIVE: &[ErrorCode] = &[
    ErrorCode::TokenInvalid,
    ErrorCode::TokenExpired,
    ErrorCode::TokenUsed,
    ErrorCode::DevAlreadyBound,
    ErrorCode::SignatureError,
];

impl Machine {
    /// After joining the router: a pairing looks up its region's endpoints; an activated
    /// device reuses fresh cached endpoints, or looks them up again.
    pub(super) fn after_wifi(&mut self, clock: Clock) -> Vec<Action> {
        if let Some(creds) = &self.pending {
            let region = creds.token().region().to_owned();
            return self.look_up(clock, &region);
        }
        match &self.endpoints {
            Some(e) if self.activation.is_some() && clock.unix < e.fresh_until => {
                self.enter(NetState::MqttConnecting, clock);
                self.connect_mqtt()
            }
            Some(e) if self.activation.is_some() => {
                let region = e.region.clone();
                self.look_up(clock, &region)
            }
            _ => Vec::new(),
        }
    }

    /// Whether the device talks to the cloud over TLS: its factory IoT DNS URL is HTTPS.
    /// Then it asks only for TLS endpoints (with their CAs) and takes no plain one.
    pub(super) fn tls(&self) -> bool {
        self.identity.iot_dns_url.starts_with("https://")
    }

    /// Enters the endpoint lookup and asks IoT DNS for `region`.
    pub(super) fn look_up(&mut self, clock: Clock, region: &str) -> Vec<Action> {
        self.enter(NetState::EndpointLookup, clock);
        self.start(self.dns_request(region))
    }

    pub(super) fn dns_request(&self, region: &str) -> HttpRequest {
        let tls = self.tls();
        let keys = if tls {
            [EndpointKey::HttpsSelfUrl, EndpointKey::MqttsSelfUrl]
        } else {
            [EndpointKey::HttpUrl, EndpointKey::MqttUrl]
        };
        let body = UrlConfigRequest {
            region: region.to_owned(),
            env: "pro".into(),
            config: keys.map(|key| UrlConfigItem { key, need_ca: tls }).to_vec(),
        };
        HttpRequest {
            purpose: Purpose::Dns,
            url: format!(
                "{}/v2/url_config",
                self.identity.iot_dns_url.trim_end_matches('/')
            ),
            path: "/v2/url_config".into(),
            body: to_json(&body),
            sign: None,
            timeout_ms: REQUEST_TIMEOUT_MS,
            trace: self.pending.as_ref().and(self.trace.clone()),
        }
    }

    fn activate_request(&self) -> Option<HttpRequest> {
        let creds = self.pending.as_ref()?;
        let endpoints = self.endpoints.as_ref()?;
        let body = ActivateRequest {
            uuid: self.identity.uuid.clone(),
            product_key: self.identity.product_key.clone(),
            token: creds.token.clone(),
            sw_ver: self.identity.sw_ver.clone(),
            module_version: crate::VERSION.to_owned(),
            reset: self.reset,
            timings: Some(PhaseTimings {
                wifi_ms: self.timings.wifi_ms,
                dns_ms: self.timings.dns_ms,
                ..PhaseTimings::default()
            }),
        };
        let path = "/v1/devices/activate".to_owned();
        Some(HttpRequest {
            purpose: Purpose::Activate,
            url: format!("{}{path}", endpoints.http_url.trim_end_matches('/')),
            path,
            body: to_json(&body),
            sign: Some(SignWith::Authkey),
            timeout_ms: REQUEST_TIMEOUT_MS,
            trace: self.trace.clone(),
        })
    }

    fn credentials_request(&self) -> Option<HttpRequest> {
        let activation = self.activation.as_ref()?;
        let endpoints = self.endpoints.as_ref()?;
        let path = format!("/v1/devices/{}/mqtt-credentials", activation.dev_id);
        Some(HttpRequest {
            purpose: Purpose::Credentials,
            url: format!("{}{path}", endpoints.http_url.trim_end_matches('/')),
            path,
            body: b"{}".to_vec(),
            sign: Some(SignWith::DevSecret),
            timeout_ms: REQUEST_TIMEOUT_MS,
            trace: None,
        })
    }

    pub(super) fn start(&mut self, request: HttpRequest) -> Vec<Action> {
        self.inflight = Some((request.purpose, None));
        vec![Action::Http(request)]
    }

    /// Asks for fresh MQTT credentials (before they expire, or after a refusal).
    pub(super) fn refresh_credentials(&mut self) -> Vec<Action> {
        match self.credentials_request() {
            Some(request) => self.start(request),
            None => Vec::new(),
        }
    }

    /// Takes the answer to the request in flight; answers to anything else are stale.
    fn take_inflight(&mut self, id: u32) -> Option<Purpose> {
        match self.inflight {
            Some((purpose, Some(started))) if started == id => {
                self.inflight = None;
                Some(purpose)
            }
            _ => None,
        }
    }

    pub(super) fn on_http_response(
        &mut self,
        clock: Clock,
        id: u32,
        status: u16,
        retry_after: Option<u32>,
        body: &[u8],
    ) -> Vec<Action> {
        if self.is_report(id) {
            return self.on_report_answer(Some(status));
        }
        let Some(purpose) = self.take_inflight(id) else {
            return Vec::new();
        };
        let success = (200..300).contains(&status);
        if purpose == Purpose::Dns && self.state == NetState::Online && !success {
            return self.endpoint_refresh_failed(&format!("status {status}"));
        }
        if success {
            self.cloud_backoff.reset();
            return match purpose {
                Purpose::Dns => self.on_endpoints(clock, body),
                Purpose::Activate => self.on_activated(clock, body),
                Purpose::Credentials => self.on_credentials(clock, body),
                Purpose::Report => Vec::new(),
            };
        }
        let answer = serde_json::from_slice::<ApiErrorBody>(body).ok();
        let name = answer
            .as_ref()
            .map_or("", |a| a.error.code.as_str())
            .to_owned();
        if status == 429 || status >= 500 {
            let code = if status == 429 {
                ErrorCode::Busy
            } else {
                ErrorCode::NetworkUnreachable
            };
            return self.retry_later(clock, code, retry_after);
        }
        if name == "signature_error"
            && matches!(purpose, Purpose::Activate | Purpose::Credentials)
            && clock.unix.abs_diff(self.inflight_signed_at) > CLOCK_JUMP_SECS
        {
            // The host set its clock by the cloud's answer: the request was signed at a
            // wrong time, which says nothing about the binding. Sign it again now.
            let mut actions = vec![log(
                Level::Warn,
                "the clock was wrong when the request was signed; sending it again".into(),
            )];
            actions.extend(self.retry_cloud(clock));
            return actions;
        }
        let code = match purpose {
            Purpose::Dns => ErrorCode::DnsFailed,
            Purpose::Activate => ErrorCode::from_name(&name)
                .filter(|c| DEFINITIVE.contains(c))
                .unwrap_or(ErrorCode::ActivateFailed),
            Purpose::Credentials if name == "device_unknown" || name == "signature_error" => {
                // The cloud no longer knows this device: it was unbound while away.
                return self.unbind(clock, false, "the cloud no longer knows this device");
            }
            Purpose::Credentials => {
                return self.retry_later(clock, ErrorCode::MqttAuthFailed, retry_after);
            }
            Purpose::Report => return Vec::new(),
        };
        let mut actions = vec![log(
            Level::Warn,
            format!("the cloud answered {status} {name}"),
        )];
        actions.extend(self.fail_pairing(clock, code));
        actions
    }

    pub(super) fn on_http_failed(&mut self, clock: Clock, id: u32, code: ErrorCode) -> Vec<Action> {
        if self.is_report(id) {
            return self.on_report_answer(None);
        }
        match self.take_inflight(id) {
            None => Vec::new(),
            Some(Purpose::Dns) if self.state == NetState::Online => {
                self.endpoint_refresh_failed(code.name())
            }
            Some(_) => self.retry_later(clock, code, None),
        }
    }

    /// Schedules the current phase's request again, unless the pairing window is over.
    fn retry_later(
        &mut self,
        clock: Clock,
        code: ErrorCode,
        retry_after: Option<u32>,
    ) -> Vec<Action> {
        self.inflight = None;
        if self.pending.is_some() {
            if clock.unix.saturating_sub(self.pairing_since) >= PAIRING_WINDOW_SECS {
                return self.fail_pairing(clock, ErrorCode::Timeout);
            }
            self.last_error = Some(code);
        } else if code == ErrorCode::TlsFailed {
            // Shown in the status until the device is online again; retried over TLS only.
            self.last_error = Some(code);
        }
        let delay = self
            .cloud_backoff
            .next_ms()
            .max(retry_after.unwrap_or(0).saturating_mul(1000));
        let mut actions = vec![
            Action::SetTimer(Timer::CloudRetry, delay),
            log(
                Level::Warn,
                format!("cloud request failed ({code}); retrying in {delay} ms"),
            ),
        ];
        if let Some(creds) = &self.pending {
            let pending = super::Pending {
                ssid: creds.ssid.clone(),
                last_error: Some(code),
            };
            actions.push(Action::KvSet(keys::PENDING, to_json(&pending)));
        }
        actions
    }

    pub(super) fn retry_cloud(&mut self, clock: Clock) -> Vec<Action> {
        match self.state {
            NetState::EndpointLookup => {
                let region = match (&self.pending, &self.endpoints) {
                    (Some(creds), _) => creds.token().region().to_owned(),
                    (None, Some(e)) => e.region.clone(),
                    (None, None) => return Vec::new(),
                };
                self.start(self.dns_request(&region))
            }
            NetState::Activating => match self.activate_request() {
                Some(request) => self.start(request),
                None => self.fail_pairing(clock, ErrorCode::Internal),
            },
            NetState::MqttConnecting | NetState::Online | NetState::Offline => {
                self.refresh_credentials()
            }
            _ => Vec::new(),
        }
    }

    fn on_endpoints(&mut self, clock: Clock, body: &[u8]) -> Vec<Action> {
        let answer = serde_json::from_slice::<UrlConfigResponse>(body).ok();
        let tls = self.tls();
        let found = answer.as_ref().and_then(|a| {
            let (http, mqtt) = if tls {
                (a.https_self_url.as_ref()?, a.mqtts_self_url.as_ref()?)
            } else {
                (a.http_url.as_ref()?, a.mqtt_url.as_ref()?)
            };
            // A TLS device takes only an HTTPS API and at least one CA to verify it.
            if tls && (!http.addr.starts_with("https://") || a.ca_arr.is_empty()) {
                return None;
            }
            Some((
                http.addr.clone(),
                mqtt.addr.clone(),
                a.ca_arr.clone(),
                a.ttl,
            ))
        });
        let online = self.state == NetState::Online;
        let Some((http_url, mqtt_url, ca, ttl)) = found else {
            if online {
                return self.endpoint_refresh_failed("an answer without usable endpoints");
            }
            return self.fail_pairing(clock, ErrorCode::DnsFailed);
        };
        let region = match (&self.pending, &self.endpoints) {
            (Some(creds), _) => creds.token().region().to_owned(),
            (None, Some(e)) => e.region.clone(),
            (None, None) => String::new(),
        };
        let endpoints = Endpoints {
            region,
            http_url,
            mqtt_url,
            ca,
            fresh_until: clock.unix + u64::from(ttl),
        };
        let mut actions = vec![
            Action::KvSet(keys::ENDPOINTS, to_json(&endpoints)),
            endpoints.for_host(),
        ];
        self.endpoints = Some(endpoints);
        if online {
            // A background lookup: the session goes on; new CAs are trusted from now on.
            actions.push(self.plan_endpoint_refresh(clock));
            return actions;
        }
        if self.pending.is_some() {
            self.timings.dns_ms = Some(self.elapsed_ms(clock));
            self.enter(NetState::Activating, clock);
            match self.activate_request() {
                Some(request) => actions.extend(self.start(request)),
                None => actions.extend(self.fail_pairing(clock, ErrorCode::Internal)),
            }
            // The cloud is reachable: what earlier attempts could not tell it goes now.
            actions.extend(self.send_report());
        } else {
            self.enter(NetState::MqttConnecting, clock);
            actions.extend(self.connect_mqtt());
        }
        actions
    }

    fn on_activated(&mut self, clock: Clock, body: &[u8]) -> Vec<Action> {
        let Ok(resp) = serde_json::from_slice::<ActivateResponse>(body) else {
            return self.fail_pairing(clock, ErrorCode::ActivateFailed);
        };
        let activation = Activation {
            dev_id: resp.dev_id.clone(),
            mqtt_url: resp.mqtt.url,
            client_id: resp.mqtt.client_id,
            username: resp.mqtt.username,
            password: resp.mqtt.password,
            expires_at: resp.mqtt.expires_at,
            topic_in: resp.topics.inbound,
            topic_out: resp.topics.out,
        };
        self.timings.activate_ms = Some(self.elapsed_ms(clock));
        self.reset = false;
        let mut actions = vec![
            Action::SetBinding(Some((
                resp.dev_id.clone(),
                Secret::new(resp.dev_secret.expose()),
            ))),
            Action::KvSet(keys::ACTIVATION, to_json(&activation)),
            Action::KvDelete(keys::RESET),
            log(Level::Info, format!("activated as {}", resp.dev_id)),
        ];
        self.activation = Some(activation);
        self.enter(NetState::MqttConnecting, clock);
        actions.extend(self.connect_mqtt());
        actions
    }

    fn on_credentials(&mut self, clock: Clock, body: &[u8]) -> Vec<Action> {
        let (Ok(resp), Some(activation)) = (
            serde_json::from_slice::<CredentialsResponse>(body),
            self.activation.as_mut(),
        ) else {
            return self.retry_later(clock, ErrorCode::MqttAuthFailed, None);
        };
        activation.mqtt_url = resp.mqtt.url;
        activation.password = resp.mqtt.password;
        activation.expires_at = resp.mqtt.expires_at;
        let mut actions = vec![
            Action::KvSet(keys::ACTIVATION, to_json(&*activation)),
            log(Level::Info, "MQTT credentials renewed".into()),
        ];
        if self.state == NetState::Online {
            actions.push(Action::SetTimer(
                Timer::RefreshCredentials,
                self.refresh_delay_ms(clock),
            ));
        } else {
            self.enter(NetState::MqttConnecting, clock);
            actions.extend(self.connect_mqtt());
        }
        actions
    }

    /// When to renew the MQTT password: at 80 % of its remaining life.
    pub(super) fn refresh_delay_ms(&self, clock: Clock) -> u32 {
        let left = self
            .activation
            .as_ref()
            .map_or(0, |a| a.expires_at.saturating_sub(clock.unix));
        super::refresh::secs_to_ms((left * 4 / 5).max(MIN_REFRESH_SECS))
    }
}
