//! W3C trace context on every API request. A valid `traceparent` from the caller (a device
//! or a provisioner) joins its trace; a missing or malformed one starts a new trace, as
//! the specification asks. The request's span logs the trace id, and the answer carries
//! the service's span of that trace in `traceresponse`, so a caller that sent none can
//! still find the service's log lines.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tether_proto::trace::TraceParent;

/// The header a caller's trace context arrives in.
pub const TRACEPARENT: &str = "traceparent";
/// The header the service's own span of the trace leaves in.
pub const TRACERESPONSE: &str = "traceresponse";

/// The middleware: puts this request's [`TraceParent`] (the service's span) in its
/// extensions and in the answer.
pub async fn context(mut req: Request, next: Next) -> Response {
    let incoming = req
        .headers()
        .get(TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .and_then(|t| TraceParent::parse(t).ok());
    let ours = match incoming {
        Some(parent) => parent.child(),
        None => TraceParent::generate(),
    }
    .ok();
    if let Some(trace) = ours {
        req.extensions_mut().insert(trace);
    }
    let mut response = next.run(req).await;
    if let Some(value) = ours.and_then(|t| HeaderValue::from_str(&t.to_string()).ok()) {
        response.headers_mut().insert(TRACERESPONSE, value);
    }
    response
}

/// The trace id a request's span logs: 32 hex digits, or `-` when the random source failed.
pub fn trace_id_of(req: &Request) -> String {
    req.extensions()
        .get::<TraceParent>()
        .map_or_else(|| "-".to_owned(), TraceParent::trace_id_hex)
}
