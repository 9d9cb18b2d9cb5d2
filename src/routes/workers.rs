//! `/api/v1/workers/…`: how remote `edelweiss worker`s take builds. Worker tokens reach only
//! these routes: lease, heartbeat, fetch the leased build's inputs, report the result. A
//! lease belongs to the credential (token) that took it: only requests carrying it renew
//! the lease, fetch the build's sdist and wheelhouse blobs (streamed), or report.

use actix_multipart::Multipart;
use actix_web::body::SizedStream;
use actix_web::{HttpRequest, HttpResponse, web};
use futures::StreamExt;
use serde::Deserialize;

use crate::app::AppState;
use crate::auth::{Access, AuthError, CredentialId, credential_id};
use crate::build::{BuildRecord, Failure, FailureKind, LeaseHolder, Recorded, RemoteReport};
use crate::error::ApiError;
use crate::ingest::{Spool, SpooledFile};
use crate::pypi::Sha256Digest;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseRequest {
    worker: String,
    #[serde(default)]
    targets: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerName {
    worker: String,
}

const MAX_LOG_BYTES: usize = 16 << 20;

/// The credential of an authorized worker request.
fn worker_credential(request: &HttpRequest, state: &AppState) -> Result<CredentialId, ApiError> {
    super::authorize(request, state, Access::Work)?;
    let header = request
        .headers()
        .get("authorization")
        .and_then(|value| value.to_str().ok());
    Ok(credential_id(header).ok_or(AuthError::Missing)?)
}

pub async fn lease(
    request: HttpRequest,
    body: web::Json<LeaseRequest>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let credential = worker_credential(&request, &state)?;
    let holder = LeaseHolder::remote(&body.worker, credential);
    match state.builds.lease_remote(&holder, &body.targets).await? {
        Some(assignment) => Ok(HttpResponse::Ok().json(assignment)),
        None => Ok(HttpResponse::NoContent().finish()),
    }
}

pub async fn heartbeat(
    request: HttpRequest,
    path: web::Path<String>,
    body: web::Json<WorkerName>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let credential = worker_credential(&request, &state)?;
    let holder = LeaseHolder::remote(&body.worker, credential);
    state.builds.heartbeat_remote(&path, &holder)?;
    Ok(HttpResponse::Ok().finish())
}

/// A blob streamed from the store, never read whole into memory.
async fn stream_blob(state: &AppState, digest: Sha256Digest) -> Result<HttpResponse, ApiError> {
    let read = state.store.get(digest, None).await?;
    Ok(HttpResponse::Ok()
        .content_type("application/octet-stream")
        .body(SizedStream::new(read.total_size, read.body)))
}

/// The sdist of a build leased with the request's credential; any other build is not found.
pub async fn sdist(
    request: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let credential = worker_credential(&request, &state)?;
    let not_leased = || ApiError::NotFound(format!("no build {path} leased with this token"));
    let record = state.builds.queue().get(&path)?.ok_or_else(not_leased)?;
    if !record.lets_fetch(&credential, record.sdist_sha256) {
        return Err(not_leased());
    }
    stream_blob(&state, record.sdist_sha256).await
}

/// A wheelhouse blob (or the sdist) of a build leased with the request's credential, by
/// digest; any other blob, an upload's included, is not found.
pub async fn blob(
    request: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let credential = worker_credential(&request, &state)?;
    let not_leased = || {
        ApiError::NotFound(format!(
            "no blob {path} among the inputs of a build leased with this token"
        ))
    };
    let digest: Sha256Digest = path.parse().map_err(|_| not_leased())?;
    if !state.builds.queue().lets_fetch(&credential, digest)? {
        return Err(not_leased());
    }
    stream_blob(&state, digest).await
}

/// The result form: `worker`, `outcome` (`succeeded`, `package` or `infrastructure`),
/// `message`, `wheel_sha256`, and the files `log` and `wheel`.
struct ResultForm {
    fields: std::collections::HashMap<String, String>,
    log: Vec<u8>,
    wheel: Option<(String, SpooledFile)>,
}

async fn read_result(mut payload: Multipart, state: &AppState) -> Result<ResultForm, ApiError> {
    let mut form = ResultForm {
        fields: Default::default(),
        log: Vec::new(),
        wheel: None,
    };
    let broken = |error: actix_multipart::MultipartError| {
        ApiError::BadRequest(format!(
            "the result form is cut short or malformed: {error}"
        ))
    };
    while let Some(field) = payload.next().await {
        let mut field = field.map_err(broken)?;
        let name = field.name().unwrap_or_default().to_string();
        if name == "wheel" {
            let filename = field
                .content_disposition()
                .and_then(|disposition| disposition.get_filename())
                .unwrap_or_default()
                .to_string();
            let mut spool = Spool::create(state.ingestor.spool_dir(), state.max_upload_bytes)?;
            while let Some(chunk) = field.next().await {
                spool.write(&chunk.map_err(broken)?).await?;
            }
            form.wheel = Some((filename, spool.finish().await?));
            continue;
        }
        let mut value = Vec::new();
        while let Some(chunk) = field.next().await {
            value.extend_from_slice(&chunk.map_err(broken)?);
            if value.len() > MAX_LOG_BYTES {
                return Err(ApiError::BadRequest(format!(
                    "form field `{name}` is larger than {MAX_LOG_BYTES} bytes"
                )));
            }
        }
        if name == "log" {
            form.log = value;
        } else {
            form.fields
                .insert(name, String::from_utf8_lossy(&value).into_owned());
        }
    }
    Ok(form)
}

pub async fn result(
    request: HttpRequest,
    path: web::Path<String>,
    payload: Multipart,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let credential = worker_credential(&request, &state)?;
    let form = read_result(payload, &state).await?;
    let field = |name: &str| form.fields.get(name).cloned().unwrap_or_default();
    let holder = LeaseHolder::remote(&field("worker"), credential);
    let outcome = match field("outcome").as_str() {
        "succeeded" => {
            let (filename, spooled) = form.wheel.ok_or_else(|| {
                ApiError::BadRequest("a succeeded result carries a `wheel` file".into())
            })?;
            if field("wheel_sha256") != spooled.sha256.to_hex() {
                return Err(ApiError::BadRequest(format!(
                    "wheel_sha256 `{}` does not match the uploaded wheel ({})",
                    field("wheel_sha256"),
                    spooled.sha256
                )));
            }
            let spool_path = spooled.path.to_path_buf();
            let report = RemoteReport {
                outcome: Ok((spool_path, filename)),
                log: form.log,
            };
            let (record, recorded) = state.builds.report_remote(&path, &holder, report).await?;
            drop(spooled);
            return Ok(result_response(record, recorded));
        }
        "package" => Err(Failure {
            kind: FailureKind::Package,
            message: field("message"),
        }),
        "infrastructure" => Err(Failure {
            kind: FailureKind::Infrastructure,
            message: field("message"),
        }),
        other => {
            return Err(ApiError::BadRequest(format!(
                "unknown outcome `{other}`: expected succeeded, package or infrastructure"
            )));
        }
    };
    let (record, recorded) = state
        .builds
        .report_remote(
            &path,
            &holder,
            RemoteReport {
                outcome,
                log: form.log,
            },
        )
        .await?;
    Ok(result_response(record, recorded))
}

fn result_response(record: BuildRecord, recorded: Recorded) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((Recorded::HEADER, recorded.as_str()))
        .json(record)
}
