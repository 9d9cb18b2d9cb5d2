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
use crate::mirror::MirroredFile;
use crate::pypi::Sha256Digest;

const IMMUTABLE: &str = "public, max-age=31536000, immutable";

fn not_found(digest: &str, filename: &str) -> ApiError {
    ApiError::NotFound(format!("no file {filename} with sha256 {digest}"))
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
    let (digest_text, filename) = path.into_inner();
    let digest: Sha256Digest = digest_text
        .parse()
        .map_err(|_| not_found(&digest_text, &filename))?;
    if let Some(blob) = state.index.local_blob(digest, &filename).await? {
        return serve_blob(&request, &state, blob, &filename).await;
    }
    match state.mirror.open_file(digest, &filename).await? {
        Some(MirroredFile::Stored(blob)) => serve_blob(&request, &state, blob, &filename).await,
        Some(MirroredFile::Streaming { size, body }) => {
            Ok(stream_first_download(&state, &filename, digest, size, body))
        }
        None => Err(not_found(&digest_text, &filename)),
    }
}

fn content_type(filename: &str) -> &'static str {
    if filename.ends_with(".metadata") {
        "text/plain; charset=utf-8"
    } else {
        "application/octet-stream"
    }
}

/// The first download of an upstream file, streamed as it arrives. Ranges are not offered
/// until the file is stored; a verification failure ends the body early.
fn stream_first_download(
    state: &web::Data<AppState>,
    filename: &str,
    digest: Sha256Digest,
    size: Option<u64>,
    body: futures::stream::BoxStream<'static, std::io::Result<bytes::Bytes>>,
) -> HttpResponse {
    let state = state.clone();
    let body = body.inspect(move |chunk| {
        if let Ok(chunk) = chunk {
            state.metrics.add_file_bytes_served(chunk.len() as u64);
        }
    });
    let mut response = HttpResponse::Ok();
    response
        .insert_header((header::ETAG, format!("\"{digest}\"")))
        .insert_header((header::CACHE_CONTROL, IMMUTABLE))
        .content_type(content_type(filename));
    match size {
        Some(size) => response.body(SizedStream::new(size, body)),
        None => response.streaming(body),
    }
}

async fn serve_blob(
    request: &HttpRequest,
    state: &web::Data<AppState>,
    blob: Sha256Digest,
    filename: &str,
) -> Result<HttpResponse, ApiError> {
    let etag = format!("\"{blob}\"");
    if etag_matches(request, &etag) {
        return Ok(HttpResponse::NotModified()
            .insert_header((header::ETAG, etag))
            .insert_header((header::CACHE_CONTROL, IMMUTABLE))
            .finish());
    }
    let mut response = HttpResponse::Ok();
    response
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, IMMUTABLE))
        .insert_header((header::ACCEPT_RANGES, "bytes"))
        .content_type(content_type(filename));
    let size = state.store.size(blob).await?;
    let range_header = request
        .headers()
        .get(header::RANGE)
        .and_then(|value| value.to_str().ok());
    let range = match parse_range(range_header, size) {
        RangeRequest::Whole => None,
        RangeRequest::Partial(range) => Some(range),
        RangeRequest::Unsatisfiable => {
            return Ok(HttpResponse::RangeNotSatisfiable()
                .insert_header((header::CONTENT_RANGE, format!("bytes */{size}")))
                .finish());
        }
    };
    if let Some(range) = &range {
        response.status(actix_web::http::StatusCode::PARTIAL_CONTENT);
        response.insert_header((
            header::CONTENT_RANGE,
            format!("bytes {}-{}/{size}", range.start, range.end - 1),
        ));
    }
    let length = range.as_ref().map_or(size, |range| range.end - range.start);
    if request.method() == Method::HEAD {
        let empty = futures::stream::empty::<Result<bytes::Bytes, std::io::Error>>();
        return Ok(response.body(SizedStream::new(length, empty)));
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
