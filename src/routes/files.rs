//! `/files/<sha256>/<filename>`: immutable, content-addressed downloads, and the PEP 658
//! `<filename>.metadata` beside each wheel.

use actix_web::body::SizedStream;
use actix_web::http::{Method, header};
use actix_web::{HttpRequest, HttpResponse, web};
use futures::StreamExt;

use super::range::{RangeRequest, parse_range};
use crate::app::AppState;
use crate::auth::Access;
use crate::error::ApiError;
use crate::pypi::Sha256Digest;

const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// Which blob a URL names: the file itself, or its extracted METADATA.
fn resolve(state: &AppState, digest: &str, filename: &str) -> Result<Sha256Digest, ApiError> {
    let not_found = || ApiError::NotFound(format!("no file {filename} with sha256 {digest}"));
    let digest: Sha256Digest = digest.parse().map_err(|_| not_found())?;
    let store = state.index.store();
    if let Some(record) = store.file_by_digest(digest, filename)? {
        return Ok(record.sha256);
    }
    let wheel = filename.strip_suffix(".metadata").ok_or_else(not_found)?;
    let record = store.file_by_digest(digest, wheel)?.ok_or_else(not_found)?;
    record
        .metadata_sha256
        .ok_or_else(|| ApiError::NotFound(format!("{wheel} has no metadata file")))
}

fn etag_matches(request: &HttpRequest, etag: &str) -> bool {
    let header = request
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok());
    header.is_some_and(|value| {
        value.split(',').any(|tag| {
            let tag = tag.trim();
            tag == "*" || tag.trim_start_matches("W/") == etag
        })
    })
}

pub async fn file(
    request: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    super::authorize(&request, &state, Access::Read)?;
    let (digest, filename) = path.into_inner();
    let blob = resolve(&state, &digest, &filename)?;
    let etag = format!("\"{blob}\"");
    let mut response = HttpResponse::Ok();
    response
        .insert_header((header::ETAG, etag.clone()))
        .insert_header((header::CACHE_CONTROL, IMMUTABLE))
        .insert_header((header::ACCEPT_RANGES, "bytes"));
    if etag_matches(&request, &etag) {
        return Ok(HttpResponse::NotModified()
            .insert_header((header::ETAG, etag))
            .insert_header((header::CACHE_CONTROL, IMMUTABLE))
            .finish());
    }
    let size = state.store.size(blob).await?;
    let range_header = request
        .headers()
        .get(header::RANGE)
        .and_then(|value| value.to_str().ok());
    let range = match parse_range(range_header, size) {
        RangeRequest::Whole => None,
        RangeRequest::Partial(range) => Some(range),
        RangeRequest::Unsatisfiable => {
            let unsatisfiable = HttpResponse::RangeNotSatisfiable()
                .insert_header((header::CONTENT_RANGE, format!("bytes */{size}")))
                .finish();
            return Ok(unsatisfiable);
        }
    };
    if let Some(range) = &range {
        response.status(actix_web::http::StatusCode::PARTIAL_CONTENT);
        response.insert_header((
            header::CONTENT_RANGE,
            format!("bytes {}-{}/{size}", range.start, range.end - 1),
        ));
    }
    let content_type = if filename.ends_with(".metadata") {
        "text/plain; charset=utf-8"
    } else {
        "application/octet-stream"
    };
    response.content_type(content_type);
    let length = range.as_ref().map_or(size, |range| range.end - range.start);
    if request.method() == Method::HEAD {
        return Ok(response.body(SizedStream::new(
            length,
            futures::stream::empty::<Result<bytes::Bytes, std::io::Error>>(),
        )));
    }
    let read = state.store.get(blob, range).await?;
    let state = state.clone();
    let body = read.body.inspect(move |chunk| {
        if let Ok(chunk) = chunk {
            state.metrics.add_file_bytes_served(chunk.len() as u64);
        }
    });
    Ok(response.body(SizedStream::new(length, body)))
}
