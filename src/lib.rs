//! edelweiss: a Python package index for musl (Alpine) images.
//!
//! Map (see `docs/ARCHITECTURE.md` for the request path and invariants):
//! - [`pypi`]: packaging types with no I/O (names, versions, tags, filenames, metadata,
//!   simple-API documents).
//! - [`storage`]: content-addressed blobs over `object_store`.
//! - [`metadata`]: the index's records in sled.
//! - [`ingest`]: spool, validate and commit an uploaded or local file.
//! - [`index`]: page models and their HTML/JSON renderings, merged with upstream pages.
//! - [`mirror`]: the pull-through cache of upstream indexes.
//! - [`routes`]: the HTTP API; [`error`] maps every error to a response.
//! - [`untrusted`]: outside text made safe for a log line or a page.
//! - [`app`], [`config`], [`auth`], [`metrics`], [`cli`], [`commands`]: wiring.

pub mod app;
pub mod auth;
pub mod build;
pub mod catalog;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod error;
pub mod executor;
pub mod index;
pub mod ingest;
pub mod metadata;
pub mod metrics;
pub mod mirror;
pub mod prewarm;
pub mod pypi;
pub mod routes;
pub mod services;
pub mod status;
pub mod storage;
pub mod untrusted;
