//! `/api/v1/workers/…`: how remote `edelweiss worker`s take builds. Worker tokens reach only
//! these routes: lease, heartbeat, fetch the leased sdist, report the result.

use actix_multipart::Multipart;
use actix_web::{HttpRequest, HttpResponse, web};
use futures::StreamExt;
use serde::Deserialize;

use crate::app::AppState;
use crate::auth::Access;
use crate::build::{BuildRecord, Failure, FailureKind, Recorded, RemoteReport};
use crate::error::ApiError;
use crate::ingest::{Spool, SpooledFile};

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

pub async fn lease(
    request: HttpRequest,
    body: web::Json<LeaseRequest>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    super::authorize(&request, &state, Access::Work)?;
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
    body: web::Json<WorkerName>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    super::authorize(&request, &state, Access::Work)?;
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
    super::authorize(&request, &state, Access::Work)?;
    let form = read_result(payload, &state).await?;
    let field = |name: &str| form.fields.get(name).cloned().unwrap_or_default();
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
            let (record, recorded) = state
                .builds
                .report_remote(&path, &field("worker"), report)
                .await?;
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
            &field("worker"),
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
