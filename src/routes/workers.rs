//! `/api/v1/workers/…`: how remote `edelweiss worker`s take builds. Worker tokens reach only
//! these routes: lease, heartbeat, fetch the leased build's inputs, report the result. A
//! lease belongs to the credential (token) that took it: only requests carrying it renew
//! the lease, fetch the build's sdist, wheelhouse and crate blobs (streamed), or report.

use actix_multipart::Multipart;
use actix_web::body::SizedStream;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};

use super::audit;
use super::body::{self, JSON_LIMIT};
use super::form::{self, FormShape, MAX_FIELD_BYTES};
use crate::app::AppState;
use crate::auth::{Access, AuthError, Caller, CredentialId, credential_id};
use crate::error::ApiError;
use crate::farm::wire::{LeaseRequest, ResultOutcome, WorkerName};
use crate::farm::{BuildRecord, Failure, FailureKind, LeaseHolder, Recorded, RemoteReport};
use crate::pypi::Sha256Digest;

const MAX_LOG_BYTES: usize = 16 << 20;
/// A failure's summary; one naming every unresolved symbol of a large wheel runs long.
const MAX_MESSAGE_BYTES: usize = 1 << 20;

/// Who made an authorized worker request, and the credential a lease is held by.
fn worker_credential(
    request: &HttpRequest,
    state: &AppState,
) -> Result<(Caller, CredentialId), ApiError> {
    let caller = super::authorize(request, state, Access::Work)?;
    let header = request
        .headers()
        .get("authorization")
        .and_then(|value| value.to_str().ok());
    Ok((caller, credential_id(header).ok_or(AuthError::Missing)?))
}

pub async fn lease(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (_, credential) = worker_credential(&request, &state)?;
    let body: LeaseRequest =
        body::json(&request, payload, JSON_LIMIT, state.request_timeout).await?;
    let holder = LeaseHolder::remote(&body.worker, credential);
    match state.builds.lease_remote(&holder, &body.targets).await? {
        Some(assignment) => Ok(HttpResponse::Ok().json(assignment)),
        None => Ok(HttpResponse::NoContent().finish()),
    }
}

pub async fn heartbeat(
    request: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (_, credential) = worker_credential(&request, &state)?;
    let body: WorkerName = body::json(&request, payload, JSON_LIMIT, state.request_timeout).await?;
    let holder = LeaseHolder::remote(&body.worker, credential);
    state.builds.heartbeat_remote(&path, &holder).await?;
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
    let (_, credential) = worker_credential(&request, &state)?;
    let not_leased = || ApiError::NotFound(format!("no build {path} leased with this token"));
    let record = state.builds.record(&path).await?.ok_or_else(not_leased)?;
    if !record.lets_fetch(&credential, record.sdist_sha256) {
        return Err(not_leased());
    }
    stream_blob(&state, record.sdist_sha256).await
}

/// A wheelhouse or crate blob (or the sdist) of a build leased with the request's
/// credential, by digest; any other blob, an upload's included, is not found.
pub async fn blob(
    request: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (_, credential) = worker_credential(&request, &state)?;
    let not_leased = || {
        ApiError::NotFound(format!(
            "no blob {path} among the inputs of a build leased with this token"
        ))
    };
    let digest: Sha256Digest = path.parse().map_err(|_| not_leased())?;
    if !state.builds.lets_fetch(&credential, digest).await? {
        return Err(not_leased());
    }
    stream_blob(&state, digest).await
}

/// The result form: `worker`, `outcome` (`succeeded`, `package`, `infrastructure` or
/// `missing-wheel` with its `requirement`), `message`, `wheel_sha256`, and the files `log`
/// and `wheel`.
const RESULT_FORM: FormShape = FormShape {
    file: "wheel",
    kept: &[
        ("worker", MAX_FIELD_BYTES),
        ("outcome", MAX_FIELD_BYTES),
        ("requirement", MAX_FIELD_BYTES),
        ("message", MAX_MESSAGE_BYTES),
        ("wheel_sha256", MAX_FIELD_BYTES),
        ("log", MAX_LOG_BYTES),
    ],
};

pub async fn result(
    request: HttpRequest,
    path: web::Path<String>,
    payload: Multipart,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (caller, credential) = worker_credential(&request, &state)?;
    let mut form = form::read(payload, &RESULT_FORM, &state).await?;
    let (wheel, log) = (form.file.take(), form.take("log"));
    let field = |name: &str| form.text(name);
    let holder = LeaseHolder::remote(&field("worker"), credential);
    let outcome: ResultOutcome =
        field("outcome")
            .parse()
            .map_err(|error: crate::farm::wire::UnknownOutcome| {
                ApiError::BadRequest(error.to_string())
            })?;
    let outcome = match outcome {
        ResultOutcome::Succeeded => {
            let (filename, spooled) = wheel.ok_or_else(|| {
                ApiError::BadRequest("a succeeded result carries a `wheel` file".into())
            })?;
            let filename = filename.unwrap_or_default();
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
                log,
            };
            let (record, recorded) = state.builds.report_remote(&path, &holder, report).await?;
            drop(spooled);
            audit_result(&request, &caller, &record, &field("worker"), recorded);
            return Ok(result_response(record, recorded));
        }
        ResultOutcome::Failed(FailureKind::Package) => Err(Failure::package(field("message"))),
        ResultOutcome::Failed(FailureKind::Infrastructure) => {
            Err(Failure::infrastructure(field("message")))
        }
        ResultOutcome::Failed(FailureKind::MissingWheel) => Err(Failure::missing_wheel(
            missing_requirement(&field("requirement"))?,
            field("message"),
        )),
    };
    let (record, recorded) = state
        .builds
        .report_remote(&path, &holder, RemoteReport { outcome, log })
        .await?;
    audit_result(&request, &caller, &record, &field("worker"), recorded);
    Ok(result_response(record, recorded))
}

/// A worker's missing requirement: a PEP 508 requirement on an index project (no URL), in
/// its canonical spelling, before the farm queues a build for it.
fn missing_requirement(text: &str) -> Result<String, ApiError> {
    crate::farm::index_requirement(text)
        .map(|requirement| requirement.to_string())
        .map_err(|reason| {
            ApiError::BadRequest(format!(
                "`requirement` of a missing-wheel result: {}",
                crate::untrusted::sanitize(&reason, crate::untrusted::MESSAGE_CHARS)
            ))
        })
}

fn audit_result(
    request: &HttpRequest,
    caller: &Caller,
    record: &BuildRecord,
    worker: &str,
    recorded: Recorded,
) {
    let object = format!("build {} from worker {worker}", record.id);
    let outcome = recorded.as_str();
    audit::record(request, caller, "result", &object, outcome, StatusCode::OK);
}

fn result_response(record: BuildRecord, recorded: Recorded) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((Recorded::HEADER, recorded.as_str()))
        .json(record)
}
