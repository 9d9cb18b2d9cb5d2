//! PEP 592 yanking: `PUT …/yank` with an optional JSON `{"reason": "…"}`, `DELETE` to restore.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use crate::app::AppState;
use crate::auth::Access;
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
    project: &str,
    filename: &str,
    reason: Option<String>,
) -> Result<HttpResponse, ApiError> {
    super::authorize(request, state, Access::Write)?;
    let name =
        parse_package_name(project).map_err(|error| ApiError::NotFound(error.to_string()))?;
    let record = state.index.store().set_yanked(&name, filename, reason)?;
    state.index.invalidate();
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "project": record.project,
        "filename": record.filename,
        "yanked": record.yanked.is_some(),
        "yanked-reason": record.yanked,
    })))
}

pub async fn yank(
    request: HttpRequest,
    path: web::Path<(String, String)>,
    body: Option<web::Json<YankRequest>>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (project, filename) = path.into_inner();
    let reason = body
        .map(|body| body.into_inner().reason)
        .unwrap_or_default();
    set_yanked(&request, &state, &project, &filename, Some(reason)).await
}

pub async fn unyank(
    request: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (project, filename) = path.into_inner();
    set_yanked(&request, &state, &project, &filename, None).await
}
