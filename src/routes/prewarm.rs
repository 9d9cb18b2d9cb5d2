//! `POST /api/v1/prewarm` and `GET /api/v1/prewarm/<id>`: prewarm as an API. The server runs
//! the same steps as `edelweiss prewarm` with its own build service (uv must be on its PATH,
//! or named by `EDELWEISS_UV`); progress is kept in memory (`prewarm::PrewarmJobs`).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use crate::app::AppState;
use crate::auth::Access;
use crate::error::ApiError;
use crate::prewarm::LocalFarm;
use crate::pypi::Target;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrewarmRequest {
    /// The text of a requirements file (without `-r` includes).
    requirements: String,
    targets: Vec<String>,
    #[serde(default = "default_timeout")]
    build_timeout_seconds: u64,
}

fn default_timeout() -> u64 {
    3600
}

/// A requirements file is text a person wrote; a megabyte is thousands of lines.
const PREWARM_LIMIT: usize = 1 << 20;

pub async fn start(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let caller = super::authorize(&request, &state, Access::Write)?;
    let body: PrewarmRequest =
        super::body::json(&request, payload, PREWARM_LIMIT, state.request_timeout).await?;
    let targets: Vec<Target> = body
        .targets
        .iter()
        .map(|text| text.parse())
        .collect::<Result<_, crate::pypi::TargetError>>()
        .map_err(|error| ApiError::BadRequest(error.to_string()))?;
    let requirements: Vec<String> = body
        .requirements
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#') && !line.starts_with('-'))
        .map(str::to_string)
        .collect();
    let id = format!("p{}", &uuid::Uuid::new_v4().simple().to_string()[..16]);
    let object = format!(
        "prewarm {id}: {} requirements for {}",
        requirements.len(),
        targets
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    );
    state.prewarms.start(&id);
    let (job_state, job_id, timeout) = (
        state.clone().into_inner(),
        id.clone(),
        std::time::Duration::from_secs(body.build_timeout_seconds),
    );
    tokio::spawn(async move {
        let farm = LocalFarm {
            index: &job_state.index,
            mirror: &job_state.mirror,
            builds: &job_state.builds,
            server: job_state.self_url.clone(),
        };
        let jobs = &job_state.prewarms;
        let mut progress = |line: String| jobs.line(&job_id, line);
        let result =
            crate::prewarm::run(&farm, &requirements, &targets, timeout, &mut progress).await;
        jobs.finish(&job_id, result.map_err(|error| error.to_string()));
    });
    super::audit::record(
        &request,
        &caller,
        "prewarm",
        &object,
        "started",
        StatusCode::ACCEPTED,
    );
    Ok(HttpResponse::Accepted()
        .json(serde_json::json!({ "id": id, "url": format!("/api/v1/prewarm/{id}") })))
}

pub async fn show(
    request: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    super::authorize(&request, &state, Access::Read)?;
    let progress = state
        .prewarms
        .get(&path)
        .ok_or_else(|| ApiError::NotFound(format!("no prewarm {path}")))?;
    Ok(HttpResponse::Ok().json(progress))
}
