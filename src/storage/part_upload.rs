//! A blob's bytes on their way into the store as a multipart upload: a part is sent each time
//! `part_size` bytes have come, with at most two parts in flight, and nothing is visible
//! under the key until `complete`. An upload that does not complete is aborted: on an error,
//! and when it is dropped mid-way (its writer gave up or was cancelled), in the background.
//!
//! This owns the `MultipartUpload` itself rather than using object_store's `WriteMultipart`,
//! whose `finish` consumes the upload: after a refused completion (the key was taken) it could
//! no longer be aborted, and S3 keeps an upload's parts until it is.

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use object_store::{MultipartUpload, PutPayload, PutPayloadMut, UploadPart};

const PARTS_IN_FLIGHT: usize = 2;

/// How a completion ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    Created,
    /// The store refused to complete because the key exists (S3's 412 or 409); the upload
    /// was aborted.
    KeyTaken,
}

pub struct PartUpload {
    /// `None` once completed or aborted.
    upload: Option<Box<dyn MultipartUpload>>,
    part_size: usize,
    filling: PutPayloadMut,
    in_flight: FuturesUnordered<UploadPart>,
    parts_sent: usize,
}

impl PartUpload {
    pub fn new(upload: Box<dyn MultipartUpload>, part_size: usize) -> Self {
        Self {
            upload: Some(upload),
            part_size,
            filling: PutPayloadMut::new(),
            in_flight: FuturesUnordered::new(),
            parts_sent: 0,
        }
    }

    fn open_upload(&mut self) -> &mut Box<dyn MultipartUpload> {
        // Only `complete`, `abort` and `drop` take the upload, and they consume `self`.
        self.upload
            .as_mut()
            .expect("the upload is open until completed or aborted")
    }

    pub async fn write(&mut self, bytes: Bytes) -> object_store::Result<()> {
        self.filling.push(bytes);
        if self.filling.content_length() >= self.part_size {
            let part = std::mem::take(&mut self.filling).freeze();
            self.send(part).await?;
        }
        Ok(())
    }

    async fn send(&mut self, part: PutPayload) -> object_store::Result<()> {
        while self.in_flight.len() >= PARTS_IN_FLIGHT {
            self.next_part_done().await?;
        }
        let part = self.open_upload().put_part(part);
        self.in_flight.push(part);
        self.parts_sent += 1;
        Ok(())
    }

    async fn next_part_done(&mut self) -> object_store::Result<()> {
        match self.in_flight.next().await {
            Some(sent) => sent,
            None => Ok(()),
        }
    }

    /// Sends what is left, waits for every part and completes the upload; on any failure
    /// the upload is aborted before the error is returned.
    pub async fn complete(mut self) -> object_store::Result<Completion> {
        match self.send_rest_and_complete().await {
            Ok(()) => {
                self.upload = None;
                Ok(Completion::Created)
            }
            Err(
                object_store::Error::Precondition { .. }
                | object_store::Error::AlreadyExists { .. },
            ) => {
                self.abort().await;
                Ok(Completion::KeyTaken)
            }
            Err(error) => {
                self.abort().await;
                Err(error)
            }
        }
    }

    async fn send_rest_and_complete(&mut self) -> object_store::Result<()> {
        // An empty blob is completed with no part: the store writes it as one empty part.
        if self.filling.content_length() > 0 {
            let rest = std::mem::take(&mut self.filling).freeze();
            self.send(rest).await?;
        }
        while !self.in_flight.is_empty() {
            self.next_part_done().await?;
        }
        self.open_upload().complete().await.map(drop)
    }

    /// Drops the parts in flight and aborts the upload. Aborting is tidying: if it fails the
    /// upload stays invisible, and S3's lifecycle rule for incomplete uploads removes it.
    pub async fn abort(mut self) {
        self.in_flight.clear();
        if let Some(mut upload) = self.upload.take() {
            let _ = upload.abort().await;
        }
    }
}

impl Drop for PartUpload {
    fn drop(&mut self) {
        let Some(mut upload) = self.upload.take() else {
            return;
        };
        self.in_flight.clear();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = upload.abort().await;
            });
        }
    }
}
