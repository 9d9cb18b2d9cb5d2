//! edelweiss: a Python package index for musl (Alpine) images.
//!
//! Map (see `docs/ARCHITECTURE.md` for the request path and invariants):
//! - [`pypi`]: packaging types with no I/O (names, versions, tags, filenames, metadata,
//!   simple-API and PyPI JSON API documents, the bounded excerpt every message quotes
//!   input through).
//! - [`storage`]: content-addressed blobs over `object_store`.
//! - [`metadata`]: the index's records, in sled or PostgreSQL; the mirror's in sled.
//! - [`postgres`]: what the PostgreSQL backends share (a connection pool, schema
//!   migrations versioned in the binary, the page changes replicas announce to each other).
//! - [`ingest`]: spool, validate and commit an uploaded, added or built file; read the
//!   METADATA of a wheel the mirror stored.
//! - [`index`]: page models and their HTML/JSON renderings, merged with upstream pages,
//!   and PyPI's JSON API documents.
//! - [`mirror`]: the pull-through cache of upstream indexes; [`catalog`]: what a page lists.
//! - [`farm`]: the build farm (keys, recipes, queue and leases, container steps, build
//!   requirements, remote workers and the wire format they share with the server,
//!   on-demand pages); [`executor`]: runc, docker and podman.
//! - [`relocation`]: `edelweiss migrate --from-data-dir`, an installation's data directory
//!   moved to PostgreSQL and another blob store, every digest verified.
//! - [`prewarm`]: requirements files resolved wheels-only, and what lacks a wheel built.
//! - [`routes`]: the HTTP API; [`error`] maps every error to a response; [`status`]: the
//!   status page's model.
//! - [`untrusted`]: outside text escaped and bounded for logs and pages.
//! - [`app`], [`services`], [`config`], [`auth`], [`metrics`], [`clock`], [`cli`],
//!   [`commands`]: wiring; [`memory`]: freed memory handed back after large pages.

pub mod app;
pub mod auth;
pub mod catalog;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod error;
pub mod executor;
pub mod farm;
pub mod index;
pub mod ingest;
pub mod memory;
pub mod metadata;
pub mod metrics;
pub mod mirror;
pub mod postgres;
pub mod prewarm;
pub mod pypi;
pub mod relocation;
pub mod routes;
pub mod services;
pub mod status;
pub mod storage;
#[cfg(test)]
mod test_archives;
pub mod untrusted;
