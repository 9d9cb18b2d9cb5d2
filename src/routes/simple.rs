//! `/simple/` and `/simple/<project>/`: PEP 503 paths, PEP 691 negotiation.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::app::AppState;
use crate::auth::Access;
use crate::error::ApiError;
use crate::index::{Format, RenderedPage, merged_detail, negotiate};
use crate::metadata::FileOrigin;
use crate::pypi::{PackageName, parse_package_name};

fn redirect(location: String) -> HttpResponse {
    HttpResponse::MovedPermanently()
        .insert_header((header::LOCATION, location))
        .finish()
}

fn format_for(request: &HttpRequest) -> Result<Format, ApiError> {
    let accept = request
        .headers()
        .get(header::ACCEPT)
        .map(|value| value.to_str().unwrap_or_default());
    negotiate(accept).ok_or_else(|| ApiError::NotAcceptable(accept.unwrap_or_default().to_string()))
}

fn respond(request: &HttpRequest, page: RenderedPage, format: Format) -> HttpResponse {
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
    let local = state.index.store().files(&name)?;
    let uploaded = local.iter().any(|file| file.origin == FileOrigin::Uploaded);
    if state.mirror.hides_upstream(&name, uploaded) {
        let page = state.index.project_page(&name, format)?;
        let page = page.ok_or_else(|| not_in_index(&name))?;
        return Ok(respond(&request, page, format));
    }
    let upstream = match state.mirror.project_page(&name).await {
        Ok(upstream) => upstream,
        Err(error) if !local.is_empty() => {
            tracing::warn!(project = %name, %error, "upstream failed; serving local files only");
            None
        }
        Err(error) => return Err(error.into()),
    };
    if upstream.is_none() && local.is_empty() {
        return Err(not_in_index(&name));
    }
    let detail = merged_detail(
        name.as_ref(),
        upstream.as_ref().map(|page| &page.detail),
        &local,
    );
    let mut response = respond(
        &request,
        state.index.render_uncached(&detail, format),
        format,
    );
    if let Some(error) = upstream.and_then(|page| page.stale) {
        mark_stale(&mut response, &error.to_string());
    }
    Ok(response)
}

fn not_in_index(name: &PackageName) -> ApiError {
    ApiError::NotFound(format!(
        "project `{name}` is not in this index or its upstreams"
    ))
}

/// A cached page served because the upstream failed: RFC 7234's `Warning: 110` plus the
/// cause, so clients and operators can tell.
fn mark_stale(response: &mut HttpResponse, cause: &str) {
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
