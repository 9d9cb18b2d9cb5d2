//! PEP 592 yanking: `PUT …/yank` with an optional JSON `{"reason": "…"}`, `DELETE` to restore.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::audit;
use super::body::{self, JSON_LIMIT};
use crate::app::AppState;
use crate::auth::{Access, Caller};
use crate::error::ApiError;
use crate::pypi::parse_package_name;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct YankRequest {
    #[serde(default)]
    reason: String,
}

async fn set_yanked(
    request: &HttpRequest,
    state: &AppState,
    caller: &Caller,
    (project, filename): (String, String),
    reason: Option<String>,
) -> Result<HttpResponse, ApiError> {
    let name =
        parse_package_name(&project).map_err(|error| ApiError::NotFound(error.to_string()))?;
    let (action, outcome) = if reason.is_some() {
        ("yank", "yanked")
    } else {
        ("restore", "restored")
    };
    let record = state.index.set_yanked(&name, &filename, reason).await?;
    let object = format!("{name}/{filename}");
    audit::record(request, caller, action, &object, outcome, StatusCode::OK);
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "project": record.project,
        "filename": record.filename,
        "yanked": record.yanked.is_some(),
        "yanked-reason": record.yanked,
    })))
}

/// An empty body yanks without a reason; a body that is not a valid `YankRequest` is
/// refused and yanks nothing.
pub async fn yank(
    request: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let caller = super::authorize(&request, &state, Access::Write)?;
    let body: Option<YankRequest> =
        body::optional_json(&request, payload, JSON_LIMIT, state.request_timeout).await?;
    let reason = body.unwrap_or_default().reason;
    set_yanked(&request, &state, &caller, path.into_inner(), Some(reason)).await
}

pub async fn unyank(
    request: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let caller = super::authorize(&request, &state, Access::Write)?;
    set_yanked(&request, &state, &caller, path.into_inner(), None).await
}
