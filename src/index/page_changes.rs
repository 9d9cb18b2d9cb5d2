//! How a write tells the other processes that share its records which pages it changed, so
//! none of them keeps serving a page from before it. Each process keeps its own
//! `PageCache`; where replicas share one PostgreSQL database, `postgres::page_changes`
//! carries the changes between them.

use async_trait::async_trait;

use super::cache::Scope;

/// The other processes' side of a write: told after the write committed.
#[async_trait]
pub trait PageChanges: Send + Sync {
    /// `scopes` changed. A failure is logged here and never returned: the write it follows
    /// has committed and stands.
    async fn announce(&self, scopes: &[Scope]);
}

/// Records only this process writes (the embedded database, which one process holds):
/// there is nobody else to tell.
pub struct Unshared;

#[async_trait]
impl PageChanges for Unshared {
    async fn announce(&self, _scopes: &[Scope]) {}
}
