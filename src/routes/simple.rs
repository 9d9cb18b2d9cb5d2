//! `/simple/` and `/simple/<project>/`: PEP 503 paths, PEP 691 negotiation.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::app::AppState;
use crate::auth::Access;
use crate::error::ApiError;
use crate::index::{Format, RenderedPage, negotiate};
use crate::pypi::parse_package_name;

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
    let page = state.index.project_page(&name, format)?;
    let page =
        page.ok_or_else(|| ApiError::NotFound(format!("project `{name}` is not in this index")))?;
    Ok(respond(&request, page, format))
}
