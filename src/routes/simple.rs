//! `/simple/` and `/simple/<project>/`: PEP 503 paths, PEP 691 negotiation.

use std::sync::Arc;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::app::AppState;
use crate::auth::Access;
use crate::catalog::ServedPage;
use crate::error::ApiError;
use crate::index::{CachedPage, Format, choose_coding, negotiate};
use crate::pypi::{PackageName, parse_package_name};

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

/// A page in the coding the client's `Accept-Encoding` picks (compressed once per kept
/// page), with a validator per coding.
pub(super) fn respond(
    request: &HttpRequest,
    state: &AppState,
    page: &Arc<CachedPage>,
    format: Format,
) -> HttpResponse {
    let headers = request.headers();
    let accept_encoding = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|value| value.to_str().ok());
    let encoded = state
        .index
        .pages()
        .encoded(page, choose_coding(accept_encoding));
    let not_modified = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.split(',').any(|tag| tag.trim() == encoded.etag));
    let mut response = if not_modified {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((header::VARY, "Accept, Accept-Encoding"))
        .insert_header((header::ETAG, encoded.etag))
        .insert_header((header::CACHE_CONTROL, "max-age=60, public"));
    if not_modified {
        return response.finish();
    }
    let coding = encoded.coding.header_value();
    if let Some(coding) = coding {
        response.insert_header((header::CONTENT_ENCODING, coding));
    }
    state.metrics.page_sent(coding.unwrap_or("identity"));
    response
        .content_type(format.content_type())
        .body(encoded.body)
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
    let page = state.index.project_list_page(format.body()).await?;
    Ok(respond(&request, &state, &page, format))
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
    let user_agent = request
        .headers()
        .get(header::USER_AGENT)
        .and_then(|value| value.to_str().ok());
    let served = state
        .on_demand
        .simple_page(&name, user_agent, format.body())
        .await?
        .ok_or_else(|| not_in_index(&name))?;
    Ok(respond_served(&request, &state, &served, format))
}

/// A project page, marked stale when its upstream's part is.
pub(super) fn respond_served(
    request: &HttpRequest,
    state: &AppState,
    served: &ServedPage,
    format: Format,
) -> HttpResponse {
    let mut response = respond(request, state, &served.page, format);
    if let Some(error) = &served.stale {
        mark_stale(&mut response, &error.to_string());
    }
    response
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
