//! Ingest: turns an uploaded or local file into a stored blob plus an index record.
//!
//! Order is what makes a crash harmless: spool and hash, validate, store the blob (and the
//! extracted METADATA) under its digest, and only then write the record that makes the file
//! visible. A crash before the record leaves at most an unreferenced blob.

mod archive;
mod ingestor;
mod links;
mod members;
mod spool;
mod tar_members;
mod wheel_metadata;

pub use archive::{ArchiveError, ArchiveLimits, Inspected, inspect};
pub use ingestor::{IngestError, IngestOutcome, Ingestor};
pub use members::{UnpackError, sdist_files, unpack_crate};
pub use spool::{Spool, SpoolError, SpooledFile};
