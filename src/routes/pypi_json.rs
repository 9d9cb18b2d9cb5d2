//! PyPI's JSON API (`/pypi/<project>/json`, `/pypi/<project>/<version>/json`) over the same
//! listing as `/simple/<project>/`, so `pip-compile --generate-hashes` takes every digest
//! from here instead of downloading each file to hash it. pip-tools derives the URL from
//! the index URL: 7.6 asks `<index without simple/><project>/json`, earlier versions
//! `<index>/pypi/<project>/json` (`/simple/pypi/…` for an index URL ending in `/`), so each
//! of those answers too, and under `/t/<target>/` with that target's view.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;

use super::simple::{mark_stale, not_in_index};
use super::targets::parse_target;
use crate::app::AppState;
use crate::auth::Access;
use crate::catalog;
use crate::error::ApiError;
use crate::index::View;
use crate::index::pypi_json::{has_release, latest_release, project_json};
use crate::pypi::simple::ProjectDetail;
use crate::pypi::{PackageName, Target, Version, excerpt, parse_package_name};

/// The absolute URLs depend on how the client reached this server.
const VARY: &str = "Host, Forwarded, X-Forwarded-Host, X-Forwarded-Proto";

/// `scheme://host[:port]` as the client reached this server: what a proxy says in
/// `Forwarded` or `X-Forwarded-Host`/`-Proto`, else the `Host` header. pip joins the same
/// origin to the `/files/` links of the simple page, so the URLs here equal its links.
fn public_base(request: &HttpRequest) -> Result<String, ApiError> {
    let info = request.connection_info();
    let (scheme, host) = (info.scheme(), info.host());
    let plain_host = !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"-.:[]_".contains(&byte));
    let base = format!("{scheme}://{host}");
    let parses = url::Url::parse(&base).is_ok_and(|url| url.path() == "/");
    if !matches!(scheme, "http" | "https") || !plain_host || !parses {
        return Err(ApiError::BadRequest(format!(
            "the request's host `{}` (scheme `{}`) is not a host[:port] to give URLs under",
            excerpt(host),
            excerpt(scheme)
        )));
    }
    Ok(base)
}

fn respond(request: &HttpRequest, body: Bytes) -> HttpResponse {
    // A strong validator: the sha256 of the document.
    let etag = format!("\"{}\"", crate::pypi::Sha256Digest::of(&body));
    let not_modified = request
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.split(',').any(|tag| tag.trim() == etag));
    let mut response = match not_modified {
        true => HttpResponse::NotModified(),
        false => HttpResponse::Ok(),
    };
    response
        .insert_header((header::VARY, VARY))
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, "max-age=60, public"));
    match not_modified {
        true => response.finish(),
        false => response.content_type("application/json").body(body),
    }
}

/// What a JSON API path names: `project` always, `target` and `version` where it has them.
struct DocumentPath {
    name: PackageName,
    target: Option<Target>,
    version: Option<Version>,
}

fn parse_path(request: &HttpRequest) -> Result<DocumentPath, ApiError> {
    let path = request.match_info();
    let project = path.get("project").unwrap_or_default();
    let name =
        parse_package_name(project).map_err(|error| ApiError::NotFound(error.to_string()))?;
    let target = path.get("target").map(parse_target).transpose()?;
    let version = path
        .get("version")
        .map(|text| {
            text.parse::<Version>().map_err(|_| {
                ApiError::NotFound(format!("`{}` is not a PEP 440 version", excerpt(text)))
            })
        })
        .transpose()?;
    Ok(DocumentPath {
        name,
        target,
        version,
    })
}

/// The release asked for, if the page lists a file of it with a sha256, else the latest.
fn release(detail: &ProjectDetail, path: &DocumentPath) -> Result<Version, ApiError> {
    match &path.version {
        Some(version) => Some(version.clone()).filter(|version| has_release(detail, version)),
        None => latest_release(detail),
    }
    .ok_or_else(|| {
        ApiError::NotFound(format!(
            "project `{}` has no such release with a sha256",
            path.name
        ))
    })
}

/// Every JSON API route.
pub async fn document(
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    super::authorize(&request, &state, Access::Read)?;
    let path = parse_path(&request)?;
    let base = public_base(&request)?;
    let (mut detail, stale) = catalog::detail(&state.index, &state.mirror, &path.name)
        .await?
        .ok_or_else(|| not_in_index(&path.name))?;
    if path.target.is_some() && state.on_demand.target_view() == View::WheelsOnly {
        detail = View::WheelsOnly.apply(&detail).into_owned();
    }
    let release = release(&detail, &path)?;
    let metadata = catalog::release_metadata(&state.store, &detail, &release).await;
    let with_releases = path.version.is_none();
    let document = project_json(&detail, &base, &release, metadata.as_ref(), with_releases);
    // Strings, numbers and lists: serializing cannot fail.
    let body = serde_json::to_vec(&document).expect("JSON API document serializes");
    let mut response = respond(&request, Bytes::from(body));
    if let Some(error) = stale {
        mark_stale(&mut response, &error.to_string());
    }
    Ok(response)
}
