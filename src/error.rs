//! The one place where errors become HTTP statuses and bodies.
//!
//! Policy: client mistakes are 4xx with a one-line reason naming the rule broken; storage
//! and database failures are 5xx, logged here once, with a generic body. A reason quotes
//! input only through `pypi::excerpt`, and no body is longer than `MAX_MESSAGE_CHARS`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

use crate::auth::AuthError;
use crate::farm::{BuildError, QueueError};
use crate::ingest::{IngestError, SpoolError};
use crate::metadata::{IndexError, MirrorStoreError};
use crate::mirror::MirrorError;
use crate::pypi::{excerpt, excerpt_to};
use crate::routes::BodyError;
use crate::storage::StorageError;

/// The longest reason a response carries. Reasons built here quote input through `excerpt`;
/// this also bounds the ones assembled elsewhere from unbounded text.
const MAX_MESSAGE_CHARS: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error(
        "no representation acceptable to `Accept: {}`; this index serves application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html and text/html",
        excerpt(.0)
    )]
    NotAcceptable(String),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Body(#[from] BodyError),
    #[error(transparent)]
    Ingest(#[from] IngestError),
    #[error(transparent)]
    Spool(#[from] SpoolError),
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Mirror(#[from] MirrorError),
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

impl From<crate::catalog::CatalogError> for ApiError {
    fn from(error: crate::catalog::CatalogError) -> Self {
        match error {
            crate::catalog::CatalogError::Index(error) => Self::Index(error),
            crate::catalog::CatalogError::Mirror(error) => Self::Mirror(error),
        }
    }
}

impl ApiError {
    /// Faults of this server, whose details stay in its log. An upstream failure (502) is
    /// told to the client: it names the upstream and the cause, and carries no secret.
    fn is_server_fault(&self) -> bool {
        self.status_code().is_server_error()
            && !matches!(self, Self::Mirror(MirrorError::Upstream(_)))
    }

    /// The database of the records, the mirror's records or the build queue did not
    /// answer (PostgreSQL out of reach, say): the request may succeed when retried, and the
    /// client is told that much, though not why.
    fn database_unavailable(&self) -> bool {
        let mirror_records = |error: &MirrorError| {
            matches!(
                error,
                MirrorError::Records(MirrorStoreError::Unavailable(_))
            )
        };
        match self {
            Self::Index(error)
            | Self::Ingest(IngestError::Index(error))
            | Self::Build(BuildError::Index(error)) => matches!(error, IndexError::Unavailable(_)),
            Self::Queue(error) | Self::Build(BuildError::Queue(error)) => {
                matches!(error, QueueError::Unavailable(_))
            }
            Self::Ingest(IngestError::MirrorRecords(error)) => {
                matches!(error, MirrorStoreError::Unavailable(_))
            }
            Self::Mirror(error) | Self::Build(BuildError::Mirror(error)) => mirror_records(error),
            _ => false,
        }
    }
}

/// Seconds a client is asked to wait before retrying a request the database could not serve.
const DATABASE_RETRY_AFTER_SECONDS: u32 = 5;

fn index_status(error: &IndexError) -> StatusCode {
    match error {
        IndexError::Conflict { .. } => StatusCode::CONFLICT,
        IndexError::FileNotFound { .. } => StatusCode::NOT_FOUND,
        IndexError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        IndexError::Corrupt { .. } => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn mirror_records_status(error: &MirrorStoreError) -> StatusCode {
    match error {
        MirrorStoreError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        MirrorStoreError::Corrupt { .. } => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn queue_status(error: &QueueError) -> StatusCode {
    match error {
        QueueError::Conflict { .. } => StatusCode::CONFLICT,
        QueueError::OtherCredential { .. } => StatusCode::FORBIDDEN,
        QueueError::NotFound { .. } => StatusCode::NOT_FOUND,
        QueueError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        QueueError::Corrupt { .. } => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            Self::Auth(AuthError::Missing) => StatusCode::UNAUTHORIZED,
            Self::Auth(AuthError::Invalid) => StatusCode::FORBIDDEN,
            Self::Body(BodyError::TooLarge { .. } | BodyError::TooManyFields { .. }) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            Self::Body(BodyError::TimedOut { .. }) => StatusCode::REQUEST_TIMEOUT,
            Self::Body(_) => StatusCode::BAD_REQUEST,
            Self::Spool(SpoolError::TooLarge { .. }) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Spool(SpoolError::Io(_)) => StatusCode::INSUFFICIENT_STORAGE,
            Self::Ingest(IngestError::Index(error)) | Self::Index(error) => index_status(error),
            Self::Ingest(IngestError::Storage(StorageError::NotFound { .. }))
            | Self::Storage(StorageError::NotFound { .. }) => StatusCode::NOT_FOUND,
            Self::Ingest(
                IngestError::Storage(_) | IngestError::Interrupted(_) | IngestError::Spool(_),
            )
            | Self::Storage(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Ingest(IngestError::MirrorRecords(error))
            | Self::Mirror(MirrorError::Records(error)) => mirror_records_status(error),
            Self::Ingest(_) => StatusCode::BAD_REQUEST,
            Self::Mirror(MirrorError::Upstream(_)) => StatusCode::BAD_GATEWAY,
            Self::Mirror(MirrorError::Storage(_)) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Mirror(MirrorError::NoMetadata { .. }) => StatusCode::NOT_FOUND,
            Self::Build(BuildError::Queue(error)) | Self::Queue(error) => queue_status(error),
            Self::Build(BuildError::UnknownTarget { .. }) => StatusCode::BAD_REQUEST,
            Self::Build(BuildError::NoSdist { .. }) => StatusCode::NOT_FOUND,
            Self::Build(BuildError::Mirror(MirrorError::Upstream(_))) => StatusCode::BAD_GATEWAY,
            Self::Build(
                BuildError::Builder { .. }
                | BuildError::Resolve { .. }
                | BuildError::Storage(_)
                | BuildError::Mirror(_),
            ) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Build(BuildError::Index(error)) => index_status(error),
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if let Self::Mirror(MirrorError::Upstream(error)) = self {
            tracing::warn!(%error, "upstream failure answered with 502");
        }
        let message = if self.database_unavailable() {
            tracing::error!(error = %self, "request failed: the database is unavailable");
            "Service Unavailable: the database does not answer; try again shortly".to_string()
        } else if self.is_server_fault() {
            tracing::error!(error = %self, "request failed");
            format!(
                "{}: the server could not complete the request; see its log",
                status.canonical_reason().unwrap_or("error")
            )
        } else {
            one_line(self.to_string())
        };
        let mut response = HttpResponse::build(status);
        if status == StatusCode::UNAUTHORIZED {
            response.insert_header(("WWW-Authenticate", "Basic realm=\"edelweiss\""));
        }
        if self.database_unavailable() {
            response.insert_header(("Retry-After", DATABASE_RETRY_AFTER_SECONDS.to_string()));
        }
        // twine prints the reason phrase; a one-line body serves curl and pip.
        response
            .content_type("text/plain; charset=utf-8")
            .body(format!("{message}\n"))
    }
}

/// `message` if it is one line within `MAX_MESSAGE_CHARS`, else its escaped, cut excerpt.
fn one_line(message: String) -> String {
    let fits = message.chars().nth(MAX_MESSAGE_CHARS).is_none();
    if fits && !message.contains(char::is_control) {
        return message;
    }
    excerpt_to(&message, MAX_MESSAGE_CHARS).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_is_one_bounded_line() {
        assert_eq!(one_line("short `reason`".into()), "short `reason`");
        let long = one_line(format!("form field `{}`", "x".repeat(1 << 20)));
        assert!(long.len() < 2 * MAX_MESSAGE_CHARS && long.ends_with('…'));
        assert_eq!(one_line("a\nb".into()), "a\\nb");
    }

    /// Tried: the records' database unreachable under an upload, a build request and a
    /// mirrored page. Kept: 503 saying so, with `Retry-After`, and nothing of the cause.
    #[test]
    fn an_unreachable_database_is_a_503_that_says_so() {
        let cause = || -> Box<dyn std::error::Error + Send + Sync> {
            "connection to 10.0.0.5:5432 timed out".into()
        };
        let errors = [
            ApiError::Ingest(IngestError::Index(IndexError::Unavailable(cause()))),
            ApiError::Build(BuildError::Queue(QueueError::Unavailable(cause()))),
            ApiError::Mirror(MirrorError::Records(MirrorStoreError::Unavailable(cause()))),
            ApiError::Build(BuildError::Index(IndexError::Unavailable(cause()))),
        ];
        for error in errors {
            let response = error.error_response();
            assert_eq!(
                response.status(),
                StatusCode::SERVICE_UNAVAILABLE,
                "{error}"
            );
            assert_eq!(response.headers().get("Retry-After").unwrap(), "5");
            let body = actix_web::body::to_bytes(response.into_body());
            let body = futures::executor::block_on(body).unwrap();
            assert_eq!(
                body,
                "Service Unavailable: the database does not answer; try again shortly\n"
            );
        }
    }

    #[test]
    fn a_hostile_accept_header_is_quoted_short() {
        let message = ApiError::NotAcceptable("text/x".repeat(10_000)).to_string();
        assert!(message.len() < 500, "{message}");
    }
}
