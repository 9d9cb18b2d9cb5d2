//! The HTTP API. `configure` is the whole route table; handlers parse, call one function,
//! and render.

mod audit;
mod body;
mod builds;
mod files;
mod form;
mod health;
mod prewarm;
mod range;
mod simple;
mod status;
mod targets;
mod upload;
mod workers;
mod yank;

use actix_web::body::MessageBody;
use actix_web::dev::ServiceResponse;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, guard, web};

pub use audit::record_refusal;
pub use body::BodyError;

use crate::app::AppState;
use crate::auth::{Access, AuthError, Caller};

/// The whole API, one route a line.
#[rustfmt::skip]
pub fn configure(config: &mut web::ServiceConfig) {
    let read = || web::route().guard(guard::Any(guard::Get()).or(guard::Head()));
    config
        .service(web::resource("/").name("status").route(read().to(status::overview)))
        .service(web::resource("/builds/{id}").name("status_build").route(read().to(status::build)))
        .service(web::resource("/healthz").name("healthz").route(read().to(health::healthz)))
        .service(web::resource("/metrics").name("metrics").route(web::get().to(health::metrics)))
        .service(web::resource("/simple").name("simple_redirect").route(read().to(simple::index_redirect)))
        .service(web::resource("/simple/").name("simple_index").route(read().to(simple::index)))
        .service(web::resource("/simple/{project}").name("project_redirect").route(read().to(simple::project_redirect)))
        .service(web::resource("/simple/{project}/").name("project_page").route(read().to(simple::project)))
        .service(web::resource("/t/{target}/simple/").name("target_index").route(read().to(targets::index)))
        .service(web::resource("/t/{target}/simple/{project}").name("target_redirect").route(read().to(targets::project_redirect)))
        .service(web::resource("/t/{target}/simple/{project}/").name("target_project_page").route(read().to(targets::project)))
        .service(web::resource("/files/{digest}/{filename}").name("file").route(read().to(files::file)))
        .service(web::resource(["/legacy/", "/legacy"]).name("upload").route(web::post().to(upload::upload)))
        .service(web::resource("/api/v1/builds").name("builds").route(web::post().to(builds::request)).route(web::get().to(builds::list)))
        .service(web::resource("/api/v1/builds/{id}").name("build").route(web::get().to(builds::show)))
        .service(web::resource("/api/v1/prewarm").name("prewarm").route(web::post().to(prewarm::start)))
        .service(web::resource("/api/v1/prewarm/{id}").name("prewarm_progress").route(web::get().to(prewarm::show)))
        .service(web::resource("/api/v1/workers/lease").name("worker_lease").route(web::post().to(workers::lease)))
        .service(web::resource("/api/v1/workers/builds/{id}/heartbeat").name("worker_heartbeat").route(web::post().to(workers::heartbeat)))
        .service(web::resource("/api/v1/workers/blobs/{sha256}").name("worker_blob").route(web::get().to(workers::blob)))
        .service(web::resource("/api/v1/workers/builds/{id}/sdist").name("worker_sdist").route(web::get().to(workers::sdist)))
        .service(web::resource("/api/v1/workers/builds/{id}/result").name("worker_result").route(web::post().to(workers::result)))
        .service(web::resource("/api/v1/projects/{project}/files/{filename}/yank").name("yank")
            .route(web::put().to(yank::yank))
            .route(web::delete().to(yank::unyank)));
}

/// Counts each response by route name and status for `/metrics`.
pub fn record_request<B: MessageBody>(response: &ServiceResponse<B>) {
    let request = response.request();
    let Some(state) = request.app_data::<web::Data<AppState>>() else {
        return;
    };
    let route = match request.match_name() {
        Some("file") if request.path().ends_with(".metadata") => "file_metadata",
        Some(name) => name,
        None => "unmatched",
    };
    state
        .metrics
        .record_request(route, response.status().as_u16());
}

/// When reads need a token, what they answer is nobody else's: a `public` cache directive
/// becomes `private`, so no shared proxy or CDN keeps a protected page or file.
pub fn keep_private<B>(response: &mut ServiceResponse<B>) {
    let Some(state) = response.request().app_data::<web::Data<AppState>>() else {
        return;
    };
    if !state.tokens.read_requires_token() {
        return;
    }
    let headers = response.response_mut().headers_mut();
    let Some(directives) = headers
        .get(header::CACHE_CONTROL)
        .and_then(|value| value.to_str().ok())
    else {
        return;
    };
    let private: Vec<&str> = directives
        .split(',')
        .map(str::trim)
        .filter(|directive| !directive.eq_ignore_ascii_case("public"))
        .collect();
    let private = format!("private, {}", private.join(", "));
    if let Ok(value) = HeaderValue::from_str(private.trim_end_matches([',', ' '])) {
        headers.insert(header::CACHE_CONTROL, value);
    }
}

fn authorize(request: &HttpRequest, state: &AppState, access: Access) -> Result<Caller, AuthError> {
    let header = request
        .headers()
        .get("authorization")
        .and_then(|value| value.to_str().ok());
    state.tokens.check(header, access)
}
