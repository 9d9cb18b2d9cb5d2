//! `/t/<target>/simple/…`: the simple index pinned to one target. A project page through it
//! queues builds for releases that lack the target's wheel and, with `on_miss = "wait"`,
//! waits for them (keeping the connection alive) so the first install gets the wheel.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::mpsc;

use super::simple::{
    format_for, mark_stale, missing_for, not_in_index, queue_missing, redirect, respond,
};
use crate::app::AppState;
use crate::auth::Access;
use crate::build::MissingWheel;
use crate::catalog;
use crate::config::OnMiss;
use crate::error::ApiError;
use crate::index::{Format, View};
use crate::pypi::{PackageName, Target, parse_package_name};

/// Whitespace is valid before both an HTML and a JSON document, and resets the client's
/// read timeout (pip's default is 15 s).
const KEEPALIVE_EVERY: Duration = Duration::from_secs(5);

pub(super) fn parse_target(text: &str) -> Result<Target, ApiError> {
    text.parse()
        .map_err(|error: crate::pypi::TargetError| ApiError::NotFound(error.to_string()))
}

pub async fn index(
    request: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    super::authorize(&request, &state, Access::Read)?;
    parse_target(&path)?;
    let format = format_for(&request)?;
    let page = state.index.project_list_page(format.body())?;
    Ok(respond(&request, &state, &page, format))
}

pub async fn project_redirect(path: web::Path<(String, String)>) -> Result<HttpResponse, ApiError> {
    let (target, project) = path.into_inner();
    let name =
        parse_package_name(&project).map_err(|error| ApiError::NotFound(error.to_string()))?;
    Ok(redirect(format!(
        "/t/{}/simple/{name}/",
        parse_target(&target)?
    )))
}

pub async fn project(
    request: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    super::authorize(&request, &state, Access::Read)?;
    let (target_text, raw) = path.into_inner();
    let target = parse_target(&target_text)?;
    let name = parse_package_name(&raw).map_err(|error| ApiError::NotFound(error.to_string()))?;
    if name.as_ref() != raw || target.to_string() != target_text {
        return Ok(redirect(format!("/t/{target}/simple/{name}/")));
    }
    let format = format_for(&request)?;
    let settings = &state.on_demand;
    let view = match settings.wheels_only {
        true => View::WheelsOnly,
        false => View::All,
    };
    let served = catalog::page(&state.index, &state.mirror, &name, view, format.body())
        .await?
        .ok_or_else(|| not_in_index(&name))?;
    let builds = settings.on_miss != OnMiss::Off && state.builds.serves(&target);
    if builds && settings.on_miss == OnMiss::Wait {
        let missing = missing_for(&state, &name, &served, &target).await?;
        if !missing.is_empty() {
            return Ok(wait_for_builds(state, name, target, missing, view, format));
        }
    }
    let mut response = respond(&request, &state, &served.page, format);
    if let Some(error) = &served.stale {
        mark_stale(&mut response, &error.to_string());
    }
    if builds && settings.on_miss == OnMiss::Background {
        queue_missing(&state, &name, served, target);
    }
    Ok(response)
}

/// Streams whitespace while the builds run, then the page as it is after them.
fn wait_for_builds(
    state: web::Data<AppState>,
    name: PackageName,
    target: Target,
    missing: Arc<[MissingWheel]>,
    view: View,
    format: Format,
) -> HttpResponse {
    let (sender, receiver) = mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::spawn(async move {
        let deadline =
            tokio::time::Instant::now() + Duration::from_secs(state.on_demand.wait_seconds);
        let ids = state.builds.queue_missing(&name, &missing, &target).await;
        for id in ids {
            while tokio::time::Instant::now() < deadline {
                let finished = state
                    .builds
                    .wait(&id, KEEPALIVE_EVERY)
                    .await
                    .ok()
                    .flatten()
                    .is_none_or(|record| record.is_finished());
                if finished {
                    break;
                }
                if sender.send(Ok(Bytes::from_static(b" "))).await.is_err() {
                    return;
                }
            }
        }
        // The whitespace went out uncompressed, so the page follows as rendered.
        let page =
            match catalog::page(&state.index, &state.mirror, &name, view, format.body()).await {
                Ok(Some(served)) => served.page.identity().clone(),
                Ok(None) => Bytes::new(),
                Err(error) => {
                    let _ = sender
                        .send(Err(std::io::Error::other(error.to_string())))
                        .await;
                    return;
                }
            };
        let _ = sender.send(Ok(page)).await;
    });
    let body = futures::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|chunk| (chunk, receiver))
    });
    HttpResponse::Ok()
        .insert_header((header::VARY, "Accept, Accept-Encoding"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .content_type(format.content_type())
        .streaming(body.boxed())
}
