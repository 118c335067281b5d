//! HTTP requests with a deadline and a response size limit, enforced while the body
//! streams in, so a hostile server cannot run the board out of memory. Without a station
//! link requests fail as unreachable, as on a real device.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tether_proto::ErrorCode;
use tokio::task::JoinHandle;

use super::{Events, wit};
use crate::runtime::wit::Event;
use crate::runtime::wit::http::{Failure, Method, Request, Response};
use crate::trust::CloudTrust;
use crate::wifi::WifiBackend;

/// Largest response body handed to the component.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

pub struct HttpProvider {
    wifi: Arc<dyn WifiBackend>,
    events: Events,
    inflight: Arc<Mutex<HashMap<u32, JoinHandle<()>>>>,
}

impl HttpProvider {
    pub fn new(wifi: Arc<dyn WifiBackend>, events: Events) -> Self {
        Self {
            wifi,
            events,
            inflight: Arc::default(),
        }
    }

    /// Starts `request` with a client that trusts what `trust` does.
    pub fn start(&mut self, id: u32, request: Request, trust: &CloudTrust) {
        if trust.pinned() && !request.url.starts_with("https://") {
            let _ = self.events.send(Event::HttpFailed(Failure {
                id,
                code: wit(ErrorCode::TlsFailed),
                message: "refused: this device pins a cloud CA and talks https:// only".into(),
            }));
            return;
        }
        let (client, wifi, events, inflight) = (
            trust.http(),
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
    // The cloud's time, for a board whose clock is wrong (`clock.rs`).
    if let Some(date) = response
        .headers()
        .get(reqwest::header::DATE)
        .and_then(|v| v.to_str().ok())
    {
        crate::clock::learn(date);
    }
    let headers = response
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    let body = match read_capped(response, MAX_RESPONSE_BYTES).await {
        Ok(body) => body,
        Err(BodyError::Http(e)) => return Err(classify(e)),
        Err(e @ BodyError::TooLarge(_)) => {
            return Err((ErrorCode::NetworkUnreachable, e.to_string()));
        }
    };
    Ok(Response {
        id,
        status,
        headers,
        body,
    })
}

/// Why a response body was not read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// It is larger than allowed; reading stopped there.
    #[error("the response is larger than {0} bytes")]
    TooLarge(usize),
    /// The transfer failed.
    #[error(transparent)]
    Http(#[from] reqwest::Error),
}

/// Reads a response body of at most `max` bytes: refused from its `Content-Length` when
/// that says more, and otherwise stopped as soon as more arrives. Memory stays within
/// `max` plus one chunk, whatever the server sends.
pub async fn read_capped(
    mut response: reqwest::Response,
    max: usize,
) -> Result<Vec<u8>, BodyError> {
    if response.content_length().is_some_and(|n| n > max as u64) {
        return Err(BodyError::TooLarge(max));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > max {
            return Err(BodyError::TooLarge(max));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn classify(e: reqwest::Error) -> (ErrorCode, String) {
    let code = if crate::trust::is_tls_failure(&e) {
        ErrorCode::TlsFailed
    } else if e.is_timeout() {
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

#[cfg(test)]
mod tests {
    use tether_proto::Secret;

    use super::*;
    use crate::config::{SimAp, SimBehaviour};
    use crate::wifi::sim::SimWifi;

    async fn joined() -> SimWifi {
        let ap = SimAp {
            ssid: "home".into(),
            passwd: Secret::new("12345678"),
            behaviour: SimBehaviour::Normal,
            delay_ms: 0,
            rssi: -40,
        };
        let wifi = SimWifi::new(vec![ap]);
        wifi.connect("home", "12345678").await.expect("joins");
        wifi
    }

    /// Sends a request to `url` through a fresh client on `wifi`.
    async fn fetch(wifi: &SimWifi, id: u32, url: String) -> Result<Response, (ErrorCode, String)> {
        send(&reqwest::Client::new(), wifi, id, request(url)).await
    }

    fn request(url: String) -> Request {
        Request {
            method: Method::Post,
            url,
            headers: vec![],
            body: b"{}".to_vec(),
            timeout_ms: 2_000,
        }
    }

    #[tokio::test]
    async fn without_a_station_link_requests_are_unreachable() {
        let client = reqwest::Client::new();
        let wifi = SimWifi::new(vec![]);
        let err = send(&client, &wifi, 1, request("http://127.0.0.1:9/".into()))
            .await
            .expect_err("no link");
        assert_eq!(err.0, ErrorCode::NetworkUnreachable);
    }

    #[tokio::test]
    async fn https_is_attempted_with_tls_not_refused_as_an_unknown_scheme() {
        // A server that accepts and hangs up: the TLS handshake fails, which shows the
        // client speaks TLS (a client without it would refuse the URL outright).
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                drop(stream);
            }
        });
        let wifi = joined().await;
        let err = fetch(&wifi, 2, format!("https://127.0.0.1:{port}/"))
            .await
            .expect_err("handshake fails");
        assert_eq!(err.0, ErrorCode::NetworkUnreachable, "{}", err.1);
    }

    /// A server that answers every request with `head` and then `body_len` bytes of
    /// body, sent in 8 KiB chunks; how many body bytes it wrote before the client left.
    async fn flooding_server(head: String, body_len: usize) -> (u16, JoinHandle<usize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds");
        let port = listener.local_addr().expect("addr").port();
        let task = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let Ok((mut stream, _)) = listener.accept().await else {
                return 0;
            };
            let mut buf = vec![0u8; 4096];
            let _ = stream.read(&mut buf).await;
            if stream.write_all(head.as_bytes()).await.is_err() {
                return 0;
            }
            let chunk = vec![b'x'; 8192];
            let mut sent = 0;
            while sent < body_len {
                if stream.write_all(&chunk).await.is_err() {
                    break;
                }
                sent += chunk.len();
            }
            sent
        });
        (port, task)
    }

    #[tokio::test]
    async fn an_endless_or_oversized_response_is_refused_while_it_streams() {
        let wifi = joined().await;
        // No Content-Length, closed-delimited, 1 GiB: the client stops early.
        let head = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_owned();
        let (port, server) = flooding_server(head, 1 << 30).await;
        let err = fetch(&wifi, 4, format!("http://127.0.0.1:{port}/"))
            .await
            .expect_err("refused");
        assert_eq!(err.0, ErrorCode::NetworkUnreachable);
        assert!(err.1.contains("larger than"), "{}", err.1);
        let sent = server.await.expect("server task");
        assert!(
            sent < 64 << 20,
            "the client read {sent} bytes before giving up"
        );
        // A Content-Length over the limit is refused before the body.
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", 1 << 30);
        let (port, _server) = flooding_server(head, 0).await;
        let err = fetch(&wifi, 5, format!("http://127.0.0.1:{port}/"))
            .await
            .expect_err("refused");
        assert!(err.1.contains("larger than"), "{}", err.1);
    }

    #[tokio::test]
    async fn responses_carry_status_headers_and_body() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            if let Ok((mut stream, _)) = listener.accept().await {
                let mut buf = vec![0u8; 4096];
                let _ = stream.read(&mut buf).await;
                let _ = stream.write_all(b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\nContent-Length: 2\r\n\r\n{}").await;
            }
        });
        let wifi = joined().await;
        let response = fetch(&wifi, 3, format!("http://127.0.0.1:{port}/"))
            .await
            .expect("answered");
        assert_eq!(
            (response.id, response.status, response.body.as_slice()),
            (3, 429, &b"{}"[..])
        );
        assert!(
            response
                .headers
                .iter()
                .any(|(k, v)| k == "retry-after" && v == "7")
        );
    }
}
