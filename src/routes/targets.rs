//! `/t/<target>/simple/…`: the simple index pinned to one target. A project page through it
//! queues builds for releases that lack the target's wheel and, with `on_miss = "wait"`,
//! waits for them (keeping the connection alive) so the first install gets the wheel.

use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::mpsc;

use super::simple::{format_for, mark_stale, not_in_index, redirect, respond};
use crate::app::AppState;
use crate::auth::Access;
use crate::build::missing_wheels;
use crate::catalog;
use crate::config::OnMiss;
use crate::error::ApiError;
use crate::index::Format;
use crate::pypi::simple::ProjectDetail;
use crate::pypi::{DistFilename, PackageName, Target, parse_package_name};

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
    Ok(respond(
        &request,
        state.index.project_list_page(format)?,
        format,
    ))
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

/// What a target page shows: everything, or with `wheels_only` no sdists.
pub(super) fn for_target(mut detail: ProjectDetail, wheels_only: bool) -> ProjectDetail {
    if wheels_only {
        detail.files.retain(|file| {
            !matches!(
                file.filename.parse::<DistFilename>(),
                Ok(DistFilename::Sdist(_))
            )
        });
    }
    detail
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
    let (detail, stale) = catalog::detail(&state.index, &state.mirror, &name)
        .await?
        .ok_or_else(|| not_in_index(&name))?;
    let settings = &state.on_demand;
    let builds_wanted = settings.on_miss != OnMiss::Off
        && state.builds.serves(&target)
        && !missing_wheels(&detail, &target, settings.releases).is_empty();
    if builds_wanted && settings.on_miss == OnMiss::Wait {
        return Ok(wait_for_builds(state, name, target, detail, format));
    }
    if builds_wanted {
        let (state, name, detail, target) =
            (state.clone(), name.clone(), detail.clone(), target.clone());
        tokio::spawn(async move {
            state
                .builds
                .queue_missing(&name, &detail, &target, state.on_demand.releases)
                .await;
        });
    }
    let page = state
        .index
        .render_uncached(&for_target(detail, settings.wheels_only), format);
    let mut response = respond(&request, page, format);
    if let Some(error) = stale {
        mark_stale(&mut response, &error.to_string());
    }
    Ok(response)
}

/// Streams whitespace while the builds run, then the page as it is after them.
fn wait_for_builds(
    state: web::Data<AppState>,
    name: PackageName,
    target: Target,
    detail: ProjectDetail,
    format: Format,
) -> HttpResponse {
    let (sender, receiver) = mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::spawn(async move {
        let deadline =
            tokio::time::Instant::now() + Duration::from_secs(state.on_demand.wait_seconds);
        let ids = state
            .builds
            .queue_missing(&name, &detail, &target, state.on_demand.releases)
            .await;
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
        let page = match catalog::detail(&state.index, &state.mirror, &name).await {
            Ok(Some((detail, _))) => {
                state
                    .index
                    .render_uncached(&for_target(detail, state.on_demand.wheels_only), format)
                    .body
            }
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
        .insert_header((header::VARY, "Accept"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .content_type(format.content_type())
        .streaming(body.boxed())
}
