use actix_web::{HttpRequest, HttpResponse, web};

use crate::app::AppState;
use crate::auth::Access;
use crate::error::ApiError;

/// Liveness plus one read of the index database, so a wedged store shows as unhealthy.
pub async fn healthz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.index.check_readable().await?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body("ok\n"))
}

/// The counters tell what is stored and requested, so they are a read like any other:
/// with `read_requires_token` they need a read (or upload) token. `/healthz` stays open.
pub async fn metrics(
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    super::authorize(&request, &state, Access::Read)?;
    Ok(HttpResponse::Ok()
        .content_type(crate::metrics::CONTENT_TYPE)
        .body(state.metrics.render()))
}
