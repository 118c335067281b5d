//! HTTP requests with a deadline and a response size limit. Without a station link they
//! fail as unreachable, as on a real device.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tether_proto::ErrorCode;
use tokio::task::JoinHandle;

use super::{Events, wit};
use crate::runtime::wit::Event;
use crate::runtime::wit::http::{Failure, Method, Request, Response};
use crate::wifi::WifiBackend;

/// Largest response body handed to the component.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

pub struct HttpProvider {
    client: reqwest::Client,
    wifi: Arc<dyn WifiBackend>,
    events: Events,
    inflight: Arc<Mutex<HashMap<u32, JoinHandle<()>>>>,
}

impl HttpProvider {
    pub fn new(wifi: Arc<dyn WifiBackend>, events: Events) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()?;
        Ok(Self {
            client,
            wifi,
            events,
            inflight: Arc::default(),
        })
    }

    pub fn start(&mut self, id: u32, request: Request) {
        let (client, wifi, events, inflight) = (
            self.client.clone(),
            self.wifi.clone(),
            self.events.clone(),
            self.inflight.clone(),
        );
        let task = tokio::spawn(async move {
            let event = match send(&client, wifi.as_ref(), id, request).await {
                Ok(response) => Event::HttpResponse(response),
                Err((code, message)) => Event::HttpFailed(Failure {
                    id,
                    code: wit(code),
                    message,
                }),
            };
            inflight
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
            let _ = events.send(event);
        });
        self.inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, task);
    }

    pub fn cancel(&mut self, id: u32) {
        if let Some(task) = self
            .inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id)
        {
            task.abort();
        }
    }
}

async fn send(
    client: &reqwest::Client,
    wifi: &dyn WifiBackend,
    id: u32,
    request: Request,
) -> Result<Response, (ErrorCode, String)> {
    if !wifi.link_up() {
        return Err((ErrorCode::NetworkUnreachable, "no station link".into()));
    }
    let method = match request.method {
        Method::Get => reqwest::Method::GET,
        Method::Post => reqwest::Method::POST,
        Method::Put => reqwest::Method::PUT,
        Method::Delete => reqwest::Method::DELETE,
    };
    let mut builder = client
        .request(method, &request.url)
        .timeout(Duration::from_millis(u64::from(request.timeout_ms)))
        .body(request.body);
    for (name, value) in request.headers {
        builder = builder.header(name, value);
    }
    let response = builder.send().await.map_err(classify)?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    let mut body = response.bytes().await.map_err(classify)?.to_vec();
    body.truncate(MAX_RESPONSE_BYTES);
    Ok(Response {
        id,
        status,
        headers,
        body,
    })
}

fn classify(e: reqwest::Error) -> (ErrorCode, String) {
    let code = if e.is_timeout() {
        ErrorCode::Timeout
    } else if e.is_connect() {
        ErrorCode::NetworkUnreachable
    } else if e.is_builder() {
        ErrorCode::InvalidParm
    } else {
        ErrorCode::NetworkUnreachable
    };
    (code, e.to_string())
}
