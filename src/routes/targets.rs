//! `/t/<target>/simple/…`: the simple index pinned to one target. A project page through it
//! queues builds for releases that lack the target's wheel and, with `on_miss = "wait"`,
//! waits for them (keeping the connection alive) so the first install gets the wheel.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use super::simple::{format_for, not_in_index, redirect, respond, respond_served};
use crate::app::AppState;
use crate::auth::Access;
use crate::error::ApiError;
use crate::farm::TargetPage;
use crate::pypi::{Target, parse_package_name};

pub(super) fn parse_target(text: &str) -> Result<Target, ApiError> {
    text.parse()
        .map_err(|error: crate::pypi::TargetError| ApiError::NotFound(error.to_string()))
}

pub async fn index(
    request: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    super::authorize(&request, &state, Access::Read)?;
    parse_target(&path)?;
    let format = format_for(&request)?;
    let page = state.index.project_list_page(format.body()).await?;
    Ok(respond(&request, &state, &page, format))
}

pub async fn project_redirect(path: web::Path<(String, String)>) -> Result<HttpResponse, ApiError> {
    let (target, project) = path.into_inner();
    let name =
        parse_package_name(&project).map_err(|error| ApiError::NotFound(error.to_string()))?;
    Ok(redirect(format!(
        "/t/{}/simple/{name}/",
        parse_target(&target)?
    )))
}

pub async fn project(
    request: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    super::authorize(&request, &state, Access::Read)?;
    let (target_text, raw) = path.into_inner();
    let target = parse_target(&target_text)?;
    let name = parse_package_name(&raw).map_err(|error| ApiError::NotFound(error.to_string()))?;
    if name.as_ref() != raw || target.to_string() != target_text {
        return Ok(redirect(format!("/t/{target}/simple/{name}/")));
    }
    let format = format_for(&request)?;
    let page = state
        .on_demand
        .target_page(&name, target, format.body())
        .await?
        .ok_or_else(|| not_in_index(&name))?;
    Ok(match page {
        TargetPage::Ready(served) => respond_served(&request, &state, &served, format),
        TargetPage::Waiting(body) => HttpResponse::Ok()
            .insert_header((header::VARY, "Accept, Accept-Encoding"))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .content_type(format.content_type())
            .streaming(body),
    })
}
