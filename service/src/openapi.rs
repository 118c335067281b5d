//! The OpenAPI document (`/openapi.json`) and a browsable page made from it (`/docs`),
//! rendered here so it works offline with no script from elsewhere.

use std::fmt::Write as _;

use axum::response::Html;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use tether_proto::ErrorCode;

use crate::app::AppState;

/// Error codes of the API beyond the pairing ones, with their statuses.
const API_CODES: &[(&str, u16, &str)] = &[
    (
        "bad_request",
        400,
        "the body, query or path is malformed; the message names the problem",
    ),
    (
        "unsupported_media_type",
        415,
        "the body is not labelled application/json",
    ),
    (
        "payload_too_large",
        413,
        "the body is larger than 64 KiB (16 MiB for bundles)",
    ),
    (
        "unauthorized",
        401,
        "no valid access token, or wrong username or password",
    ),
    ("forbidden", 403, "the endpoint needs the admin role"),
    (
        "not_found",
        404,
        "no such endpoint, or nothing of that kind that belongs to the caller",
    ),
    ("region_unknown", 404, "IoT DNS does not serve that region"),
    (
        "device_unknown",
        404,
        "no licence (or no bound device) for the signer",
    ),
    ("conflict", 409, "a uniqueness conflict"),
    (
        "bundle_malformed",
        400,
        "not a component bundle, or a damaged one",
    ),
    (
        "bundle_bad_signature",
        400,
        "the bundle's signature does not match its manifest",
    ),
    (
        "bundle_corrupted",
        400,
        "the component does not match the signed hash",
    ),
    (
        "bundle_untrusted_key",
        403,
        "the bundle is signed by a key that is not configured",
    ),
    ("rate_limited", 429, "too many requests; see Retry-After"),
];

/// One endpoint: method, path, who may call it, summary, request schema, success status.
struct Endpoint {
    method: &'static str,
    path: &'static str,
    auth: &'static str,
    summary: &'static str,
    success: u16,
}

const ENDPOINTS: &[Endpoint] = &[
    Endpoint {
        method: "post",
        path: "/v1/auth/token",
        auth: "none",
        summary: "Log in: {username, password} → {access_token, token_type, expires_in}",
        success: 200,
    },
    Endpoint {
        method: "post",
        path: "/v1/pairing-tokens",
        auth: "user",
        summary: "Create a pairing token: {ttl_secs?, max_devices?} → {token, region, expires_at, max_devices}",
        success: 201,
    },
    Endpoint {
        method: "get",
        path: "/v1/pairing-tokens/{token}",
        auth: "owner",
        summary: "A token's state, devices and failures; ?wait=N (≤ 60) long-polls for a change",
        success: 200,
    },
    Endpoint {
        method: "delete",
        path: "/v1/pairing-tokens/{token}",
        auth: "owner",
        summary: "Revoke a token",
        success: 204,
    },
    Endpoint {
        method: "post",
        path: "/v2/url_config",
        auth: "none",
        summary: "IoT DNS: {region, env, config:[{key, need_ca}]} → endpoints by key, caArr, ttl",
        success: 200,
    },
    Endpoint {
        method: "post",
        path: "/v1/devices/activate",
        auth: "device (authkey)",
        summary: "Activate with a pairing token → {dev_id, dev_secret, mqtt, topics, server_time}",
        success: 200,
    },
    Endpoint {
        method: "post",
        path: "/v1/devices/{dev_id}/mqtt-credentials",
        auth: "device (dev-secret)",
        summary: "Fresh MQTT credentials → {mqtt, server_time}",
        success: 200,
    },
    Endpoint {
        method: "post",
        path: "/v1/pairing-reports",
        auth: "device",
        summary: "Report how pairing with a token went: {token, outcome, code?, phase?, message?, timings}",
        success: 204,
    },
    Endpoint {
        method: "get",
        path: "/v1/devices",
        auth: "user",
        summary: "The caller's devices with online, last_seen, last_report and versions",
        success: 200,
    },
    Endpoint {
        method: "get",
        path: "/v1/devices/{dev_id}",
        auth: "owner",
        summary: "One device",
        success: 200,
    },
    Endpoint {
        method: "delete",
        path: "/v1/devices/{dev_id}",
        auth: "owner",
        summary: "Unbind: revoke credentials, notify the device (protocol 8; 11 with ?reset=true), close its session",
        success: 204,
    },
    Endpoint {
        method: "post",
        path: "/v1/devices/{dev_id}/commands",
        auth: "owner",
        summary: "Send data points {data:{…}} to the device (protocol 5)",
        success: 202,
    },
    Endpoint {
        method: "post",
        path: "/v1/licenses",
        auth: "admin",
        summary: "Issue device identities: {product_key, count} → [{uuid, authkey, product_key}]",
        success: 201,
    },
    Endpoint {
        method: "post",
        path: "/v1/modules",
        auth: "admin",
        summary: "Store a signed component bundle (application/octet-stream, up to 16 MiB), checked against the module keys → {id, version, sequence, sha256, size, created_at}",
        success: 201,
    },
    Endpoint {
        method: "get",
        path: "/v1/modules",
        auth: "admin",
        summary: "The stored modules",
        success: 200,
    },
    Endpoint {
        method: "post",
        path: "/v1/modules/{id}/rollouts",
        auth: "admin",
        summary: "Roll a module out: {product_key} or {devices: [dev_id]} → {rollout_id, targeted, notified}; online devices get protocol 15 at once, the others when they come online",
        success: 201,
    },
    Endpoint {
        method: "get",
        path: "/v1/modules/{id}/bundle",
        auth: "device (HMAC, dev-secret)",
        summary: "Download a bundle rolled out to the signing device",
        success: 200,
    },
    Endpoint {
        method: "post",
        path: "/v1/devices/{dev_id}/module-status",
        auth: "device (HMAC, dev-secret)",
        summary: "Report an update outcome: {version, sequence, result: probation/applied/refused/rolled_back, reason?, running}",
        success: 204,
    },
    Endpoint {
        method: "get",
        path: "/.well-known/jwks.json",
        auth: "none",
        summary: "Public keys that verify device MQTT passwords (EdDSA)",
        success: 200,
    },
    Endpoint {
        method: "get",
        path: "/healthz",
        auth: "none",
        summary: "Liveness",
        success: 200,
    },
    Endpoint {
        method: "get",
        path: "/readyz",
        auth: "none",
        summary: "Readiness: database, broker and the service's MQTT client",
        success: 200,
    },
    Endpoint {
        method: "get",
        path: "/metrics",
        auth: "none",
        summary: "Prometheus metrics",
        success: 200,
    },
];

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/openapi.json", get(|| async { Json(document()) }))
        .route("/docs", get(|| async { Html(page()) }))
}

fn all_codes() -> Vec<(String, u16, String)> {
    let pairing = ErrorCode::ALL.iter().map(|c| {
        let status = crate::error::ApiError::pairing(*c).status().as_u16();
        (c.name().to_owned(), status, c.description().to_owned())
    });
    API_CODES
        .iter()
        .map(|(code, status, text)| ((*code).to_owned(), *status, (*text).to_owned()))
        .chain(pairing)
        .collect()
}

/// The OpenAPI 3.1 document.
pub fn document() -> Value {
    let mut paths = serde_json::Map::new();
    for e in ENDPOINTS {
        let security = match e.auth {
            "none" => json!([]),
            a if a.starts_with("device") => json!([{"tetherHmac": []}]),
            _ => json!([{"bearer": []}]),
        };
        let op = json!({
            "summary": e.summary,
            "description": format!("Caller: {}.", e.auth),
            "security": security,
            "responses": {
                e.success.to_string(): {"description": "success"},
                "default": {"description": "an error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
            },
        });
        let entry = paths.entry(e.path.to_owned()).or_insert_with(|| json!({}));
        entry[e.method] = op;
    }
    let codes: Vec<Value> = all_codes()
        .into_iter()
        .map(|(code, status, text)| json!({"code": code, "status": status, "meaning": text}))
        .collect();
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Tether cloud API", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "tetherHmac": {"type": "apiKey", "in": "header", "name": "Authorization",
                    "description": "Tether-HMAC uuid=<uuid>|dev_id=<dev_id>,t=<unix secs>,nonce=<16 hex>,sig=<hex HMAC-SHA256 of METHOD\\nPATH\\nt\\nnonce\\nhex(SHA-256(body))>"},
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
                        "code": {"type": "string", "enum": codes.iter().map(|c| c["code"].clone()).collect::<Vec<_>>()},
                        "message": {"type": "string"},
                    }}},
                },
            },
            "x-error-codes": codes,
        },
    })
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The docs page.
fn page() -> String {
    let mut rows = String::new();
    for e in ENDPOINTS {
        let _ = write!(
            rows,
            "<tr><td><code>{}</code></td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            e.method.to_uppercase(),
            escape(e.path),
            escape(e.auth),
            e.success,
            escape(e.summary)
        );
    }
    let mut codes = String::new();
    for (code, status, text) in all_codes() {
        let _ = write!(
            codes,
            "<tr><td><code>{code}</code></td><td>{status}</td><td>{}</td></tr>",
            escape(&text)
        );
    }
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Tether cloud API</title>\
         <style>body{{font-family:sans-serif;max-width:70em;margin:2em auto}}td{{padding:.3em .6em;vertical-align:top}}\
         tr:nth-child(even){{background:#f3f3f3}}</style></head><body>\
         <h1>Tether cloud API</h1><p>Machine-readable: <a href=\"/openapi.json\">/openapi.json</a>. \
         Every error is <code>{{\"error\": {{\"code\", \"message\"}}}}</code>.</p>\
         <h2>Endpoints</h2><table><tr><th>Method</th><th>Path</th><th>Caller</th><th>Success</th><th>What</th></tr>{rows}</table>\
         <h2>Error codes</h2><table><tr><th>Code</th><th>Status</th><th>Meaning</th></tr>{codes}</table></body></html>"
    )
}
