//! `POST /api/v1/prewarm` and `GET /api/v1/prewarm/<id>`: prewarm as an API. The server runs
//! the same steps as `edelweiss prewarm` against its own HTTP API (uv must be on its PATH,
//! or named by `EDELWEISS_UV`); progress is kept in memory.

use std::collections::HashMap;
use std::sync::Mutex;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::auth::{Access, token_from_header};
use crate::error::ApiError;
use crate::prewarm::{Client, Row};
use crate::pypi::Target;

#[derive(Debug, Clone, Default, Serialize)]
pub struct PrewarmProgress {
    /// `running`, `succeeded` (every requirement has a wheel) or `failed`.
    pub state: String,
    pub lines: Vec<String>,
    pub rows: Vec<Row>,
    pub error: Option<String>,
}

#[derive(Default)]
pub struct PrewarmJobs(Mutex<HashMap<String, PrewarmProgress>>);

impl PrewarmJobs {
    fn update(&self, id: &str, change: impl FnOnce(&mut PrewarmProgress)) {
        let mut jobs = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        change(jobs.entry(id.to_string()).or_default());
    }

    fn get(&self, id: &str) -> Option<PrewarmProgress> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(id)
            .cloned()
    }
}

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
    let token = request
        .headers()
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .and_then(token_from_header);
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
    state
        .prewarms
        .update(&id, |job| job.state = "running".into());
    let (job_state, job_id, timeout) = (
        state.clone(),
        id.clone(),
        std::time::Duration::from_secs(body.build_timeout_seconds),
    );
    tokio::task::spawn_blocking(move || {
        let client = Client {
            http: reqwest::blocking::Client::new(),
            server: job_state.self_url.clone(),
            token,
        };
        let mut progress = |line: String| {
            job_state
                .prewarms
                .update(&job_id, |job| job.lines.push(line))
        };
        let result = crate::prewarm::run(&client, &requirements, &targets, timeout, &mut progress);
        job_state.prewarms.update(&job_id, |job| match result {
            Ok(rows) => {
                job.state = if rows.iter().any(|row| row.source == "failed") {
                    "failed"
                } else {
                    "succeeded"
                }
                .into();
                job.rows = rows;
            }
            Err(error) => {
                job.state = "failed".into();
                job.error = Some(format!("{error:#}"));
            }
        });
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
