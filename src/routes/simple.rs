//! `/simple/` and `/simple/<project>/`: PEP 503 paths, PEP 691 negotiation.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::app::AppState;
use crate::auth::Access;
use crate::build::missing_wheels;
use crate::catalog::{self, Listing};
use crate::config::OnMiss;
use crate::error::ApiError;
use crate::index::{Format, RenderedPage, negotiate, project_detail};
use crate::pypi::simple::ProjectDetail;
use crate::pypi::{PackageName, Target, parse_package_name, target_from_user_agent};

pub(super) fn redirect(location: String) -> HttpResponse {
    HttpResponse::MovedPermanently()
        .insert_header((header::LOCATION, location))
        .finish()
}

pub(super) fn format_for(request: &HttpRequest) -> Result<Format, ApiError> {
    let accept = request
        .headers()
        .get(header::ACCEPT)
        .map(|value| value.to_str().unwrap_or_default());
    negotiate(accept).ok_or_else(|| ApiError::NotAcceptable(accept.unwrap_or_default().to_string()))
}

pub(super) fn respond(request: &HttpRequest, page: RenderedPage, format: Format) -> HttpResponse {
    let not_modified = request
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.split(',').any(|tag| tag.trim() == page.etag));
    let mut response = if not_modified {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((header::VARY, "Accept"))
        .insert_header((header::ETAG, page.etag))
        .insert_header((header::CACHE_CONTROL, "max-age=60, public"));
    if not_modified {
        return response.finish();
    }
    response.content_type(format.content_type()).body(page.body)
}

pub async fn index_redirect() -> HttpResponse {
    redirect("/simple/".to_string())
}

pub async fn index(
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    super::authorize(&request, &state, Access::Read)?;
    let format = format_for(&request)?;
    Ok(respond(
        &request,
        state.index.project_list_page(format)?,
        format,
    ))
}

pub async fn project_redirect(path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let name = parse_package_name(&path).map_err(|error| ApiError::NotFound(error.to_string()))?;
    Ok(redirect(format!("/simple/{name}/")))
}

pub async fn project(
    request: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    super::authorize(&request, &state, Access::Read)?;
    let raw = path.into_inner();
    let name = parse_package_name(&raw).map_err(|error| ApiError::NotFound(error.to_string()))?;
    if name.as_ref() != raw {
        return Ok(redirect(format!("/simple/{name}/")));
    }
    let format = format_for(&request)?;
    match catalog::listing(&state.index, &state.mirror, &name).await? {
        None => Err(not_in_index(&name)),
        Some(Listing::Local) => {
            if let Some(target) = client_target(&request, &state) {
                let project = state.index.store().project(&name)?;
                if let Some(project) = project {
                    let detail = project_detail(&project, &state.index.store().files(&name)?);
                    queue_missing(&state, &name, &detail, target);
                }
            }
            let page = state
                .index
                .project_page(&name, format)?
                .ok_or_else(|| not_in_index(&name))?;
            Ok(respond(&request, page, format))
        }
        Some(Listing::Merged { detail, stale }) => {
            if let Some(target) = client_target(&request, &state) {
                queue_missing(&state, &name, &detail, target);
            }
            let mut response = respond(
                &request,
                state.index.render_uncached(&detail, format),
                format,
            );
            if let Some(error) = stale {
                mark_stale(&mut response, &error.to_string());
            }
            Ok(response)
        }
    }
}

/// pip and uv say what they run on: the farm's target for that client, when on-demand
/// builds are on and the farm builds for it.
fn client_target(request: &HttpRequest, state: &web::Data<AppState>) -> Option<Target> {
    if !state.on_demand.infer_from_user_agent || state.on_demand.on_miss == OnMiss::Off {
        return None;
    }
    let user_agent = request.headers().get(header::USER_AGENT)?.to_str().ok()?;
    target_from_user_agent(user_agent).and_then(|client| state.builds.target_for_client(&client))
}

/// Queues, in the background, what the page lacks for `target`.
fn queue_missing(
    state: &web::Data<AppState>,
    name: &PackageName,
    detail: &ProjectDetail,
    target: Target,
) {
    if missing_wheels(detail, &target, state.on_demand.releases).is_empty() {
        return;
    }
    let (state, name, detail) = (state.clone(), name.clone(), detail.clone());
    tokio::spawn(async move {
        state
            .builds
            .queue_missing(&name, &detail, &target, state.on_demand.releases)
            .await;
    });
}

pub(super) fn not_in_index(name: &PackageName) -> ApiError {
    ApiError::NotFound(format!(
        "project `{name}` is not in this index or its upstreams"
    ))
}

/// A cached page served because the upstream failed: RFC 7234's `Warning: 110` plus the
/// cause, so clients and operators can tell.
pub(super) fn mark_stale(response: &mut HttpResponse, cause: &str) {
    let headers = response.headers_mut();
    headers.insert(
        header::WARNING,
        header::HeaderValue::from_static("110 edelweiss \"Response is Stale\""),
    );
    let cause: String = cause
        .chars()
        .filter(|c| c.is_ascii() && !c.is_ascii_control())
        .collect();
    if let Ok(value) = header::HeaderValue::from_str(&cause) {
        headers.insert(header::HeaderName::from_static("x-edelweiss-stale"), value);
    }
}
