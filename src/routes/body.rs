//! Request bodies, read only after the caller is authorized, and bounded in bytes and time:
//! an anonymous client cannot make the server read, buffer or wait for anything.

use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpRequest, web};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use serde::de::DeserializeOwned;

/// Most JSON bodies: a build request, a lease, a heartbeat, a yank reason.
pub const JSON_LIMIT: usize = 64 << 10;

#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("{what} is larger than {limit} bytes")]
    TooLarge { what: String, limit: usize },
    #[error("the form has more than {limit} fields")]
    TooManyFields { limit: usize },
    #[error("form field `{name}` is sent more than once")]
    RepeatedField { name: String },
    #[error("the request body did not arrive within {seconds} s")]
    TimedOut { seconds: u64 },
    #[error("the body must be JSON (`Content-Type: application/json`), not `{content_type}`")]
    NotJson { content_type: String },
    #[error("the JSON body is not valid: {0}")]
    InvalidJson(String),
    #[error("the request body is cut short or malformed: {0}")]
    Malformed(String),
}

/// The `Content-Length` a request declares, if any.
pub fn declared_length(request: &HttpRequest) -> Option<u64> {
    request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse().ok())
}

/// Reads the whole body, refusing a declared or actual length past `limit` and a body that
/// takes longer than `timeout` (a client dribbling bytes to hold the connection).
pub async fn read_bytes(
    request: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, BodyError> {
    let too_large = || BodyError::TooLarge {
        what: "the request body".into(),
        limit,
    };
    if declared_length(request).is_some_and(|length| length > limit as u64) {
        return Err(too_large());
    }
    let read = async {
        let mut body = BytesMut::new();
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|error| BodyError::Malformed(error.to_string()))?;
            if body.len() + chunk.len() > limit {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    };
    tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| BodyError::TimedOut {
            seconds: timeout.as_secs(),
        })?
}

/// The JSON body as `T`; `None` when the body is empty.
pub async fn optional_json<T: DeserializeOwned>(
    request: &HttpRequest,
    payload: web::Payload,
    limit: usize,
    timeout: Duration,
) -> Result<Option<T>, BodyError> {
    let body = read_bytes(request, payload, limit, timeout).await?;
    if body.is_empty() {
        return Ok(None);
    }
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
        .unwrap_or_default();
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    if !essence.eq_ignore_ascii_case("application/json") && !essence.ends_with("+json") {
        return Err(BodyError::NotJson {
            content_type: content_type.chars().take(100).collect(),
        });
    }
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(|error| BodyError::InvalidJson(error.to_string()))
}

/// The JSON body as `T`; an empty body is refused like any other invalid one.
pub async fn json<T: DeserializeOwned>(
    request: &HttpRequest,
    payload: web::Payload,
    limit: usize,
    timeout: Duration,
) -> Result<T, BodyError> {
    optional_json(request, payload, limit, timeout)
        .await?
        .ok_or_else(|| BodyError::InvalidJson("the body is empty".into()))
}
