//! Multipart forms (twine's upload, a worker's result): the one file is spooled to disk,
//! the text fields a handler reads are kept with a cap each, every other field is read and
//! dropped. The number of fields and the time the whole form takes are bounded, so no form
//! can make the server hold more than a few caps in memory or wait forever.

use std::collections::HashMap;
use std::time::Duration;

use actix_multipart::Multipart;
use futures::StreamExt;

use super::body::BodyError;
use crate::app::AppState;
use crate::error::ApiError;
use crate::ingest::{Spool, SpooledFile};

/// twine sends one field per classifier, requirement and project URL, so a large project's
/// upload has a hundred fields or more; nothing needs this many.
pub const MAX_FIELDS: usize = 256;
/// A kept text field, unless its shape says otherwise.
pub const MAX_FIELD_BYTES: usize = 64 << 10;
/// A field nobody reads (twine's `description`, a long README) is read and dropped.
const MAX_DROPPED_FIELD_BYTES: usize = 4 << 20;

/// What a form may carry.
pub struct FormShape {
    /// The one file field, spooled up to `max_upload_bytes`.
    pub file: &'static str,
    /// The text fields kept, each at most once, with their caps in bytes.
    pub kept: &'static [(&'static str, usize)],
}

pub struct Form {
    fields: HashMap<&'static str, Vec<u8>>,
    /// The file field's filename, if it has one, and its spooled content.
    pub file: Option<(Option<String>, SpooledFile)>,
}

impl Form {
    /// A kept text field, empty when absent.
    pub fn text(&self, name: &str) -> String {
        self.fields
            .get(name)
            .map(|value| String::from_utf8_lossy(value).into_owned())
            .unwrap_or_default()
    }

    /// A kept field's bytes, taken out of the form.
    pub fn take(&mut self, name: &str) -> Vec<u8> {
        self.fields.remove(name).unwrap_or_default()
    }
}

fn malformed(error: actix_multipart::MultipartError) -> ApiError {
    BodyError::Malformed(error.to_string()).into()
}

/// Reads the whole form within `state`'s upload timeout.
pub async fn read(
    payload: Multipart,
    shape: &FormShape,
    state: &AppState,
) -> Result<Form, ApiError> {
    let timeout: Duration = state.upload_timeout;
    tokio::time::timeout(timeout, read_fields(payload, shape, state))
        .await
        .map_err(|_| BodyError::TimedOut {
            seconds: timeout.as_secs(),
        })?
}

async fn read_fields(
    mut payload: Multipart,
    shape: &FormShape,
    state: &AppState,
) -> Result<Form, ApiError> {
    let mut form = Form {
        fields: HashMap::new(),
        file: None,
    };
    let mut count = 0;
    while let Some(field) = payload.next().await {
        count += 1;
        if count > MAX_FIELDS {
            return Err(BodyError::TooManyFields { limit: MAX_FIELDS }.into());
        }
        let mut field = field.map_err(malformed)?;
        let name = field.name().unwrap_or_default().to_string();
        if name == shape.file {
            if form.file.is_some() {
                return Err(BodyError::RepeatedField { name }.into());
            }
            let filename = field
                .content_disposition()
                .and_then(|disposition| disposition.get_filename())
                .map(str::to_string);
            let mut spool = Spool::create(state.ingestor.spool_dir(), state.max_upload_bytes)?;
            while let Some(chunk) = field.next().await {
                spool.write(&chunk.map_err(malformed)?).await?;
            }
            form.file = Some((filename, spool.finish().await?));
            continue;
        }
        let kept = shape.kept.iter().find(|(kept, _)| *kept == name);
        let limit = kept.map_or(MAX_DROPPED_FIELD_BYTES, |(_, limit)| *limit);
        let mut value = Vec::new();
        let mut length = 0;
        while let Some(chunk) = field.next().await {
            let chunk = chunk.map_err(malformed)?;
            length += chunk.len();
            if length > limit {
                return Err(BodyError::TooLarge {
                    what: format!(
                        "form field `{}`",
                        name.chars().take(100).collect::<String>()
                    ),
                    limit,
                }
                .into());
            }
            if kept.is_some() {
                value.extend_from_slice(&chunk);
            }
        }
        if let Some((kept, _)) = kept {
            if form.fields.insert(kept, value).is_some() {
                return Err(BodyError::RepeatedField { name }.into());
            }
        }
    }
    Ok(form)
}
