//! API tokens: kept in a `Secret` that never prints, and checked in constant time.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
    /// Leasing builds and reporting their results: worker tokens and upload tokens.
    Work,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error(
        "authentication required: send an API token (HTTP basic `__token__:<token>` or `Authorization: Bearer <token>`)"
    )]
    Missing,
    #[error("the API token is not valid for this operation")]
    Invalid,
}

/// The configured tokens, stored as sha256 digests so comparison time does not depend on
/// where two tokens first differ, nor on their length.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    write: Vec<[u8; 32]>,
    read: Vec<[u8; 32]>,
    work: Vec<[u8; 32]>,
    read_requires_token: bool,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Extracts the token from `Authorization`: twine sends basic auth as `__token__:<token>`;
/// any user name is accepted so `pip`'s `https://user:token@host/` works too.
pub fn token_from_header(header: &str) -> Option<String> {
    let (scheme, value) = header.trim().split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(value.trim().to_string());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(value.trim())
            .ok()?;
        let (_, password) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
        return Some(password.to_string());
    }
    None
}

/// A stable, non-secret name for the token a request carried: 16 hex digits of a sha256 of
/// the token (domain-separated, so it equals no other digest kept of it). A remote worker's
/// lease belongs to it; it never reveals the token.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CredentialId(String);

const CREDENTIAL_HEX_DIGITS: usize = 16;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{input}` is not a credential id: expected {CREDENTIAL_HEX_DIGITS} lowercase hex digits")]
pub struct CredentialIdError {
    input: String,
}

impl TryFrom<String> for CredentialId {
    type Error = CredentialIdError;

    fn try_from(input: String) -> Result<Self, Self::Error> {
        let hex = |b: u8| matches!(b, b'0'..=b'9' | b'a'..=b'f');
        if input.len() == CREDENTIAL_HEX_DIGITS && input.bytes().all(hex) {
            Ok(Self(input))
        } else {
            Err(CredentialIdError { input })
        }
    }
}

impl From<CredentialId> for String {
    fn from(id: CredentialId) -> Self {
        id.0
    }
}

impl std::fmt::Display for CredentialId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The identity of the token in an `Authorization` header; `None` without a token. Say
/// nothing about whether the token is valid: call `Tokens::check` first.
pub fn credential_id(header: Option<&str>) -> Option<CredentialId> {
    let token = header.and_then(token_from_header)?;
    let digest = Sha256::new()
        .chain_update(b"edelweiss credential\0")
        .chain_update(token.as_bytes())
        .finalize();
    Some(CredentialId(
        hex::encode(digest)[..CREDENTIAL_HEX_DIGITS].to_string(),
    ))
}

impl Tokens {
    pub fn new(write: &[Secret], read: &[Secret], read_requires_token: bool) -> Self {
        Self {
            write: write.iter().map(|secret| digest(secret.expose())).collect(),
            read: read.iter().map(|secret| digest(secret.expose())).collect(),
            work: Vec::new(),
            read_requires_token,
        }
    }

    /// Adds the tokens remote workers use: they may lease builds and report results, and
    /// nothing else.
    pub fn with_workers(mut self, work: &[Secret]) -> Self {
        self.work = work.iter().map(|secret| digest(secret.expose())).collect();
        self
    }

    fn matches(candidates: &[[u8; 32]], presented: &[u8; 32]) -> bool {
        candidates.iter().fold(false, |found, candidate| {
            found | bool::from(candidate.ct_eq(presented))
        })
    }

    /// Checks an `Authorization` header value for `access`.
    pub fn check(&self, header: Option<&str>, access: Access) -> Result<(), AuthError> {
        if access == Access::Read && !self.read_requires_token {
            return Ok(());
        }
        let token = header
            .and_then(token_from_header)
            .ok_or(AuthError::Missing)?;
        let presented = digest(&token);
        let allowed = match access {
            Access::Write => Self::matches(&self.write, &presented),
            Access::Read => {
                Self::matches(&self.write, &presented) | Self::matches(&self.read, &presented)
            }
            Access::Work => {
                Self::matches(&self.write, &presented) | Self::matches(&self.work, &presented)
            }
        };
        if allowed {
            Ok(())
        } else {
            Err(AuthError::Invalid)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, password: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        )
    }

    #[test]
    fn accepts_twine_basic_and_bearer_tokens() {
        let tokens = Tokens::new(&[Secret::new("upload-token-0123456789")], &[], false);
        assert_eq!(
            tokens.check(
                Some(&basic("__token__", "upload-token-0123456789")),
                Access::Write
            ),
            Ok(())
        );
        assert_eq!(
            tokens.check(Some("Bearer upload-token-0123456789"), Access::Write),
            Ok(())
        );
        assert_eq!(
            tokens.check(Some(&basic("__token__", "wrong")), Access::Write),
            Err(AuthError::Invalid)
        );
        assert_eq!(tokens.check(None, Access::Write), Err(AuthError::Missing));
        assert_eq!(tokens.check(None, Access::Read), Ok(()));
    }

    #[test]
    fn read_tokens_cannot_write() {
        let tokens = Tokens::new(
            &[Secret::new("w".repeat(20))],
            &[Secret::new("r".repeat(20))],
            true,
        );
        let read = format!("Bearer {}", "r".repeat(20));
        assert_eq!(tokens.check(Some(&read), Access::Read), Ok(()));
        assert_eq!(
            tokens.check(Some(&read), Access::Write),
            Err(AuthError::Invalid)
        );
        assert_eq!(tokens.check(None, Access::Read), Err(AuthError::Missing));
    }

    #[test]
    fn worker_tokens_only_work() {
        let tokens = Tokens::new(&[Secret::new("w".repeat(20))], &[], true)
            .with_workers(&[Secret::new("k".repeat(20))]);
        let worker = format!("Bearer {}", "k".repeat(20));
        assert_eq!(tokens.check(Some(&worker), Access::Work), Ok(()));
        assert_eq!(
            tokens.check(Some(&worker), Access::Write),
            Err(AuthError::Invalid)
        );
        assert_eq!(
            tokens.check(Some(&worker), Access::Read),
            Err(AuthError::Invalid)
        );
    }

    #[test]
    fn credential_ids_are_stable_per_token_and_reveal_nothing() {
        let bearer = credential_id(Some("Bearer k-token-0123456789abcdef")).unwrap();
        let basic = credential_id(Some(&basic("__token__", "k-token-0123456789abcdef"))).unwrap();
        let other = credential_id(Some("Bearer j-token-0123456789abcdef")).unwrap();
        assert_eq!(
            bearer, basic,
            "the same token by either scheme is one credential"
        );
        assert_ne!(bearer, other);
        assert_eq!(bearer.to_string().len(), 16);
        assert!(!bearer.to_string().contains("token"));
        assert_eq!(credential_id(None), None);
        let round_trip: CredentialId =
            serde_json::from_value(serde_json::to_value(&bearer).unwrap()).unwrap();
        assert_eq!(round_trip, bearer);
        assert!(serde_json::from_str::<CredentialId>("\"../../etc\"").is_err());
    }

    #[test]
    fn secrets_never_print() {
        assert_eq!(
            format!("{:?}", Secret::new("hunter2")),
            "Secret([redacted])"
        );
    }
}
