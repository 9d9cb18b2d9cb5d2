//! `POST /legacy/`: the upload API that twine speaks (multipart form, `:action=file_upload`).

use std::collections::HashMap;

use actix_multipart::Multipart;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use futures::StreamExt;

use crate::app::AppState;
use crate::auth::Access;
use crate::error::ApiError;
use crate::ingest::{Spool, SpoolError, SpooledFile};
use crate::metadata::{FileOrigin, InsertOutcome};
use crate::pypi::{DistFilename, parse_package_name};

/// Form fields other than the file are small; this bounds what a client can make us buffer.
const MAX_FIELD_BYTES: usize = 1 << 20;

struct UploadForm {
    fields: HashMap<String, String>,
    file: Option<(String, SpooledFile)>,
}

fn cut_short(error: impl std::fmt::Display) -> ApiError {
    ApiError::BadRequest(format!(
        "the upload was cut short or is not a valid multipart form: {error}"
    ))
}

async fn read_form(mut payload: Multipart, state: &AppState) -> Result<UploadForm, ApiError> {
    let mut form = UploadForm {
        fields: HashMap::new(),
        file: None,
    };
    while let Some(field) = payload.next().await {
        let mut field = field.map_err(cut_short)?;
        let name = field.name().unwrap_or_default().to_string();
        let filename = field
            .content_disposition()
            .and_then(|disposition| disposition.get_filename())
            .map(str::to_string);
        if name == "content" {
            let filename = filename.ok_or_else(|| {
                ApiError::BadRequest("the `content` field has no filename".into())
            })?;
            if form.file.is_some() {
                return Err(ApiError::BadRequest(
                    "the form carries more than one `content` file".into(),
                ));
            }
            let mut spool = Spool::create(state.ingestor.spool_dir(), state.max_upload_bytes)?;
            while let Some(chunk) = field.next().await {
                spool.write(&chunk.map_err(cut_short)?).await?;
            }
            form.file = Some((filename, spool.finish().await?));
            continue;
        }
        let mut value = Vec::new();
        while let Some(chunk) = field.next().await {
            value.extend_from_slice(&chunk.map_err(cut_short)?);
            if value.len() > MAX_FIELD_BYTES {
                return Err(ApiError::BadRequest(format!(
                    "form field `{name}` is larger than {MAX_FIELD_BYTES} bytes"
                )));
            }
        }
        form.fields
            .insert(name, String::from_utf8_lossy(&value).into_owned());
    }
    Ok(form)
}

/// twine sends `name` and `version`; when present they must agree with the filename.
fn check_declared_identity(
    fields: &HashMap<String, String>,
    filename: &str,
) -> Result<(), ApiError> {
    let Ok(parsed) = filename.parse::<DistFilename>() else {
        return Ok(());
    };
    if let Some(name) = fields.get("name").filter(|name| !name.is_empty()) {
        if parse_package_name(name).ok().as_ref() != Some(parsed.name()) {
            return Err(ApiError::BadRequest(format!(
                "form field name `{name}` does not match the file {filename}"
            )));
        }
    }
    if let Some(version) = fields.get("version").filter(|version| !version.is_empty()) {
        if version.parse().ok().as_ref() != Some(parsed.version()) {
            return Err(ApiError::BadRequest(format!(
                "form field version `{version}` does not match the file {filename}"
            )));
        }
    }
    Ok(())
}

pub async fn upload(
    request: HttpRequest,
    payload: Multipart,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let result = handle_upload(&request, payload, &state).await;
    if result.is_err() {
        state.metrics.upload_rejected();
    }
    result
}

async fn handle_upload(
    request: &HttpRequest,
    payload: Multipart,
    state: &AppState,
) -> Result<HttpResponse, ApiError> {
    super::authorize(request, state, Access::Write)?;
    let declared_length = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
    if declared_length.is_some_and(|length| {
        length
            > state
                .max_upload_bytes
                .saturating_add(MAX_FIELD_BYTES as u64)
    }) {
        return Err(SpoolError::TooLarge {
            limit: state.max_upload_bytes,
        }
        .into());
    }
    let form = read_form(payload, state).await?;
    let action = form
        .fields
        .get(":action")
        .map(String::as_str)
        .unwrap_or_default();
    if action != "file_upload" {
        return Err(ApiError::BadRequest(format!(
            "unsupported :action `{action}`; only `file_upload` is implemented"
        )));
    }
    let (filename, spooled) = form
        .file
        .ok_or_else(|| ApiError::BadRequest("the form has no `content` file".into()))?;
    check_declared_identity(&form.fields, &filename)?;
    let declared = form
        .fields
        .get("sha256_digest")
        .map(|digest| digest.trim())
        .filter(|digest| !digest.is_empty());
    let outcome = state
        .ingestor
        .ingest(spooled, &filename, declared, FileOrigin::Uploaded)
        .await?;
    state.index.invalidate();
    state
        .metrics
        .set_files_stored(state.index.store().file_count()?);
    let message = match outcome.outcome {
        InsertOutcome::Inserted => {
            format!("stored {filename} (sha256 {})\n", outcome.record.sha256)
        }
        InsertOutcome::AlreadyPresent => {
            format!("{filename} is already stored with the same content\n")
        }
    };
    tracing::info!(filename, sha256 = %outcome.record.sha256, outcome = ?outcome.outcome, "upload");
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(message))
}
