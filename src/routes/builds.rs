//! `/api/v1/builds`: request a build (token), list builds, read one with its log.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};

use super::audit;
use super::body::{self, JSON_LIMIT};
use crate::app::AppState;
use crate::auth::Access;
use crate::error::ApiError;
use crate::farm::wire::BuildRequest;
use crate::farm::{BuildRecord, Requested};

fn view(record: &BuildRecord, log: Option<String>) -> serde_json::Value {
    let mut value = serde_json::to_value(record).unwrap_or_default();
    // Which token holds a lease is the server's business, not a reader's.
    if let Some(lease) = value["lease"].as_object_mut() {
        lease.remove("credential");
    }
    value["log_url"] = serde_json::json!(format!("/api/v1/builds/{}", record.id));
    if let Some(log) = log {
        value["log"] = serde_json::json!(log);
    }
    value
}

pub async fn request(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let caller = super::authorize(&request, &state, Access::Write)?;
    let body: BuildRequest =
        body::json(&request, payload, JSON_LIMIT, state.request_timeout).await?;
    let BuildRequest {
        project,
        version,
        target,
    } = body;
    let sdist = state.builds.find_sdist(&project, &version).await?;
    let (record, requested) = state
        .builds
        .request(&project, &version, sdist, &target)
        .await?;
    let (mut response, requested) = match requested {
        Requested::Cached => (HttpResponse::Ok(), "cached"),
        Requested::Joined => (HttpResponse::Accepted(), "joined"),
        Requested::Queued => (HttpResponse::Accepted(), "queued"),
    };
    let object = format!("{project} {version} {target} build {}", record.id);
    let status = if requested == "cached" {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    audit::record(&request, &caller, "build", &object, requested, status);
    let mut body = view(&record, None);
    body["requested"] = serde_json::json!(requested);
    Ok(response.json(body))
}

pub async fn list(
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    super::authorize(&request, &state, Access::Read)?;
    let builds: Vec<serde_json::Value> = state
        .builds
        .list()
        .await?
        .iter()
        .map(|record| view(record, None))
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "builds": builds })))
}

pub async fn show(
    request: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    super::authorize(&request, &state, Access::Read)?;
    let id = path.into_inner();
    let record = state
        .builds
        .record(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no build {id}")))?;
    let log = state.builds.log_text(&record).await;
    Ok(HttpResponse::Ok().json(view(&record, log)))
}
