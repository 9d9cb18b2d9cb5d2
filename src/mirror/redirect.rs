//! The redirect policy of the upstream client: a redirect is followed only to an allowed
//! host (`FileHosts::allows_redirect`), for pages and files alike, so an upstream cannot
//! bounce edelweiss onto a host its page could not list.

use reqwest::redirect::{Attempt, Policy};

use super::file_hosts::{FileHosts, origin_of};

/// As many hops as a browser allows; reqwest's default policy uses the same.
const MAX_REDIRECTS: usize = 10;

/// Why a redirect was not followed; reqwest carries it as the source of its error.
#[derive(Debug, thiserror::Error)]
pub enum RedirectRefused {
    #[error(
        "redirected to {to}, which is neither an upstream's host nor in mirror.file_hosts; not followed"
    )]
    HostNotAllowed { to: String },
    #[error("more than {MAX_REDIRECTS} redirects")]
    TooMany,
}

pub fn policy(hosts: FileHosts) -> Policy {
    Policy::custom(move |attempt| decide(&hosts, attempt))
}

fn decide(hosts: &FileHosts, attempt: Attempt) -> reqwest::redirect::Action {
    if attempt.previous().len() > MAX_REDIRECTS {
        return attempt.error(RedirectRefused::TooMany);
    }
    if hosts.allows_redirect(attempt.url()) {
        return attempt.follow();
    }
    // Logged where the failed fetch is handled, with the upstream named.
    let to = origin_of(attempt.url());
    attempt.error(RedirectRefused::HostNotAllowed { to })
}
