//! Content-addressed blobs over `object_store`: every file and every extracted METADATA
//! is stored once under its sha256 and never overwritten.

mod blob_store;
mod digest_locks;
mod key;
mod part_upload;
mod s3;
mod staging;

pub use blob_store::{BlobRead, BlobStore, PutOutcome, StorageError, UPLOAD_PART};
pub use key::StorageKey;
pub use staging::SweptStaging;
