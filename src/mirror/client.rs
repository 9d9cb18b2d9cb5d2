//! The HTTP client for upstream indexes: PEP 691 JSON or PEP 503 HTML pages, conditional
//! revalidation, timeouts, and retries with exponential backoff for failures that may pass.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use reqwest::StatusCode;
use reqwest::header::{self, HeaderMap};
use url::Url;

use std::sync::Arc;

use super::UpstreamUrl;
use super::file_hosts::{FileHosts, origin_of};
use super::quote::quoted;
use crate::config::MirrorSettings;
use crate::metrics::Metrics;
use crate::pypi::PackageName;
use crate::pypi::simple::{CoreMetadataRef, ProjectDetail};
use crate::pypi::simple_html::parse_project_page;

const PAGE_ACCEPT: &str = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.1";
const MAX_PAGE_BYTES: usize = 64 << 20;

/// Why an upstream request failed. Cloneable so one failure can answer every waiter of a
/// single-flight request; the upstream is always named, never with credentials.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum UpstreamError {
    #[error("upstream {upstream} timed out: {detail}")]
    Timeout { upstream: String, detail: String },
    #[error("upstream {upstream} is unreachable: {detail}")]
    Unreachable { upstream: String, detail: String },
    #[error("upstream {upstream} answered {status} for {url}")]
    Status {
        upstream: String,
        status: u16,
        url: String,
    },
    #[error("upstream {upstream} sent a broken response for {url}: {detail}")]
    Body {
        upstream: String,
        url: String,
        detail: String,
    },
    #[error(
        "upstream {upstream} sent {url} with sha256 {actual}, but its index says {expected}; nothing was stored"
    )]
    DigestMismatch {
        upstream: String,
        url: String,
        expected: String,
        actual: String,
    },
    #[error("could not keep the file from upstream {upstream}: {detail}")]
    Store { upstream: String, detail: String },
    #[error(
        "upstream {upstream} lists a file on {host}, which is neither its own host nor in mirror.file_hosts; not fetched"
    )]
    HostNotAllowed { upstream: String, host: String },
    #[error("upstream {upstream} {detail}")]
    Redirect { upstream: String, detail: String },
}

impl UpstreamError {
    fn transient(&self) -> bool {
        match self {
            Self::Timeout { .. } | Self::Unreachable { .. } => true,
            Self::Status { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

#[derive(Debug)]
pub enum PageFetch {
    Page {
        detail: ProjectDetail,
        validators: Validators,
    },
    /// The cached page is current; the validators the 304 sent, if any.
    NotModified {
        validators: Validators,
    },
    NotFound,
}

#[derive(Clone)]
pub struct UpstreamClient {
    http: reqwest::Client,
    hosts: FileHosts,
    metrics: Arc<Metrics>,
    page_timeout: Duration,
    retries: u32,
    backoff: Duration,
}

fn classify(upstream: &UpstreamUrl, error: reqwest::Error) -> UpstreamError {
    let upstream = upstream.to_string();
    // reqwest's messages can carry the URL, which may hold credentials: use only the kind.
    let detail = std::error::Error::source(&error)
        .map_or_else(|| "request failed".to_string(), |source| source.to_string());
    if error.is_timeout() {
        UpstreamError::Timeout { upstream, detail }
    } else if error.is_redirect() {
        UpstreamError::Redirect { upstream, detail }
    } else if error.is_connect() {
        UpstreamError::Unreachable { upstream, detail }
    } else {
        UpstreamError::Unreachable {
            upstream,
            detail: format!(
                "{}: {detail}",
                if error.is_body() { "body" } else { "request" }
            ),
        }
    }
}

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_string)
}

fn validators_of(headers: &HeaderMap) -> Validators {
    Validators {
        etag: header_text(headers, header::ETAG),
        last_modified: header_text(headers, header::LAST_MODIFIED),
    }
}

/// Absolute file URLs, and `core-metadata` filled from the older key (PEP 714).
fn normalize(mut detail: ProjectDetail, page_url: &Url) -> ProjectDetail {
    for file in &mut detail.files {
        if let Ok(absolute) = page_url.join(&file.url) {
            file.url = absolute.to_string();
        }
        if matches!(file.core_metadata, CoreMetadataRef::Absent(false)) {
            file.core_metadata = file.dist_info_metadata.clone();
        }
        file.dist_info_metadata = file.core_metadata.clone();
    }
    detail
}

impl UpstreamClient {
    pub fn new(
        settings: &MirrorSettings,
        hosts: FileHosts,
        metrics: Arc<Metrics>,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .redirect(super::redirect::policy(hosts.clone()))
            .connect_timeout(Duration::from_secs(settings.connect_timeout_seconds))
            .read_timeout(Duration::from_secs(settings.read_timeout_seconds))
            .pool_max_idle_per_host(settings.pool_max_idle_per_host)
            .user_agent(concat!("edelweiss/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            http,
            hosts,
            metrics,
            page_timeout: Duration::from_secs(settings.page_timeout_seconds),
            retries: settings.retries,
            backoff: Duration::from_millis(settings.retry_backoff_ms),
        })
    }

    /// Runs `attempt` until it succeeds, fails permanently, or the retries are spent.
    async fn with_retries<T, F, Fut>(&self, mut attempt: F) -> Result<T, UpstreamError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, UpstreamError>>,
    {
        let mut delay = self.backoff;
        for _ in 0..self.retries {
            match attempt().await {
                Err(error) if error.transient() => {
                    tracing::warn!(%error, retry_in = ?delay, "upstream request failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                result => return result,
            }
        }
        attempt().await
    }

    /// Sends one attempt and counts its outcome.
    async fn send(
        &self,
        upstream: &UpstreamUrl,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, UpstreamError> {
        let name = upstream.to_string();
        match request.send().await {
            Ok(response) => {
                let outcome = match response.status() {
                    StatusCode::NOT_MODIFIED => "not_modified".to_string(),
                    StatusCode::NOT_FOUND => "not_found".to_string(),
                    status if status.is_success() => "ok".to_string(),
                    status => format!("status_{}", status.as_u16()),
                };
                self.metrics.upstream_request(&name, &outcome);
                Ok(response)
            }
            Err(error) => {
                self.metrics.upstream_request(&name, "error");
                Err(classify(upstream, error))
            }
        }
    }

    fn get(&self, upstream: &UpstreamUrl, url: &Url) -> reqwest::RequestBuilder {
        let request = self.http.get(url.clone());
        match upstream.credentials_for(url) {
            Some((username, password)) => request.basic_auth(username, password),
            None => request,
        }
    }

    pub async fn project_page(
        &self,
        upstream: &UpstreamUrl,
        name: &PackageName,
        validators: Option<&Validators>,
    ) -> Result<PageFetch, UpstreamError> {
        let url = upstream.project_url(name);
        self.with_retries(|| self.project_page_once(upstream, &url, name, validators))
            .await
    }

    async fn project_page_once(
        &self,
        upstream: &UpstreamUrl,
        url: &Url,
        name: &PackageName,
        validators: Option<&Validators>,
    ) -> Result<PageFetch, UpstreamError> {
        let mut request = self
            .get(upstream, url)
            .header(header::ACCEPT, PAGE_ACCEPT)
            .timeout(self.page_timeout);
        if let Some(etag) = validators.and_then(|v| v.etag.as_deref()) {
            request = request.header(header::IF_NONE_MATCH, etag);
        }
        if let Some(last_modified) = validators.and_then(|v| v.last_modified.as_deref()) {
            request = request.header(header::IF_MODIFIED_SINCE, last_modified);
        }
        let response = self.send(upstream, request).await?;
        let status = response.status();
        match status {
            StatusCode::NOT_MODIFIED => {
                let validators = validators_of(response.headers());
                return Ok(PageFetch::NotModified { validators });
            }
            StatusCode::NOT_FOUND | StatusCode::GONE => return Ok(PageFetch::NotFound),
            status if !status.is_success() => {
                return Err(UpstreamError::Status {
                    upstream: upstream.to_string(),
                    status: status.as_u16(),
                    url: url.to_string(),
                });
            }
            _ => {}
        }
        let page_url = response.url().clone();
        let headers = response.headers().clone();
        let validators = validators_of(&headers);
        let body = self
            .read_limited(upstream, response, MAX_PAGE_BYTES)
            .await?;
        let is_json =
            header_text(&headers, header::CONTENT_TYPE).is_some_and(|kind| kind.contains("json"));
        let detail = if is_json {
            serde_json::from_slice::<ProjectDetail>(&body).map_err(|error| UpstreamError::Body {
                upstream: upstream.to_string(),
                url: url.to_string(),
                detail: format!("not a PEP 691 page: {}", quoted(&error.to_string())),
            })?
        } else {
            parse_project_page(name.as_ref(), &String::from_utf8_lossy(&body))
        };
        Ok(PageFetch::Page {
            detail: normalize(detail, &page_url),
            validators,
        })
    }

    async fn read_limited(
        &self,
        upstream: &UpstreamUrl,
        response: reqwest::Response,
        limit: usize,
    ) -> Result<Bytes, UpstreamError> {
        let url = response.url().to_string();
        let expected = response.content_length();
        let mut body = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|error| classify(upstream, error))?;
            body.extend_from_slice(&chunk);
            if body.len() > limit {
                return Err(UpstreamError::Body {
                    upstream: upstream.to_string(),
                    url,
                    detail: format!("larger than {limit} bytes"),
                });
            }
        }
        if expected.is_some_and(|expected| expected != body.len() as u64) {
            let detail = format!(
                "got {} of {} bytes",
                body.len(),
                expected.unwrap_or_default()
            );
            return Err(UpstreamError::Body {
                upstream: upstream.to_string(),
                url,
                detail,
            });
        }
        Ok(Bytes::from(body))
    }

    /// Opens a file download; retried only until the response starts. A URL on a host
    /// that is not allowed is refused before any request.
    pub async fn open_file(
        &self,
        upstream: &UpstreamUrl,
        url: &Url,
    ) -> Result<reqwest::Response, UpstreamError> {
        if !self.hosts.allows(upstream, url) {
            return Err(UpstreamError::HostNotAllowed {
                upstream: upstream.to_string(),
                host: origin_of(url),
            });
        }
        self.with_retries(|| async {
            let response = self.send(upstream, self.get(upstream, url)).await?;
            if !response.status().is_success() {
                return Err(UpstreamError::Status {
                    upstream: upstream.to_string(),
                    status: response.status().as_u16(),
                    url: url.to_string(),
                });
            }
            Ok(response)
        })
        .await
    }

    /// A small file read whole (a PEP 658 metadata file).
    pub async fn fetch_small(
        &self,
        upstream: &UpstreamUrl,
        url: &Url,
        limit: usize,
    ) -> Result<Bytes, UpstreamError> {
        let response = self.open_file(upstream, url).await?;
        self.read_limited(upstream, response, limit).await
    }
}

/// Maps a reqwest body error while streaming a file.
pub fn stream_error(upstream: &UpstreamUrl, error: reqwest::Error) -> UpstreamError {
    classify(upstream, error)
}
