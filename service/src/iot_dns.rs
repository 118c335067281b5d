//! IoT DNS (`POST /v2/url_config`): tells a device where its region's API and broker are.
//! This service's own region comes from its listen addresses unless public URLs are
//! configured; further regions come from the config file.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use tether_proto::iot_dns::{Endpoint, EndpointKey, UrlConfigRequest, UrlConfigResponse};

use crate::app::AppState;
use crate::config::RegionEndpoints;
use crate::error::{ApiError, ApiResult};
use crate::json::ApiJson;

/// How long devices may cache an answer, in seconds, unless configured (`--dns-ttl`): an
/// online device looks its endpoints up again this often, which is how a new CA reaches it.
pub const TTL_SECS: u32 = 3600;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route("/v2/url_config", post(url_config))
}

/// The endpoints of `region`, if this service answers for it.
pub fn endpoints(state: &AppState, region: &str) -> Option<RegionEndpoints> {
    if region == state.config.region {
        return Some(state.own_endpoints.clone());
    }
    state.config.extra_regions.get(region).cloned()
}

/// IoT DNS: the endpoints of a region.
#[utoipa::path(post, path = "/v2/url_config", tag = "devices", security(()),
    request_body = UrlConfigRequest,
    responses((status = 200, description = "the endpoints asked for", body = UrlConfigResponse), (status = 400, description = "malformed body, query or path", body = tether_proto::api_error::ApiErrorBody), (status = 404, description = "region_unknown", body = tether_proto::api_error::ApiErrorBody), (status = 413, description = "the body is too large", body = tether_proto::api_error::ApiErrorBody), (status = 415, description = "the body is not JSON", body = tether_proto::api_error::ApiErrorBody)))]
pub(crate) async fn url_config(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<UrlConfigRequest>,
) -> ApiResult<Json<UrlConfigResponse>> {
    let region = endpoints(&state, &req.region)
        .ok_or_else(|| ApiError::RegionUnknown(req.region.clone()))?;
    let mut resp = UrlConfigResponse {
        ttl: state.config.dns_ttl_secs,
        ..UrlConfigResponse::default()
    };
    let https = region.http_url.starts_with("https://");
    for item in &req.config {
        // A TLS endpoint is given only under its TLS key, so a device that asks for a
        // plain one is never sent to TLS unknowingly, nor the other way round.
        let api = Some(Endpoint {
            addr: region.http_url.clone(),
        });
        let broker = Some(Endpoint {
            addr: region.mqtt_url.clone(),
        });
        match item.key {
            EndpointKey::HttpUrl if !https => resp.http_url = api,
            EndpointKey::HttpsSelfUrl if https => resp.https_self_url = api,
            EndpointKey::MqttUrl if !region.mqtt_tls => resp.mqtt_url = broker,
            EndpointKey::MqttsSelfUrl if region.mqtt_tls => resp.mqtts_self_url = broker,
            _ => {}
        }
        if item.need_ca && req.region == state.config.region {
            resp.ca_arr.clone_from(&state.ca_arr);
        }
    }
    Ok(Json(resp))
}
