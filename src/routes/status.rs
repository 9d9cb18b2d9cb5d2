//! `/` and `/builds/<id>`: the status pages.

use actix_web::{HttpRequest, HttpResponse, web};

use crate::app::AppState;
use crate::auth::Access;
use crate::error::ApiError;
use crate::status;

pub async fn overview(
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    super::authorize(&request, &state, Access::Read)?;
    let builds = state.builds.list().await?;
    let (page_cache, file_cache) = state.metrics.cache_lookups();
    let upstreams = state.metrics.upstream_outcomes();
    let configured: Vec<String> = state.mirror.upstream_names();
    let view = status::Overview {
        builds: &builds,
        files_stored: state.metrics.files_stored(),
        page_cache,
        file_cache,
        upstreams: &upstreams,
        configured_upstreams: &configured,
        targets: &state.builds.target_names(),
    };
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(status::overview(&view)))
}

pub async fn build(
    request: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    super::authorize(&request, &state, Access::Read)?;
    let record = state
        .builds
        .record(&path)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no build {path}")))?;
    let log = state.builds.log_text(&record).await;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(status::build(&record, log.as_deref())))
}
