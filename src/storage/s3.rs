//! Opening an `s3://bucket/prefix` store, and the one thing object_store does not do for it:
//! completing a multipart upload only if the key is free.
//!
//! Blobs are write-once. A small put already says so (`PutMode::Create`, sent as
//! `If-None-Match: *`), but object_store 0.14 completes the uploads of `put_multipart`
//! unconditionally, so two replicas storing the same large blob would both "create" it, the
//! second overwriting the first. S3 takes `If-None-Match: *` on CompleteMultipartUpload too
//! (412 when the key exists); `CreateOnlyCompletions`, the store's HTTP transport, adds it to
//! every completion. object_store reads the 412 as `Error::Precondition`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use object_store::ObjectStore;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey, S3ConditionalPut};
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpRequest, HttpResponse, HttpService, ReqwestConnector,
};
use object_store::prefix::PrefixStore;
use object_store::{BackoffConfig, ClientOptions, RetryConfig};

/// A request the store makes fails within seconds, not the three minutes of object_store's
/// default: a download waiting on an unreachable store should fail while pip still waits.
fn retry_config() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig::default(),
        max_retries: 3,
        retry_timeout: Duration::from_secs(30),
    }
}

/// The store behind `s3://bucket/prefix`, configured by the `AWS_*` variables of `env` that
/// object_store knows (as `AmazonS3Builder::from_env` reads them: credentials, region,
/// endpoint, `AWS_ALLOW_HTTP`, ...), with every key under `prefix`. Conditional writes are
/// always on: edelweiss never overwrites a blob.
pub fn open(
    url: &url::Url,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Arc<dyn ObjectStore>, object_store::Error> {
    let mut builder = AmazonS3Builder::new();
    for (name, value) in env {
        if !name.starts_with("AWS_") {
            continue;
        }
        if let Ok(key) = name.to_ascii_lowercase().parse::<AmazonS3ConfigKey>() {
            builder = builder.with_config(key, value);
        }
    }
    let store = builder
        .with_url(url.as_str())
        .with_conditional_put(S3ConditionalPut::ETagMatch)
        .with_retry(retry_config())
        .with_http_connector(CreateOnlyCompletions)
        .build()?;
    // object_store takes only the bucket from an s3:// URL; the path is ours to apply.
    let prefix = url.path().trim_matches('/');
    Ok(if prefix.is_empty() {
        Arc::new(store)
    } else {
        Arc::new(PrefixStore::new(store, prefix))
    })
}

/// object_store's own reqwest transport, with `If-None-Match: *` on every
/// CompleteMultipartUpload (a POST naming an `uploadId`).
#[derive(Debug)]
struct CreateOnlyCompletions;

impl HttpConnector for CreateOnlyCompletions {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        let inner = ReqwestConnector::default().connect(options)?;
        Ok(HttpClient::new(CreateOnlyTransport { inner }))
    }
}

#[derive(Debug)]
struct CreateOnlyTransport {
    inner: HttpClient,
}

fn completes_multipart_upload(request: &HttpRequest) -> bool {
    request.method() == http::Method::POST
        && request
            .uri()
            .query()
            .is_some_and(|query| query.split('&').any(|pair| pair.starts_with("uploadId=")))
}

#[async_trait]
impl HttpService for CreateOnlyTransport {
    async fn call(&self, mut request: HttpRequest) -> Result<HttpResponse, HttpError> {
        if completes_multipart_upload(&request) {
            request.headers_mut().insert(
                http::header::IF_NONE_MATCH,
                http::HeaderValue::from_static("*"),
            );
        }
        self.inner.execute(request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: http::Method, uri: &str) -> HttpRequest {
        http::Request::builder()
            .method(method)
            .uri(uri)
            .body(object_store::client::HttpRequestBody::empty())
            .unwrap()
    }

    #[test]
    fn only_completions_are_made_conditional() {
        let base = "http://127.0.0.1:9000/bucket/sha256/ab/cd/key";
        assert!(completes_multipart_upload(&request(
            http::Method::POST,
            &format!("{base}?uploadId=abc")
        )));
        for (method, uri) in [
            (http::Method::POST, format!("{base}?uploads")),
            (
                http::Method::PUT,
                format!("{base}?partNumber=1&uploadId=abc"),
            ),
            (http::Method::DELETE, format!("{base}?uploadId=abc")),
            (
                http::Method::POST,
                "http://127.0.0.1:9000/bucket?delete".into(),
            ),
            (http::Method::POST, base.into()),
        ] {
            assert!(
                !completes_multipart_upload(&request(method.clone(), &uri)),
                "{method} {uri}"
            );
        }
    }
}
