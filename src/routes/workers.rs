//! `/api/v1/workers/…`: how remote `edelweiss worker`s take builds. Worker tokens reach only
//! these routes: lease, heartbeat, fetch the leased sdist, report the result.

use actix_multipart::Multipart;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::audit;
use super::body::{self, JSON_LIMIT};
use super::form::{self, FormShape, MAX_FIELD_BYTES};
use crate::app::AppState;
use crate::auth::{Access, Caller};
use crate::build::{BuildRecord, Failure, FailureKind, Recorded, RemoteReport};
use crate::error::ApiError;

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
/// A failure's summary; one naming every unresolved symbol of a large wheel runs long.
const MAX_MESSAGE_BYTES: usize = 1 << 20;

pub async fn lease(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    super::authorize(&request, &state, Access::Work)?;
    let body: LeaseRequest =
        body::json(&request, payload, JSON_LIMIT, state.request_timeout).await?;
    match state
        .builds
        .lease_remote(&body.worker, &body.targets)
        .await?
    {
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
    super::authorize(&request, &state, Access::Work)?;
    let body: WorkerName = body::json(&request, payload, JSON_LIMIT, state.request_timeout).await?;
    state.builds.heartbeat_remote(&path, &body.worker)?;
    Ok(HttpResponse::Ok().finish())
}

pub async fn sdist(
    request: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    super::authorize(&request, &state, Access::Work)?;
    let record = state
        .builds
        .queue()
        .get(&path)?
        .ok_or_else(|| ApiError::NotFound(format!("no build {path}")))?;
    let bytes = state.store.get_bytes(record.sdist_sha256).await?;
    Ok(HttpResponse::Ok()
        .content_type("application/octet-stream")
        .body(bytes))
}

/// A blob a leased build needs (its wheelhouse), by digest.
pub async fn blob(
    request: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    super::authorize(&request, &state, Access::Work)?;
    let digest: crate::pypi::Sha256Digest = path
        .parse()
        .map_err(|_| ApiError::NotFound(format!("no blob {path}")))?;
    let bytes = state.store.get_bytes(digest).await?;
    Ok(HttpResponse::Ok()
        .content_type("application/octet-stream")
        .body(bytes))
}

/// The result form: `worker`, `outcome` (`succeeded`, `package` or `infrastructure`),
/// `message`, `wheel_sha256`, and the files `log` and `wheel`.
const RESULT_FORM: FormShape = FormShape {
    file: "wheel",
    kept: &[
        ("worker", MAX_FIELD_BYTES),
        ("outcome", MAX_FIELD_BYTES),
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
    let caller = super::authorize(&request, &state, Access::Work)?;
    let mut form = form::read(payload, &RESULT_FORM, &state).await?;
    let (wheel, log) = (form.file.take(), form.take("log"));
    let field = |name: &str| form.text(name);
    let outcome = match field("outcome").as_str() {
        "succeeded" => {
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
            let (record, recorded) = state
                .builds
                .report_remote(&path, &field("worker"), report)
                .await?;
            drop(spooled);
            audit_result(&request, &caller, &record, &field("worker"), recorded);
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
        .report_remote(&path, &field("worker"), RemoteReport { outcome, log })
        .await?;
    audit_result(&request, &caller, &record, &field("worker"), recorded);
    Ok(result_response(record, recorded))
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
