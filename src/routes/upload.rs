//! `POST /legacy/`: the upload API that twine speaks (multipart form, `:action=file_upload`).

use actix_multipart::Multipart;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};

use super::audit;
use super::body::declared_length;
use super::form::{self, Form, FormShape, MAX_FIELD_BYTES, MAX_FIELDS};
use crate::app::AppState;
use crate::auth::Access;
use crate::error::ApiError;
use crate::ingest::SpoolError;
use crate::metadata::{FileOrigin, InsertOutcome};
use crate::pypi::{DistFilename, parse_package_name};

/// The fields this handler reads; twine's many others are read and dropped.
const UPLOAD_FORM: FormShape = FormShape {
    file: "content",
    kept: &[
        (":action", MAX_FIELD_BYTES),
        ("name", MAX_FIELD_BYTES),
        ("version", MAX_FIELD_BYTES),
        ("sha256_digest", MAX_FIELD_BYTES),
    ],
};

/// twine sends `name` and `version`; when present they must agree with the filename.
fn check_declared_identity(form: &Form, filename: &str) -> Result<(), ApiError> {
    let Ok(parsed) = filename.parse::<DistFilename>() else {
        return Ok(());
    };
    if let Some(name) = Some(form.text("name")).filter(|name| !name.is_empty()) {
        if parse_package_name(&name).ok().as_ref() != Some(parsed.name()) {
            return Err(ApiError::BadRequest(format!(
                "form field name `{name}` does not match the file {filename}"
            )));
        }
    }
    if let Some(version) = Some(form.text("version")).filter(|version| !version.is_empty()) {
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
    let caller = super::authorize(request, state, Access::Write)?;
    if declared_length(request).is_some_and(|length| {
        length
            > state
                .max_upload_bytes
                .saturating_add((MAX_FIELDS * MAX_FIELD_BYTES) as u64)
    }) {
        return Err(SpoolError::TooLarge {
            limit: state.max_upload_bytes,
        }
        .into());
    }
    let mut form = form::read(payload, &UPLOAD_FORM, state).await?;
    let action = form.text(":action");
    if action != "file_upload" {
        return Err(ApiError::BadRequest(format!(
            "unsupported :action `{action}`; only `file_upload` is implemented"
        )));
    }
    let (filename, spooled) = match form.file.take() {
        Some((Some(filename), spooled)) => (filename, spooled),
        Some((None, _)) => {
            return Err(ApiError::BadRequest(
                "the `content` field has no filename".into(),
            ));
        }
        None => {
            return Err(ApiError::BadRequest(
                "the form has no `content` file".into(),
            ));
        }
    };
    check_declared_identity(&form, &filename)?;
    let declared = form.text("sha256_digest");
    let declared = Some(declared.trim()).filter(|digest| !digest.is_empty());
    let outcome = state
        .ingestor
        .ingest(spooled, &filename, declared, FileOrigin::Uploaded)
        .await?;
    let message = match outcome.outcome {
        InsertOutcome::Inserted => {
            format!("stored {filename} (sha256 {})\n", outcome.record.sha256)
        }
        InsertOutcome::AlreadyPresent => {
            format!("{filename} is already stored with the same content\n")
        }
    };
    let stored = match outcome.outcome {
        InsertOutcome::Inserted => "stored",
        InsertOutcome::AlreadyPresent => "already-present",
    };
    let object = format!("{filename} sha256:{}", outcome.record.sha256);
    audit::record(request, &caller, "upload", &object, stored, StatusCode::OK);
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(message))
}
