//! The audit trail: one structured log line (target `audit`) for each change a caller makes
//! and each request refused. It names the caller by its token's configured name, never the
//! token; text from the request is quoted by the log format and cut to a bounded length.

use actix_web::body::MessageBody;
use actix_web::dev::ServiceResponse;
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, web};

use crate::app::AppState;
use crate::auth::Caller;

/// Statuses that mean the server refused the caller, whatever the method.
const REFUSALS: [StatusCode; 5] = [
    StatusCode::UNAUTHORIZED,
    StatusCode::FORBIDDEN,
    StatusCode::REQUEST_TIMEOUT,
    StatusCode::CONFLICT,
    StatusCode::PAYLOAD_TOO_LARGE,
];

const MAX_OBJECT_CHARS: usize = 200;

fn route(request: &HttpRequest) -> &str {
    request.match_name().unwrap_or("unmatched")
}

/// One line: `who` did `action` on `object` through `route`, with `outcome` and `status`.
pub fn record(
    request: &HttpRequest,
    who: &Caller,
    action: &str,
    object: &str,
    outcome: &str,
    status: StatusCode,
) {
    let object: String = object.chars().take(MAX_OBJECT_CHARS).collect();
    tracing::info!(
        target: "audit",
        who = who.name(),
        action,
        route = route(request),
        object,
        outcome,
        status = status.as_u16(),
    );
}

/// Records a refused request: any 401, 403, 408, 409 or 413, and any other client error
/// answering a request that would change something.
pub fn record_refusal<B: MessageBody>(response: &ServiceResponse<B>) {
    let status = response.status();
    let request = response.request();
    let writes = !matches!(*request.method(), Method::GET | Method::HEAD);
    if !(REFUSALS.contains(&status) || writes && status.is_client_error()) {
        return;
    }
    let Some(state) = request.app_data::<web::Data<AppState>>() else {
        return;
    };
    let header = request
        .headers()
        .get("authorization")
        .and_then(|value| value.to_str().ok());
    let who = state.tokens.identify(header);
    let action = request.method().as_str().to_ascii_lowercase();
    record(request, &who, &action, request.path(), "refused", status);
}
